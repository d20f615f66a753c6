# The agentplane bot image: `agentplane serve` as a non-root user, with bubblewrap as
# the sandbox backend inside the container and Debian's Chromium for browser jobs.
# Build it with scripts/bot-image: it downloads the hashed wheelhouse on the host first,
# so nothing here needs the network. BASE is an argument so that machines without a
# registry build this same file on a base made from their own files
# (scripts/bot-image --offline-base); see the README for `docker run`.
# The order is for the layer cache (and for storage drivers whose every step walks the
# whole image): big, rarely changing layers first, agentplane's own code last.
ARG BASE=debian:12-slim

# What every stage needs from the operating system, and the user the bot runs as.
FROM ${BASE} AS system
SHELL ["/bin/sh", "-eu", "-c"]
# A registry base gets its packages from Debian; the offline base already holds them.
# Unpinned on purpose: Debian stable ships security fixes as new versions, and a pinned
# version disappears from the mirror; pin the base image by digest instead.
# hadolint ignore=DL3008
RUN for tool in python3 git bwrap chromium useradd; do \
        command -v "$tool" >/dev/null || missing=1; \
    done; \
    if [ -n "${missing:-}" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends python3 python3-venv git bubblewrap \
            chromium ca-certificates fonts-dejavu-core util-linux; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --uid 10001 --create-home --shell /bin/sh agentplane; \
    mkdir -p /data; \
    chown agentplane /data

# The third-party packages: installed offline, each file checked against its hash.
FROM system AS deps
COPY requirements/ /src/requirements/
COPY build/wheelhouse/ /wheelhouse/
# pip itself comes from the wheelhouse and runs only once its hash is found in build.txt.
RUN python3 -m venv --without-pip /opt/agentplane; \
    pip="/wheelhouse/pip-$(sed -n 's/^pip==\([^ ]*\).*/\1/p' /src/requirements/build.txt)-py3-none-any.whl"; \
    python3 -c 'import hashlib, sys; \
        digest = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest(); \
        sys.exit(None if f"sha256:{digest}" in open(sys.argv[2]).read() else "pip: bad hash")' \
        "$pip" /src/requirements/build.txt; \
    /opt/agentplane/bin/python "$pip/pip" install --quiet --no-cache-dir --no-index \
        --find-links /wheelhouse --require-hashes --no-deps \
        -r /src/requirements/build.txt -r /src/requirements/bot.txt; \
    /opt/agentplane/bin/pip check

# agentplane itself, built beside a venv of the same path that holds only pip and
# setuptools (small, so this stage is quick), into /project, merged over deps' venv.
FROM system AS project
COPY requirements/build.txt /src/requirements/
COPY build/wheelhouse/pip-*.whl build/wheelhouse/setuptools-*.whl /wheelhouse/
RUN python3 -m venv --without-pip /opt/agentplane; \
    pip="/wheelhouse/pip-$(sed -n 's/^pip==\([^ ]*\).*/\1/p' /src/requirements/build.txt)-py3-none-any.whl"; \
    /opt/agentplane/bin/python "$pip/pip" install --quiet --no-cache-dir --no-index \
        --find-links /wheelhouse --require-hashes --no-deps -r /src/requirements/build.txt
COPY pyproject.toml README.md /src/
COPY bot/ /src/bot/
RUN /opt/agentplane/bin/pip install --quiet --no-cache-dir --no-index --no-deps \
        --no-build-isolation --no-warn-script-location --root /project /src

FROM system
USER 10001:10001
WORKDIR /home/agentplane
ENV PATH=/opt/agentplane/bin:$PATH \
    AGENTPLANE_DATA_DIR=/data \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["agentplane"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
COPY --from=deps /opt/agentplane/ /opt/agentplane/
COPY --from=project /project/ /
