"""Run a function in a forked child, as a bot process that may be SIGKILLed.

Forking keeps what the test process already imported (litellm's import alone takes
seconds), so a hundred kills cost a hundred forks, not a hundred cold starts. The child
only talks to the world the way the bot does (HTTP, git, files); it never touches the
parent's objects, whose locks a fork may have copied mid-use.
"""

from __future__ import annotations

import os
import signal
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Ended:
    killed: bool
    """The child died of SIGKILL (an armed kill point reached)."""
    error: str = ""
    """The child's traceback, when it raised."""


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
