"""Run a function in a forked child, as a bot process that may be SIGKILLed.

Forking keeps what the test process already imported (litellm's import alone takes
seconds), so a hundred kills cost a hundred forks, not a hundred cold starts. The child
only talks to the world the way the bot does (HTTP, git, files); it never touches the
parent's objects, whose locks a fork may have copied mid-use.

litellm's native runtime does not survive a fork: a child forked after any native call in
the parent raises ForkedAfterNativeRuntimeStarted. So the suites that fork bots carry the
`forks_bots` marker and run in a pytest process of their own (`make test` runs the rest
with `-m "not forks_bots"` first), and the parent reserves itself for forking before its
first fork (reserve_for_forking): a native call in it then fails where it is made, and one
made before it (these tests run in a process that ran others) fails with how to run them.
"""

from __future__ import annotations

import os
import signal
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest
from litellm.rust_bridge.fork_guard import NativeStateStartedBeforeFork, reserve_process_for_forking


@dataclass(frozen=True)
class Ended:
    killed: bool
    """The child died of SIGKILL (an armed kill point reached)."""
    error: str = ""
    """The child's traceback, when it raised."""


def reserve_for_forking() -> None:
    """Make this process a fork parent: no litellm native call here from now on."""
    try:
        reserve_process_for_forking("the pytest process that forks bots")
    except NativeStateStartedBeforeFork:
        pytest.fail(
            "an earlier test in this pytest process started litellm's native runtime, so "
            "forked bots cannot use it: run the forks_bots tests in a process of their own, "
            "as make test does: .venv/bin/python -m pytest -m forks_bots tests/doors/github",
            pytrace=False,
        )


def run_forked(fn: Callable[[], object], env: Mapping[str, str] | None = None) -> Ended:
    """fn() in a child with env added to its environment; how the child ended."""
    fd, report = tempfile.mkstemp(prefix="forked-", suffix=".txt")
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # the child: never return into the test runner
        code = 0
        try:
            os.environ.update(env or {})
            fn()
        except BaseException:
            with open(report, "w") as f:
                f.write(traceback.format_exc())
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    with open(report) as f:
        error = f.read()
    os.unlink(report)
    if os.WIFSIGNALED(status):
        if os.WTERMSIG(status) != signal.SIGKILL:
            return Ended(False, f"the child died of signal {os.WTERMSIG(status)}")
        return Ended(True)
    code = os.WEXITSTATUS(status)
    return Ended(False, error or ("" if code == 0 else f"the child exited {code}"))
