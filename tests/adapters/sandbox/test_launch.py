"""launch_command: a long-lived program in the sandbox, talked to over fds 3 and 4.

This is how Chromium runs under Playwright (--remote-debugging-pipe), on either
backend; here a small echo program stands in for it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bot.adapters.sandbox.spec import Limits, SandboxBackend, SandboxSpec

# Reads NUL-framed messages on fd 3 and answers each on fd 4, as CDP over a pipe does.
ECHO = """
import os, sys
print("echo up as", os.getuid(), file=sys.stderr, flush=True)
buf = b""
while chunk := os.read(3, 65536):
    buf += chunk
    while b"\\0" in buf:
        msg, buf = buf.split(b"\\0", 1)
        os.write(4, msg.upper() + b"|" + os.getcwd().encode() + b"\\0")
print("echo saw end of input", file=sys.stderr, flush=True)
"""


def run_piped(command: list[str], messages: list[bytes]) -> tuple[list[bytes], str, int]:
    to_child, child_in = os.pipe()  # caller writes child_in; the child reads fd 3
    child_out, from_child = os.pipe()  # the child writes fd 4; caller reads child_out
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(3, 4),
        preexec_fn=lambda: (os.dup2(to_child, 3), os.dup2(from_child, 4)),
    )
    os.close(to_child)
    os.close(from_child)
    with os.fdopen(child_in, "wb") as w, os.fdopen(child_out, "rb") as r:
        replies = []
        for msg in messages:
            w.write(msg + b"\0")
            w.flush()
            reply = b""
            while not reply.endswith(b"\0"):
                reply += r.read1(65536)
            replies.append(reply[:-1])
    # The caller closing fd 3 is how the program learns to stop.
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    return replies, err, proc.wait(timeout=30)


def test_fds_3_and_4_reach_the_program_inside(backend: SandboxBackend, workspace: Path) -> None:
    with backend.start(SandboxSpec(workspace, limits=Limits(wall_seconds=30))) as box:
        command = box.launch_command(["python3", "-c", ECHO])
        replies, err, code = run_piped(command, [b"hello", b"x" * 200_000, b"bye"])
    assert [r.split(b"|")[0] for r in replies] == [b"HELLO", b"X" * 200_000, b"BYE"]
    assert "echo up as" in err and "echo saw end of input" in err, err
    assert "echo up as 0\n" not in err  # never root inside
    assert code == 0


def test_the_program_sees_the_sandbox_not_the_host(
    backend: SandboxBackend, workspace: Path
) -> None:
    probe = (
        "import json, os; os.read(3, 1); os.write(4, json.dumps([os.path.exists('/root'),"
        " os.access('/workspace', os.W_OK), sorted(os.environ)]).encode() + b'\\0')"
    )
    with backend.start(SandboxSpec(workspace, limits=Limits(wall_seconds=30))) as box:
        (reply,), _err, _code = run_piped(box.launch_command(["python3", "-c", probe]), [b""])
    root_visible, workspace_writable, env = json.loads(reply)
    assert not workspace_writable
    assert "HOME" in env and not any(k.startswith("AGENTPLANE") for k in env)
    assert not root_visible


def test_a_wholly_writable_workspace(backend: SandboxBackend, workspace: Path) -> None:
    """`**` (the browser's own scratch workspace) is one writable mount on either backend."""
    spec = SandboxSpec(workspace, ("**",), limits=Limits(wall_seconds=30))
    with backend.start(spec) as box:
        done = box.exec(["sh", "-c", "echo hi > new.txt && echo there > src/pkg/new.txt"])
    assert done.exit_code == 0, done
    assert (workspace / "new.txt").read_text() == "hi\n"
    assert (workspace / "src/pkg/new.txt").read_text() == "there\n"
