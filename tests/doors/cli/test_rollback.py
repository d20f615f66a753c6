"""`agentplane rollback RUN` as a user drives it: real processes, real repo, no TTY.

The run being rolled back is made in-process (the terminal's `run` has its own tests);
what goes through the command line is the rollback and its approval."""

from __future__ import annotations

import re
from pathlib import Path

from bot.adapters.audit.verify import verify
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.code import MAINTAINER
from bot.run.engine import Engine
from tests.conftest import git
from tests.doors.cli.test_main import agentplane


def test_rollback_from_the_terminal_waits_for_approval_then_reverts(demo_repo: Path) -> None:
    base = git(demo_repo, "rev-parse", "HEAD^{tree}").strip()
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    run_id = e.start(e.request("fix-failing-test")).run_id
    early = agentplane(demo_repo, "rollback", run_id)
    assert early.returncode == 2 and "Traceback" not in early.stderr
    assert early.stderr.strip() == (
        f"error: run {run_id} is awaiting_approval: only a run that was applied, "
        "or completed, can be rolled back"
    )
    assert e.decide(run_id, MAINTAINER[1], "approve").kind == "applied"
    rb = agentplane(demo_repo, "rollback", run_id)
    assert rb.returncode == 0, rb.stderr
    assert f"Rollback of {run_id}: run " in rb.stdout
    assert "-    return a + b\n+    return a - b" in rb.stdout  # the revert is the evidence
    rb_id = re.search(r"Waiting for approval: (\S+)", rb.stdout).group(1)  # type: ignore[union-attr]
    ok = agentplane(demo_repo, "approve", rb_id, who=MAINTAINER)
    assert ok.returncode == 0 and f"on branch agentplane/run/{rb_id}" in ok.stdout
    assert git(demo_repo, "rev-parse", f"agentplane/run/{rb_id}^{{tree}}").strip() == base
    done = e.load(rb_id)
    assert done.rollback_of == run_id and done.state == "applied"
    assert verify(e.audit).ok
