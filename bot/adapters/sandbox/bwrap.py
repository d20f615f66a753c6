"""The bubblewrap backend: one `bwrap` process per command, nothing kept running.

The mount namespace is the boundary: the host filesystem is absent except a
read-only /usr, a handful of /etc files and the workspace. Every namespace is
unshared, so the network is a fresh loopback; with network=allowlist the egress
proxy's unix socket is bound in and a forwarder on 127.0.0.1 leads to it. When
the controller is root each sandbox runs as a uid of its own (workspace.sandbox_uid),
because RLIMIT_NPROC is not enforced for uid 0, counts per uid, and a userns breakout
must not land on host root.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import IO

from bot.adapters.sandbox.proxy import SANDBOX_DIR, EgressGate
from bot.adapters.sandbox.spec import (
    ENV_MOUNT,
    EgressEvent,
    ExecResult,
    Limits,
    Sandbox,
    SandboxBackend,
    SandboxSpec,
    exec_wall_time,
)
from bot.adapters.sandbox.workspace import (
    Scratch,
    env_dir,
    prepare,
    safe_dir,
    sandbox_uid,
    writable_dirs,
)
from bot.core.errors import SandboxError

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_OUTPUT_BYTES = 4 << 20
TIMEOUT_EXIT_CODE = 124

# Only what the dynamic loader and name lookups need; never shadow, ssh, or secrets.
_ETC_FILES = (
    "alternatives",
    "group",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "passwd",
)
_SYSTEM_DIRS = ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin")
_INSTALL_HINT = "install the Debian package bubblewrap (apt-get install bubblewrap)"


def _system_args(tmp_size: int) -> list[str]:
    args = [
        "--unshare-all",
        # Explicit: --disable-userns needs it, and a setuid bwrap must not skip it.
        "--unshare-user",
        "--disable-userns",
        # No bwrap init: it outlives the outer bwrap and lingers as a zombie (counted by
        # RLIMIT_NPROC) until the host's init reaps it; as pid 1 the command is reaped.
        "--as-pid-1",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for path in _SYSTEM_DIRS:
        # Merged-/usr hosts have these as symlinks; binding a symlink would bind its target.
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in _ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # A size cap, because tmpfs pages are not counted by RLIMIT_AS.
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_size), "--tmpfs", "/tmp"]
    return args


def _wrapper(limits: Limits, uid: int) -> list[str]:
    cmd = [
        "prlimit",
        f"--nproc={limits.pids}",
        f"--as={limits.address_space_bytes or limits.memory_bytes}",
        f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.file_size_bytes}",
        "--core=0",
        "--",
    ]
    if os.geteuid() == 0:
        cmd += [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
    return cmd


class BwrapSandbox(Sandbox):
    backend_name = "bwrap"

    def __init__(
        self,
        spec: SandboxSpec,
        workspace: Path,
        bwrap: str,
        uid: int,
        gate: EgressGate | None = None,
        scratch: Scratch | None = None,
    ) -> None:
        self.spec = spec
        self.uid = uid
        self.workspace = workspace
        self._bwrap = bwrap
        self._writable = writable_dirs(spec.write_globs)
        self._gate = gate
        self._scratch = scratch
        self._closed = False

    def command(self, argv: list[str]) -> list[str]:
        """The full host command line that runs argv in this sandbox."""
        env = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **dict(self.spec.env)}
        if self._gate is not None:
            env.update(self._gate.env)
            # The net namespace is still unshared: the bound socket is the only way out.
            argv = self._gate.forwarder(argv)
        args = _system_args(self.spec.limits.memory_bytes)
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += ["--ro-bind", str(self.workspace), "/workspace"]
        for path in self.spec.ro_paths:
            args += ["--ro-bind", str(path), str(path)]
        if self._gate is not None:
            args += ["--ro-bind", self._gate.dir, SANDBOX_DIR]
        for rel in self._writable:
            # Checked on every exec: a previous command may have swapped a dir for a symlink.
            host = safe_dir(self.workspace, rel)
            args += ["--bind", str(host), str(PurePosixPath("/workspace", rel))]
        for host, inside in self._scratch.mounts() if self._scratch else ():
            safe_dir(self.workspace, inside.removeprefix("/workspace/"))
            args += ["--bind", str(host), inside]
        if self.spec.env_dir is not None:
            bind = "--bind" if self.spec.env_writable else "--ro-bind"
            args += [bind, str(self.spec.env_dir), ENV_MOUNT]
        # Last, once every mount point exists: the root tmpfs (/, /etc) becomes read-only too.
        args += ["--remount-ro", "/", "--chdir", "/workspace", "--", *argv]
        return [*_wrapper(self.spec.limits, self.uid), self._bwrap, *args]

    def launch_command(self, argv: list[str]) -> list[str]:
        # Every fd is inherited through bwrap; --die-with-parent ends it with its caller.
        return self.command(argv)

    def exec(self, argv: list[str], *, timeout: float | None = None) -> ExecResult:
        wall = exec_wall_time(self.spec, self._closed, argv, timeout)
        try:
            proc = subprocess.Popen(
                self.command(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd="/",
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                # Own process group, so a timeout can kill the whole tree in one signal.
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc
        deadline = time.monotonic() + wall
        assert proc.stdout is not None and proc.stderr is not None
        out, err, timed_out = _collect(proc, proc.stdout, proc.stderr, deadline)
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
            proc.wait()
        code = TIMEOUT_EXIT_CODE if timed_out else proc.returncode
        return ExecResult(code, out, err, timed_out=timed_out)

    def egress_log(self) -> list[EgressEvent]:
        return self._gate.proxy.log if self._gate is not None else []

    def close(self) -> None:
        self._closed = True
        if self._gate is not None:
            self._gate.close()
        if self._scratch is not None:
            self._scratch.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the sandbox: its pid 1 first, so bwrap reaps it, then the whole group."""
    # Killing bwrap first would orphan the namespace's pid 1 into a zombie. The pidfd and
    # the second look at the children guard against pid reuse: only bwrap can reap it.
    for pid in _children(proc.pid):
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(pid)
            try:
                if pid in _children(proc.pid):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            finally:
                os.close(fd)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _collect(
    proc: subprocess.Popen[bytes], stdout: IO[bytes], stderr: IO[bytes], deadline: float
) -> tuple[str, str, bool]:
    """Read both pipes until EOF, keeping at most MAX_OUTPUT_BYTES each; kill at deadline."""
    fds = (stdout.fileno(), stderr.fileno())
    bufs = {fd: bytearray() for fd in fds}
    dropped = dict.fromkeys(fds, 0)
    timed_out = False
    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if timed_out:
                    break  # killed, yet something still holds the pipes: stop waiting.
                timed_out = True
                _kill(proc)
                deadline = time.monotonic() + 5.0
                continue
            for key, _ in sel.select(remaining):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                room = MAX_OUTPUT_BYTES - len(bufs[key.fd])
                bufs[key.fd] += chunk[: max(0, room)]
                dropped[key.fd] += max(0, len(chunk) - max(0, room))
    texts = []
    for fd in fds:
        text = bufs[fd].decode("utf-8", errors="replace")
        if dropped[fd]:
            text += f"\n[... output truncated: {dropped[fd]} more bytes dropped ...]\n"
        texts.append(text)
    stdout.close()
    stderr.close()
    return texts[0], texts[1], timed_out


