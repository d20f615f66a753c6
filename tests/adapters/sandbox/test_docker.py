"""What only the Docker backend has: container settings, removal on every exit path, reaping."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import docker
import pytest

from bot.adapters.sandbox.dockerbox import LABEL, LABEL_PID, DockerBackend, DockerSandbox
from bot.adapters.sandbox.image import ensure_image
from bot.adapters.sandbox.spec import Limits, SandboxBackend, SandboxSpec
from bot.core.errors import SandboxError


def ours() -> set[str]:
    """Sandbox containers of this test process."""
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": f"{LABEL_PID}={os.getpid()}"})
    return {str(c.id) for c in found}


def test_container_settings(docker_backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(pids=50, memory_bytes=300 << 20, wall_seconds=30)
    with docker_backend.start(SandboxSpec(workspace, ("src/*",), limits=limits)) as sb:
        assert isinstance(sb, DockerSandbox)
        sb.container.reload()
        host = sb.container.attrs["HostConfig"]
        config = sb.container.attrs["Config"]
        user = sb.exec(["id", "-u"])
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 50 and host["Memory"] == 300 << 20
    assert host["Privileged"] is False
    assert config["Labels"][LABEL] == "1"
    assert user.stdout.strip() != "0"
    assert not any(e.startswith(("AGENTPLANE", "DOCKER")) for e in config["Env"])


def test_one_container_for_every_call(docker_backend: SandboxBackend, workspace: Path) -> None:
    with docker_backend.start(SandboxSpec(workspace, ("src/*",))) as sb:
        first = sb.exec(["sh", "-c", "echo kept > /tmp/state"])
        second = sb.exec(["cat", "/tmp/state"])
        assert len(ours()) == 1
    assert first.exit_code == 0 and second.stdout == "kept\n"


def test_removed_on_success_failure_timeout_and_exception(
    docker_backend: SandboxBackend, workspace: Path
) -> None:
    spec = SandboxSpec(workspace, limits=Limits(wall_seconds=1))
    with docker_backend.start(spec) as sb:
        assert sb.exec(["true"]).exit_code == 0
    with docker_backend.start(spec) as sb:
        assert sb.exec(["false"]).exit_code == 1
    with docker_backend.start(spec) as sb:
        assert sb.exec(["sleep", "30"]).timed_out
    with pytest.raises(RuntimeError), docker_backend.start(spec) as sb:
        raise RuntimeError("the agent loop blew up")
    assert ours() == set()


def test_missing_image_is_an_actionable_error(workspace: Path) -> None:
    backend = DockerBackend(image="agentplane-sandbox:does-not-exist")
    ok, why = backend.available()
    if "Docker engine" in why:
        pytest.skip(why)
    assert not ok and "scripts/sandbox-image" in why
    with pytest.raises(SandboxError, match="scripts/sandbox-image"):
        backend.start(SandboxSpec(workspace))


def test_image_build_is_idempotent(docker_backend: SandboxBackend) -> None:
    began = time.monotonic()
    first, second = ensure_image(), ensure_image()
    assert first == second
    assert time.monotonic() - began < 10


CONTROLLER = """
import sys, time
from pathlib import Path
from bot.adapters.sandbox.dockerbox import DockerBackend
from bot.adapters.sandbox.spec import SandboxSpec
box = DockerBackend().start(SandboxSpec(Path(sys.argv[1])))
print(box.container.id, flush=True)
time.sleep(600)
"""


def test_containers_of_a_killed_controller_are_reaped(
    docker_backend: SandboxBackend, workspace: Path
) -> None:
    controller = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CONTROLLER), str(workspace)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    assert controller.stdout is not None
    container_id = controller.stdout.readline().strip()
    client = docker.from_env()
    try:
        assert client.containers.get(container_id).status == "running"
        os.kill(controller.pid, signal.SIGKILL)  # no finally, no atexit: a crash
        controller.wait()
        assert client.containers.get(container_id).status == "running"  # left behind
        fresh = DockerBackend()
        assert fresh.available() == (True, "")  # start-up reaps
        assert container_id in fresh.reaped
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(container_id)
    finally:
        if controller.poll() is None:
            controller.kill()
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(container_id).remove(force=True)


def test_live_controllers_containers_are_not_reaped(
    docker_backend: SandboxBackend, workspace: Path
) -> None:
    with docker_backend.start(SandboxSpec(workspace)) as sb:
        fresh = DockerBackend()
        assert fresh.available() == (True, "")
        assert sb.exec(["true"]).exit_code == 0


def test_the_first_call_finds_the_egress_forwarder_listening(
    docker_backend: SandboxBackend, workspace: Path
) -> None:
    # The forwarder starts in the container's init; a call made before it listens found no
    # proxy at all, and its request failed with nothing in the egress log.
    probe = "import socket; socket.create_connection(('127.0.0.1', 3128), 1).close()"
    spec = SandboxSpec(workspace, network="allowlist", allow_domains=("example.invalid",))
    for _ in range(3):
        with docker_backend.start(spec) as sb:
            result = sb.exec(["python3", "-c", probe])
        assert result.exit_code == 0, result.stderr
