# The agentplane bot image (for servers). Runs as non-root; bubblewrap inside
# a container needs user namespaces, so servers use the Docker sandbox backend
# (a later issue) and this image for the control plane itself.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git bubblewrap \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir .
RUN useradd --create-home agentplane
USER agentplane
ENV LITELLM_LOCAL_MODEL_COST_MAP=True
ENTRYPOINT ["agentplane"]