@functools.cache
def _probe() -> tuple[bool, str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, f"bwrap is not on PATH: {_INSTALL_HINT}"
    for tool in ["prlimit", *(["setpriv"] if os.geteuid() == 0 else [])]:
        if shutil.which(tool) is None:
            return False, f"{tool} is not on PATH: install the Debian package util-linux"
    cmd = [*_wrapper(Limits(), sandbox_uid()), bwrap, *_system_args(1 << 20), "--", "true"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap could not be run: {exc}"
    if done.returncode != 0:
        return False, (
            f"bwrap cannot create namespaces on this host ({done.stderr.strip()}): enable "
            "unprivileged user namespaces (sysctl user.max_user_namespaces, "
            "kernel.unprivileged_userns_clone=1) or use another backend; bubblewrap >= 0.8 "
            "is required"
        )
    return True, bwrap


class BwrapBackend(SandboxBackend):
    name = "bwrap"

    def available(self) -> tuple[bool, str]:
        ok, detail = _probe()
        return (True, "") if ok else (False, detail)

    def start(self, spec: SandboxSpec) -> BwrapSandbox:
        ok, detail = _probe()
        if not ok:
            raise SandboxError(f"bwrap backend unavailable: {detail}")
        uid = sandbox_uid()
        workspace, _ = prepare(spec, uid)
        if spec.env_dir is not None:
            env_dir(spec.env_dir, uid, spec.env_writable)
        scratch = Scratch(workspace, spec.scratch, uid)
        gate = None
        try:
            if spec.network == "allowlist":
                gate = EgressGate(
                    spec.allow_domains,
                    spec.egress_private_ok,
                    request_gate=spec.request_gate,
                    tls=spec.tls,
                )
        except BaseException:
            scratch.close()
            raise
        return BwrapSandbox(spec, workspace, detail, uid, gate, scratch)

    def base_identity(self) -> str:
        """The host's own /usr is the base: its Python and the OS release name it."""
        parts = [self.name]
        for path in ("/etc/os-release", os.path.realpath("/usr/bin/python3")):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        return " ".join(parts)
