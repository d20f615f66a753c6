"""Escape attempts, one suite for every backend (real bwrap, real Docker, no mocks).

Every attempt is paired with a positive control in the same sandbox, so a test
cannot pass just because the sandbox is broken and nothing runs at all.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.sandbox.bwrap import MAX_OUTPUT_BYTES
from bot.adapters.sandbox.spec import ExecResult, Limits, Sandbox, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.workspace import writable_dirs
from bot.core.errors import SandboxError


def start(
    backend: SandboxBackend,
    workspace: Path,
    write_globs: tuple[str, ...] = ("src/**/*.py",),
    limits: Limits | None = None,
    env: tuple[tuple[str, str], ...] = (),
) -> Sandbox:
    spec = SandboxSpec(workspace, write_globs, limits=limits or Limits(wall_seconds=30), env=env)
    return backend.start(spec)


def sh(sandbox: Sandbox, script: str, timeout: float | None = None) -> ExecResult:
    return sandbox.exec(["sh", "-c", script], timeout=timeout)


def py(sandbox: Sandbox, code: str) -> ExecResult:
    return sandbox.exec(["python3", "-c", code])


def assert_ok(result: ExecResult) -> None:
    assert result.exit_code == 0 and not result.timed_out, result


def processes_matching(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("globs", "expected"),
    [
        ((), ()),
        (("src/**/*.py",), ("src",)),
        (("tests/test_x.py",), ("tests",)),
        (("*.py",), (".",)),
        (("**",), (".",)),
        (("README.md",), (".",)),
        (("./docs/*.md", "docs/api/x.md"), ("docs",)),
        (("src/a/b/*.py", "src/a/c?.py", "lib/[ab]/x"), ("lib", "src/a")),
        (("src/**", "tests/*.py", "**/*.md"), (".",)),
        (("docs/",), ("docs",)),
    ],
)
def test_writable_dirs(globs: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert writable_dirs(globs) == expected


@pytest.mark.parametrize("glob", ["/etc/*", "../x/*.py", "src/../../x", "", "./"])
def test_writable_dirs_rejects_globs_leaving_the_workspace(glob: str) -> None:
    with pytest.raises(SandboxError):
        writable_dirs((glob,))


def test_backend_is_available_here(backend: SandboxBackend) -> None:
    assert backend.name in ("bwrap", "docker")
    assert backend.available() == (True, "")


@pytest.mark.escape("write outside the workspace")
def test_write_outside_workspace_is_blocked(backend: SandboxBackend, workspace: Path) -> None:
    marker = f"agentplane-{uuid.uuid4().hex}"
    with start(backend, workspace) as sb:
        for target in ("/usr/x", "/etc/x", "/x", "/proc/x"):
            result = sh(sb, f"echo pwned > {target}")
            assert result.exit_code != 0, target
        assert not Path("/usr/x").exists() and not Path("/etc/x").exists()
        # /tmp is writable, but it is the sandbox's own tmpfs, not the host's.
        assert_ok(sh(sb, f"echo scratch > /tmp/{marker} && cat /tmp/{marker}"))
        assert not Path("/tmp", marker).exists()
        assert_ok(sh(sb, "echo 'x = 1' > src/pkg/new.py"))
    assert (workspace / "src/pkg/new.py").read_text() == "x = 1\n"


@pytest.mark.escape("write outside the write scope")
def test_write_inside_workspace_outside_scope_is_blocked(
    backend: SandboxBackend, workspace: Path
) -> None:
    with start(backend, workspace, ("src/**/*.py",)) as sb:
        for script in (
            "echo pwned >> README.md",
            "echo pwned > docs/new.md",
            "rm tests/test_mod.py",
            "mkdir evil",
            "mv src moved",
        ):
            assert sh(sb, script).exit_code != 0, script
        assert_ok(sh(sb, "echo '# edited' >> src/pkg/mod.py && mkdir -p src/new && touch src/x"))
    assert (workspace / "README.md").read_text() == "# demo\n"
    assert not (workspace / "docs/new.md").exists() and not (workspace / "evil").exists()
    assert (workspace / "tests/test_mod.py").exists()
    assert (workspace / "src/pkg/mod.py").read_text().endswith("# edited\n")
    assert (workspace / "src/new").is_dir()


@pytest.mark.escape("write with an empty write scope")
def test_empty_write_scope_is_read_only(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace, ()) as sb:
        assert sh(sb, "echo pwned >> src/pkg/mod.py").exit_code != 0
        assert sh(sb, "touch new").exit_code != 0
        assert_ok(sh(sb, "cat src/pkg/mod.py README.md && touch /tmp/ok"))
    assert "pwned" not in (workspace / "src/pkg/mod.py").read_text()


@pytest.mark.escape("write through a symlinked scope")
def test_write_scope_through_symlink_is_refused(
    backend: SandboxBackend, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "out").symlink_to(tmp_path)
    with pytest.raises(SandboxError, match="symlink"):
        start(backend, workspace, ("out/*.txt",))


@pytest.mark.escape("read /etc/shadow")
def test_read_etc_shadow_is_blocked(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace) as sb:
        assert sh(sb, "cat /etc/shadow").exit_code != 0
        assert sh(sb, "cat /etc/gshadow").exit_code != 0
        assert sh(sb, "ls /etc/ssh").exit_code != 0
        passwd = sh(sb, "cat /etc/passwd")
    assert_ok(passwd)
    assert "root:" in passwd.stdout


@pytest.mark.escape("read the controller's home")
def test_read_controller_home_and_ssh_keys_is_blocked(
    backend: SandboxBackend, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = "-----BEGIN FAKE KEY----- agentplane-test"
    (home / ".ssh/id_rsa").write_text(key)
    (home / ".ssh/id_rsa").chmod(0o644)  # readable if the path were reachable at all
    monkeypatch.setenv("HOME", str(home))
    with start(backend, workspace) as sb:
        for path in (home / ".ssh/id_rsa", "~/.ssh/id_rsa", "/root/.ssh", "/root/.pyenv"):
            result = sh(sb, f"cat {path}; ls {path}")
            assert key not in result.stdout
            assert result.exit_code != 0, path
        for path in ("/root", "/home", "/var", "/run", "/var/run/docker.sock", "/run/docker.sock"):
            assert sh(sb, f"ls -d {path}").exit_code != 0, path
        # Every file in the sandbox outside the host's /usr, searched for the key; the
        # control file proves the search itself works.
        grep = sh(
            sb,
            "echo 'BEGIN FAKE KEY' > /tmp/control; grep -rs -l 'BEGIN FAKE KEY' / "
            "--exclude-dir=usr --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev",
        )
        assert grep.stdout == "/tmp/control\n", grep
        assert_ok(sh(sb, "cat /workspace/README.md"))


@pytest.mark.escape("read the controller's environment")
def test_controller_environment_is_invisible(
    backend: SandboxBackend, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("AGENTPLANE_TEST_SECRET", secret)
    with start(backend, workspace, env=(("JOB_VAR", "visible"),)) as sb:
        env = sb.exec(["env"])
        procs = sh(sb, "cat /proc/self/environ; cat /proc/1/environ; cat /proc/*/environ; true")
    assert_ok(env)
    assert "JOB_VAR=visible" in env.stdout and "HOME=/tmp" in env.stdout
    assert secret not in env.stdout + env.stderr
    assert "AGENTPLANE_TEST_SECRET" not in env.stdout
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in procs.stdout  # /proc/self/environ was read
    assert secret not in procs.stdout + procs.stderr


CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print("blocked", e)
else:
    print("connected")
"""

