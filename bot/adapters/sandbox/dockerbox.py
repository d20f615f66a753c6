"""The Docker backend: one container per run, every tool call a `docker exec` in it.

The container is what bwrap builds per command, kept for the run: read-only root
from the local image (see image.py), the workspace bound read-only with the write
scope bound read-write over it, no capabilities, no-new-privileges, Docker's
default seccomp profile, pids / memory / CPU limits, network none (or only the
egress proxy's unix socket). Each container is labelled with its controller's pid
and start time, so containers a killed controller left behind are reaped when
the next backend starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount, Ulimit

from bot.adapters.sandbox.bwrap import (
    MAX_OUTPUT_BYTES,
    SANDBOX_PATH,
    TIMEOUT_EXIT_CODE,
)
from bot.adapters.sandbox.image import IMAGE
from bot.adapters.sandbox.proxy import SANDBOX_DIR, EgressGate
from bot.adapters.sandbox.spec import (
    ENV_MOUNT,
    EgressEvent,
    ExecResult,
    Sandbox,
    SandboxBackend,
    SandboxSpec,
    exec_wall_time,
)
from bot.adapters.sandbox.workspace import Scratch, env_dir, prepare, sandbox_uid
from bot.core.errors import SandboxError

LABEL = "agentplane.sandbox"
LABEL_PID = "agentplane.controller-pid"
LABEL_START = "agentplane.controller-start"
LABEL_HOST = "agentplane.controller-host"
_BUILD_HINT = "build it with scripts/sandbox-image (offline, from this host's files)"

# pid 1: reaps orphans (zombies would eat the pids limit) and survives `kill -9 -1`,
# which ends every call: whatever a call started (a daemon in its own session with its
# fds closed too) is killed when the call returns. With arguments (the forwarder's argv)
# it also serves the egress forwarder, in a thread of its own process, so that kill
# spares the forwarder and the next call's first request finds it listening.
INIT = """
import os, runpy, signal, socket, sys, threading, time
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
if len(sys.argv) > 2:
    forward = runpy.run_path(sys.argv[2])["main"]
    threading.Thread(target=forward, args=(sys.argv[3:],), daemon=True).start()
    for _ in range(400):  # the controller waits for this line before the first call
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[4])), 0.05).close()
            break
        except OSError:
            time.sleep(0.025)
    print(READY, flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.5)
