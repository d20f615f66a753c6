"""The bot image (#17): the shipped Dockerfile, built offline on a base made from this
host's files (scripts/bot-image --offline-base), starts as non-root, is healthy by its own
HEALTHCHECK, answers /healthz, and runs the demo job in bubblewrap inside the container,
started with the hardened `docker run` flags the README gives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from bot.demo.code import DEVELOPER, MAINTAINER, build_repo

ROOT = Path(__file__).resolve().parents[3]
TAG = "agentplane-bot:test"
# The README's flags: bubblewrap needs user namespaces (Docker's seccomp profile refuses
# them) and a fresh /proc (Docker's masked /proc paths refuse that); everything else is
# as locked down as the bot allows.
RUN_FLAGS = [
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--security-opt=seccomp=unconfined",
    "--security-opt=systempaths=unconfined",
    "--read-only",
    "--tmpfs=/tmp",
    "--tmpfs=/home/agentplane:uid=10001,gid=10001",
]
HOME = "/home/agentplane"


def _docker_or_skip() -> None:
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        if "docker" in os.environ.get("AGENTPLANE_REQUIRE_BACKENDS", "").split(","):
            pytest.fail("docker required (AGENTPLANE_REQUIRE_BACKENDS) but no engine answers")
        pytest.skip("no Docker engine")


def docker(*args: str, stdin: bytes | None = None, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=300)
    out = (done.stdout + done.stderr).decode(errors="replace")
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n{out}")
    return out


@pytest.fixture(scope="module")
def image() -> str:
    _docker_or_skip()
    env = {**os.environ, "PYTHON": sys.executable}
    built = subprocess.run(
        [str(ROOT / "scripts/bot-image"), "--offline-base", "--tag", TAG],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return TAG


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    # A fast health interval, so the image's own HEALTHCHECK command is seen to pass.
    name = f"agentplane-bot-test-{os.getpid()}"
    docker(
        "run", "--detach", "--name", name, *RUN_FLAGS, "--publish", "127.0.0.1::8080",
        "--health-interval=1s", "--health-start-period=60s", image,
    )  # fmt: skip
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


def _port(container: str) -> int:
    return int(docker("port", container, "8080/tcp").split()[0].rsplit(":", 1)[1])


def test_starts_as_non_root_and_is_healthy(container: str) -> None:
    assert docker("exec", container, "id", "-u").strip() == "10001"
    deadline = time.monotonic() + 90
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "--format", "{{.State.Health.Status}}", container).strip()
        if status in ("healthy", "unhealthy"):
            break
        time.sleep(1)
    assert status == "healthy", docker("logs", container)
    with urllib.request.urlopen(f"http://127.0.0.1:{_port(container)}/healthz", timeout=10) as r:
        health = json.load(r)
    # No App credentials were given: it says so instead of failing to start.
    assert health["ok"] is True and health["can_act"] is False


def agentplane(container: str, who: tuple[str, str], *args: str) -> str:
    name, email = who
    ident = [f"GIT_{role}_{part}={value}" for role in ("AUTHOR", "COMMITTER")
             for part, value in (("NAME", name), ("EMAIL", email))]  # fmt: skip
    env = [flag for pair in ident for flag in ("--env", pair)]
    return docker("exec", "--workdir", f"{HOME}/demo", *env, container, "agentplane", *args)


def test_runs_the_demo_job_in_bubblewrap_inside(container: str, tmp_path: Path) -> None:
    build_repo(tmp_path / "demo")
    archive = BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(tmp_path / "demo", arcname="demo")
    # Unpacked by the bot's user inside (the root filesystem is read-only, its home a tmpfs).
    unpack = "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|').extractall"
    docker("exec", "-i", container, "python3", "-c", f"{unpack}('{HOME}')",
           stdin=archive.getvalue())  # fmt: skip
    out = agentplane(container, DEVELOPER, "run", "fix-failing-test")
    match = re.search(r"Waiting for approval: (\S+)", out)
    assert match, out
    assert "Ran 2 tests" in out and "+    return a + b" in out  # the sandboxed test run
    run_id = match.group(1)
    agentplane(container, MAINTAINER, "approve", run_id)
    verified = agentplane(container, DEVELOPER, "audit", "verify")
    assert re.search(r"^ok: \d+ records", verified, re.M), verified


def _pins(lines: list[str]) -> set[str]:
    return {re.sub(r"\[.*\]", "", line).replace("_", "-").lower() for line in lines}


def test_the_hashed_requirements_pin_what_pyproject_pins() -> None:
    """A dependency added to pyproject but not locked would be missing from the image."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = re.findall(r"^(\S+==\S+) \\$", (ROOT / "requirements/bot.txt").read_text(), re.M)
    missing = _pins(project["dependencies"]) - _pins(locked)
    assert not missing, f"run `scripts/bot-image lock`: not in requirements/bot.txt: {missing}"