LOOPBACK = """
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
c.sendall(b"ping"); print(conn.recv(4).decode())
"""


@pytest.mark.escape("reach host loopback directly")
def test_host_loopback_is_unreachable(backend: SandboxBackend, workspace: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        with start(backend, workspace) as sb:
            attempt = sb.exec(["python3", "-c", CONNECT, "127.0.0.1", str(port)])
            own_loopback = py(sb, LOOPBACK)
        assert_ok(attempt)
        assert attempt.stdout.startswith("blocked"), attempt
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()
    assert_ok(own_loopback)
    assert own_loopback.stdout.strip() == "ping"


@pytest.mark.escape("reach the internet directly")
def test_internet_is_unreachable(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace) as sb:
        attempt = sb.exec(["python3", "-c", CONNECT, "1.1.1.1", "53"])
        interfaces = sb.exec(["cat", "/proc/net/dev"])
    assert_ok(attempt)
    assert attempt.stdout.startswith("blocked"), attempt
    assert_ok(interfaces)
    names = {line.split(":")[0].strip() for line in interfaces.stdout.splitlines()[2:]}
    assert names == {"lo"}


FORK_BOMB = """
import os, time
n = 0
try:
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(10)
            os._exit(0)
        n += 1
except OSError as e:
    print("blocked", e.errno, n)
else:
    print("unblocked", n)
"""


@pytest.mark.escape("fork bomb")
def test_fork_bomb_is_stopped_by_pids_limit(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(pids=32, wall_seconds=30)
    with start(backend, workspace, limits=limits) as sb:
        result = py(sb, FORK_BOMB)
    assert_ok(result)
    verdict, _errno, forks = result.stdout.split()
    assert verdict == "blocked", result
    assert 0 < int(forks) < limits.pids  # some forks work: the limit, not a broken fork


HOG = """
import subprocess, time
held = []
try:
    while len(held) < 100:
        held.append(subprocess.Popen(["sleep", "30"]))
except OSError:
    pass
print(len(held), flush=True)
time.sleep(30)
"""


@pytest.mark.escape("starve another sandbox's pids")
def test_one_sandbox_cannot_use_up_anothers_pids(backend: SandboxBackend, workspace: Path) -> None:
    """Each sandbox's pids limit is its own: a full one leaves its neighbour untouched."""
    other_ws = Path(tempfile.mkdtemp(prefix="agentplane-ws-"))
    limits = Limits(pids=24, wall_seconds=30)
    try:
        with (
            start(backend, workspace, limits=limits) as hog,
            start(backend, other_ws, limits=limits) as neighbour,
        ):
            mine = sh(hog, "id -u")
            with ThreadPoolExecutor(1) as pool:
                full = pool.submit(hog.exec, ["python3", "-c", HOG], timeout=8.0)
                time.sleep(3)  # the hog now holds every pid its limit allows
                still = sh(neighbour, "for i in $(seq 10); do true & done; wait; id -u")
            assert full.result().timed_out  # its sleeps were alive throughout
    finally:
        shutil.rmtree(other_ws, ignore_errors=True)
    assert_ok(still)
    if os.geteuid() == 0:  # a uid each; otherwise both are the controller's own
        assert still.stdout.split()[-1] != mine.stdout.strip()


def test_finished_commands_do_not_eat_the_pids_budget(
    backend: SandboxBackend, workspace: Path
) -> None:
    # Each exec must leave no zombie behind: zombies count against RLIMIT_NPROC.
    with start(backend, workspace, limits=Limits(pids=12, wall_seconds=30)) as sb:
        results = [sb.exec(["true"]) for _ in range(30)]
        timed_out = [sb.exec(["sleep", "30"], timeout=0.2) for _ in range(3)]
        after = sb.exec(["true"])
    assert all(r.exit_code == 0 for r in results), results
    assert all(r.timed_out for r in timed_out)
    assert_ok(after)


@pytest.mark.escape("memory bomb")
def test_memory_bomb_is_stopped_by_memory_limit(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(memory_bytes=256 << 20, wall_seconds=30)
    with start(backend, workspace, limits=limits) as sb:
        small = py(sb, "b = bytearray(32 << 20); print(len(b))")
        bomb = py(sb, "b = bytearray(2 << 30); print('allocated')")
    assert_ok(small)
    # bwrap: RLIMIT_AS raises MemoryError; Docker: the cgroup OOM-kills the command.
    assert bomb.exit_code != 0 and "allocated" not in bomb.stdout
    assert "MemoryError" in bomb.stderr or bomb.exit_code == 137, bomb


@pytest.mark.escape("cpu burn")
def test_busy_loop_is_stopped_by_cpu_limit(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace, limits=Limits(cpu_seconds=1, wall_seconds=30)) as sb:
        began = time.monotonic()
        spin = py(sb, "while True: pass")
        elapsed = time.monotonic() - began
        after = py(sb, "print(sum(range(1000)))")
    assert spin.exit_code != 0 and not spin.timed_out
    assert elapsed < 10
    assert_ok(after)


@pytest.mark.escape("disk fill")
def test_disk_fill_is_stopped_by_file_size_limit(backend: SandboxBackend, workspace: Path) -> None:
    limit = 4 << 20
    with start(backend, workspace, ("out/*",), Limits(file_size_bytes=limit)) as sb:
        small = sh(sb, "head -c 1000 /dev/zero > out/small")
        fill = sh(sb, "head -c 64M /dev/zero > out/big")
    assert_ok(small)
    assert fill.exit_code != 0
    assert (workspace / "out/small").stat().st_size == 1000
    assert (workspace / "out/big").stat().st_size <= limit


@pytest.mark.escape("outlive the wall time")
def test_sleep_is_stopped_by_wall_time(backend: SandboxBackend, workspace: Path) -> None:
    marker = f"30.{os.getpid()}{uuid.uuid4().int % 10000}"
    with start(backend, workspace, limits=Limits(wall_seconds=1.0)) as sb:
        began = time.monotonic()
        # A backgrounded child too: the whole tree must go, not just the direct child.
        result = sh(sb, f"sleep {marker} & sleep {marker}; echo finished")
        elapsed = time.monotonic() - began
        quick = sb.exec(["true"])
    assert result.timed_out and result.exit_code == 124
    assert "finished" not in result.stdout
    assert elapsed < 10
    deadline = time.monotonic() + 5
    while processes_matching(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_matching(marker) == []
    assert_ok(quick)


def test_exec_timeout_is_capped_by_call_timeout(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace) as sb:
        began = time.monotonic()
        result = sb.exec(["sleep", "30"], timeout=0.5)
    assert result.timed_out and time.monotonic() - began < 10


def test_output_is_capped(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace) as sb:
        result = sh(sb, f"head -c {MAX_OUTPUT_BYTES + 12345} /dev/zero | tr '\\0' x")
    assert_ok(result)
    assert result.stdout.startswith("x" * 1000)
    assert "12345 more bytes dropped" in result.stdout
    assert len(result.stdout) < MAX_OUTPUT_BYTES + 200


@pytest.mark.escape("signal or ptrace the controller")
def test_signalling_the_controller_fails(backend: SandboxBackend, workspace: Path) -> None:
    me = os.getpid()
    with start(backend, workspace) as sb:
        attempt = sh(sb, f"kill -9 {me}; echo rc=$?")
        own = sh(sb, "kill -0 $$ && ls /proc | grep -c '^[0-9]'")
    assert "rc=0" not in attempt.stdout, attempt
    assert os.getpid() == me  # still here to check
    assert_ok(own)
    assert int(own.stdout) < 10  # only the sandbox's own processes are visible


@pytest.mark.escape("mount")
def test_mount_fails(backend: SandboxBackend, workspace: Path) -> None:
    with start(backend, workspace) as sb:
        attempt = sh(sb, "mount -t tmpfs none /workspace")
        also = sh(sb, "unshare -rm mount -t tmpfs none /workspace")
        after = sh(sb, "cat README.md")
    assert attempt.exit_code != 0 and also.exit_code != 0
    assert_ok(after)
    assert after.stdout == "# demo\n"


RAISE_LIMIT = """
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
resource.setrlimit(resource.RLIMIT_CPU, (soft // 2, hard))  # lowering is allowed
try:
    resource.setrlimit(resource.RLIMIT_CPU, (hard + 1, hard + 1))
except (ValueError, OSError) as e:
    print("blocked", hard)
else:
    print("raised")
"""


@pytest.mark.escape("change its own limits")
def test_raising_own_limits_fails(backend: SandboxBackend, workspace: Path) -> None:
    limits = Limits(cpu_seconds=40, wall_seconds=30)
    with start(backend, workspace, limits=limits) as sb:
        cli = sh(sb, "prlimit --pid $$ --cpu=unlimited")
        cli_check = sh(sb, "prlimit --pid $$ --cpu=unlimited; prlimit --cpu --noheadings -o HARD")
        python = py(sb, RAISE_LIMIT)
        # The cgroup limits (Docker) are not reachable either: /sys is absent or read-only.
        cgroup = sh(
            sb,
            "for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
            "/sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max; do "
            "echo max > $f 2>/dev/null && echo raised $f; done; true",
        )
    assert cli.exit_code != 0
    assert cli_check.stdout.split()[-1] == str(limits.cpu_seconds)
    assert_ok(python)
    assert python.stdout.split() == ["blocked", str(limits.cpu_seconds)]
    assert "raised" not in cgroup.stdout, cgroup


# setsid(1) as python: the Docker image has no util-linux.
SETSID = "python3 -c 'import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])'"
# A daemon the call leaves behind: its own session, every fd closed, a beat every 50 ms.
# The call returns only once the first beat is written, so the daemon surely ran.
DAEMON = (
    f"{SETSID} sh -c 'i=0; while :; do i=$((i+1)); echo $i > src/beat$0; sleep 0.05; done' "
    "{n} >/dev/null 2>&1 </dev/null & "
    "while [ ! -s src/beat{n} ]; do sleep 0.01; done"
)


@pytest.mark.escape("outlive the call (detached daemon)")
def test_a_detached_process_does_not_outlive_its_call(
    backend: SandboxBackend, workspace: Path
) -> None:
    # Three calls: whether a daemon outlived its call used to depend on timing (Docker).
    beats = [workspace / f"src/beat{n}" for n in range(3)]
    with start(backend, workspace, ("src/**",)) as sb:
        for n in range(3):
            assert_ok(sh(sb, DAEMON.replace("{n}", str(n)), timeout=10))
        first = [beat.read_text() for beat in beats]
        time.sleep(0.3)  # six beats each, were they alive
        assert [beat.read_text() for beat in beats] == first
        assert_ok(sh(sb, "cat src/beat0"))  # the sandbox itself still works


# Flips src/d between a directory and a link to a host directory (renameat2 EXCHANGE:
# atomic, so d always exists), as fast as it can, for argv[2] seconds.
SWAPPER = """
import ctypes, os, sys, time
os.chdir("/workspace/src")
os.mkdir("d")
os.symlink(sys.argv[1], "ln")
libc = ctypes.CDLL(None, use_errno=True)
end, swaps = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    swaps += libc.renameat2(-100, b"d", -100, b"ln", 2) == 0
print(swaps)
"""


def _write_while(
    write: Callable[[dict[str, Any]], object],
    until: float,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """fs_write src/d/f.txt until the deadline or stop(); how many writes succeeded."""
    from bot.families.base import ToolFailure

    done = 0
    while time.monotonic() < until and not stop():
        try:
            write({"path": "src/d/f.txt", "content": "pwned"})
            done += 1
        except (ToolFailure, OSError):
            pass
    return done


@pytest.mark.escape("swap a dir for a host symlink under fs_write")
def test_fs_write_racing_a_sandboxed_swapper_never_writes_the_host(
    backend: SandboxBackend, workspace: Path
) -> None:
    """The host-side fs_write against a swapper in the sandbox: first while the swapper's
    call runs, then with the swapper started detached (it must die with its call)."""
    from bot.families.filesystem.tools import filesystem_tools

    host = Path(tempfile.mkdtemp(prefix="agentplane-host-"))
    (workspace / "swap.py").write_text(SWAPPER)
    write = next(t for t in filesystem_tools(workspace, lambda r: True) if t.name == "fs_write")
    try:
        with start(backend, workspace, ("src/**",)) as sb, ThreadPoolExecutor(1) as pool:
            swapper = pool.submit(sb.exec, ["python3", "/workspace/swap.py", str(host), "2"])
            while not (workspace / "src/ln").is_symlink() and not swapper.done():
                time.sleep(0.01)
            written = _write_while(write.handler, time.monotonic() + 3, swapper.done)
            raced = swapper.result()
            assert list(host.iterdir()) == []
            assert_ok(raced)
            assert int(raced.stdout) > 100 and written > 0, (raced, written)
            for name in ("d", "ln"):  # either one may be the directory now
                path = workspace / "src" / name
                path.unlink() if path.is_symlink() else shutil.rmtree(path)
            swap = f"{SETSID} python3 /workspace/swap.py {host} 30 >/dev/null 2>&1 </dev/null &"
            assert_ok(sh(sb, f"{swap} while [ ! -L src/ln ]; do sleep 0.01; done", timeout=10))
            _write_while(write.handler, time.monotonic() + 0.5)
            assert list(host.iterdir()) == []
            kinds = {(workspace / "src/d").is_symlink() for _ in range(2000)}
            assert len(kinds) == 1  # the swapper died with its call: d no longer flips
    finally:
        shutil.rmtree(host, ignore_errors=True)