"""


READY = "agentplane-forwarder-ready"
INIT = INIT.replace("READY", repr(READY))
FORWARDER_WAIT_S = 10.0


def _await_forwarder(container: Container) -> None:
    """Until the forwarder listens: a call made before would find no proxy, and its
    request would fail unrecorded (seen under load as an empty egress log)."""
    deadline = time.monotonic() + FORWARDER_WAIT_S
    while READY.encode() not in container.logs(stdout=True, stderr=False):
        if time.monotonic() >= deadline:
            raise SandboxError(
                f"the sandbox's egress forwarder did not start in {FORWARDER_WAIT_S} s"
            )
        time.sleep(0.01)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of pid (clock ticks since boot): tells pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def reap(client: docker.DockerClient) -> list[str]:
    """Remove sandboxes whose controller on this host is gone; returns their ids."""
    reaped = []
    # The raw list: other controllers remove their containers while we look, and the
    # model-level list would inspect (and fail on) each one.
    for box in client.api.containers(all=True, filters={"label": LABEL}):
        labels = box.get("Labels") or {}
        if labels.get(LABEL_HOST) != socket.gethostname():
            continue  # another host's controller shares this engine: not ours to judge
        pid = int(labels.get(LABEL_PID, "0"))
        if pid and _start_time(pid) == labels.get(LABEL_START):
            continue
        # Gone already, or another controller is removing it: either way, not ours to wait on.
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(box["Id"], force=True)
            reaped.append(str(box["Id"]))
    return reaped


class DockerSandbox(Sandbox):
    backend_name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        container: Container,
        spec: SandboxSpec,
        user: str,
        gate: EgressGate | None,
        scratch: Scratch | None = None,
    ) -> None:
        self.spec = spec
        self.container = container
        self._api = client.api
        self._user = user
        self._gate = gate
        self._scratch = scratch
        self._closed = False

    def exec(self, argv: list[str], *, timeout: float | None = None) -> ExecResult:
        wall = exec_wall_time(self.spec, self._closed, argv, timeout)
        deadline = time.monotonic() + wall
        try:
            exec_id = self._api.exec_create(
                self.container.id, argv, user=self._user, workdir="/workspace"
            )["Id"]
            chunks = self._api.exec_start(exec_id, stream=True, demux=True)
        except docker.errors.APIError as exc:
            raise SandboxError(f"docker exec failed: {exc.explanation or exc}") from exc
        out = _Output()
        reader = threading.Thread(target=out.drain, args=(chunks,), daemon=True)
        reader.start()
        timed_out = False
        while reader.is_alive():
            reader.join(0.05)
            if time.monotonic() >= deadline:
                timed_out = True
                break
            if reader.is_alive() and not self._running(exec_id):
                break  # its own process is done; children still hold the pipes
        # bwrap's pid-1 semantics: nothing outlives the call that started it, whether
        # it holds the call's pipes or not (a detached daemon, fds closed, holds none).
        self._kill_all()
        reader.join(5.0)
        code = self._api.exec_inspect(exec_id).get("ExitCode")
        if timed_out:
            code = TIMEOUT_EXIT_CODE
        return ExecResult(code if code is not None else -1, *out.texts(), timed_out=timed_out)

    def launch_command(self, argv: list[str]) -> list[str]:
        # docker exec carries only stdin and stdout: dockerpipe bridges fds 3 and 4 over them.
        pipe = [sys.executable, "-m", "bot.adapters.sandbox.dockerpipe", str(self.container.id)]
        return [*pipe, self._user, "--", *argv]

    def _running(self, exec_id: str) -> bool:
        return bool(self._api.exec_inspect(exec_id).get("Running"))

    def _kill_all(self) -> None:
        """SIGKILL every sandbox process but pid 1; restart the container if even that fails."""
        try:
            killer = self._api.exec_create(self.container.id, ["kill", "-9", "-1"], user=self._user)
            self._api.exec_start(killer["Id"])
        except docker.errors.APIError:
            # E.g. the pids limit is full, so not even `kill` can start.
            self.container.restart(timeout=0)

    def egress_log(self) -> list[EgressEvent]:
        return self._gate.proxy.log if self._gate is not None else []

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.suppress(docker.errors.NotFound):
                self.container.remove(force=True)
        finally:
            if self._gate is not None:
                self._gate.close()
            if self._scratch is not None:
                self._scratch.close()


class _Output:
    def __init__(self) -> None:
        self.bufs = [bytearray(), bytearray()]
        self.dropped = [0, 0]

    def drain(self, chunks: Any) -> None:
        with contextlib.suppress(Exception):  # the stream dies with a killed exec
            for pair in chunks:
                for i, chunk in enumerate(pair):
                    if chunk:
                        room = max(0, MAX_OUTPUT_BYTES - len(self.bufs[i]))
                        self.bufs[i] += chunk[:room]
                        self.dropped[i] += max(0, len(chunk) - room)

    def texts(self) -> tuple[str, str]:
        texts = []
        for buf, dropped in zip(self.bufs, self.dropped, strict=True):
            text = buf.decode("utf-8", errors="replace")
            if dropped:
                text += f"\n[... output truncated: {dropped} more bytes dropped ...]\n"
            texts.append(text)
        return texts[0], texts[1]


class DockerBackend(SandboxBackend):
    name = "docker"

    def __init__(self, client: docker.DockerClient | None = None, image: str = IMAGE) -> None:
        self._client = client
        self.image = image
        self.reaped: list[str] = []
        self._started = False

    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=30)
                self._client.ping()
            except docker.errors.DockerException as exc:
                self._client = None
                raise SandboxError(
                    f"cannot reach the Docker engine ({exc}): start dockerd, or set DOCKER_HOST"
                ) from exc
        if not self._started:
            self._started = True
            self.reaped = reap(self._client)
        return self._client

    def available(self) -> tuple[bool, str]:
        try:
            client = self.client()
            client.images.get(self.image)
        except SandboxError as exc:
            return False, str(exc)
        except docker.errors.ImageNotFound:
            return False, f"the sandbox image {self.image} is missing: {_BUILD_HINT}"
        except docker.errors.APIError as exc:
            return False, f"the Docker engine refused: {exc.explanation or exc}"
        return True, ""

    def start(self, spec: SandboxSpec) -> DockerSandbox:
        client = self.client()
        uid = sandbox_uid()
        workspace, writable = prepare(spec, uid)
        whole = workspace in writable  # `**`: one read-write mount, not one per directory
        mounts = [Mount("/workspace", str(workspace), type="bind", read_only=not whole)]
        mounts += [
            Mount(
                f"/workspace/{host.relative_to(workspace)}", str(host), type="bind", read_only=False
            )
            for host in writable
            if host != workspace
        ]
        mounts += [Mount(str(p), str(p), type="bind", read_only=True) for p in spec.ro_paths]
        if spec.env_dir is not None:
            # The engine mounts as root: nothing the sandbox uid could not reach is refused.
            source = str(env_dir(spec.env_dir, uid, spec.env_writable, engine_mounts=True))
            mounts.append(Mount(ENV_MOUNT, source, type="bind", read_only=not spec.env_writable))
        scratch = Scratch(workspace, spec.scratch, uid)
        mounts += [Mount(inside, str(host), type="bind") for host, inside in scratch.mounts()]
        gate = None
        try:
            if spec.network == "allowlist":
                gate = EgressGate(
                    spec.allow_domains,
                    spec.egress_private_ok,
                    request_gate=spec.request_gate,
                    tls=spec.tls,
                )
                mounts.append(Mount(SANDBOX_DIR, gate.dir, type="bind", read_only=True))
            container = self._run(client, spec, mounts, uid, gate)
        except BaseException:
            if gate is not None:
                gate.close()
            scratch.close()
            raise
        return DockerSandbox(client, container, spec, f"{uid}:{uid}", gate, scratch)

    def base_identity(self) -> str:
        """The sandbox image's id: a rebuilt image is a new base."""
        try:
            return f"{self.name} {self.client().images.get(self.image).id}"
        except docker.errors.DockerException as exc:
            raise SandboxError(f"the sandbox image {self.image} is not usable: {exc}") from exc

    def _run(
        self,
        client: docker.DockerClient,
        spec: SandboxSpec,
        mounts: list[Mount],
        uid: int,
        gate: EgressGate | None,
    ) -> Container:
        limits = spec.limits
        env = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **dict(spec.env)}
        if gate is not None:
            env.update(gate.env)
        labels = {
            LABEL: "1",
            LABEL_PID: str(os.getpid()),
            LABEL_START: _start_time(os.getpid()) or "",
            LABEL_HOST: socket.gethostname(),
        }
        command = ["python3", "-c", INIT, *(gate.forwarder() if gate else [])]
        try:
            container: Container = client.containers.create(
                self.image,
                command,
                user=f"{uid}:{uid}",
                environment=env,
                labels=labels,
                mounts=mounts,
                working_dir="/workspace",
                hostname="sandbox",
                read_only=True,
                tmpfs={"/tmp": f"size={limits.memory_bytes},mode=1777,nosuid,nodev"},
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=limits.pids,
                mem_limit=limits.memory_bytes,
                memswap_limit=limits.memory_bytes,
                nano_cpus=1_000_000_000,
                ulimits=[
                    Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds),
                    Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                    Ulimit(name="core", soft=0, hard=0),
                ],
            )
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(f"the sandbox image {self.image} is missing: {_BUILD_HINT}") from exc
        except docker.errors.APIError as exc:
            raise SandboxError(f"docker could not create the sandbox: {exc}") from exc
        try:
            container.start()
            if gate is not None:
                _await_forwarder(container)
        except BaseException as exc:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            if isinstance(exc, docker.errors.APIError):
                raise SandboxError(f"docker could not start the sandbox: {exc}") from exc
            raise
        return container
