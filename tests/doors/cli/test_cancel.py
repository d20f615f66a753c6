"""`agentplane cancel RUN` and the author's own `deny`: a run that waits on people can be
taken back by its requester or cancelled by an approver, recorded; nobody else may.
(An approver's cancel: tests/doors/cli/test_artifact_and_replay.py, on its run.)
Runs are started in-process (the run itself is not under test here); every command under
test is a real `agentplane` process."""

from __future__ import annotations

import re
from pathlib import Path

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.backends import Lazy
from bot.core.record import RunRecord
from bot.run.engine import Engine
from tests.doors.cli.test_main import agentplane

STRANGER = ("Sam Stranger", "sam@example.com")


def _engine(repo: Path) -> Engine:
    return Engine(GitRepo(repo), Lazy("bwrap"))


def _waiting(repo: Path) -> str:
    e = _engine(repo)
    rec = e.start(e.request("fix-failing-test"))
    assert rec.state == "awaiting_approval", rec.transitions
    return rec.run_id


def _record(repo: Path, run_id: str) -> RunRecord:
    return _engine(repo).load(run_id)


def test_the_authors_deny_withdraws_and_nobody_else_may_cancel(demo_repo: Path) -> None:
    run_id = _waiting(demo_repo)
    refused = agentplane(demo_repo, "cancel", run_id, who=STRANGER)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"error: {STRANGER[1]} may not cancel run {run_id}")
    own = agentplane(demo_repo, "approve", run_id)  # the identity rule holds
    assert own.returncode == 2 and "authors cannot approve their own run" in own.stderr
    assert _record(demo_repo, run_id).state == "awaiting_approval"

    denied = agentplane(demo_repo, "deny", run_id)
    assert denied.returncode == 0, denied.stderr
    assert re.match(rf"{run_id}\s+cancelled ", denied.stdout)
    rec = _record(demo_repo, run_id)
    assert rec.state == "cancelled"
    assert rec.transitions[-1].reason == "withdrawn by dana@example.com: denied by its requester"
    assert [(a.decision, a.counted) for a in rec.approvals] == [("approve", False)]

    again = agentplane(demo_repo, "cancel", run_id)
    assert again.returncode == 2
    assert again.stderr.startswith(f"error: run {run_id} is cancelled: only a run awaiting")


def test_run_deny_by_its_author_withdraws_it(demo_repo: Path) -> None:
    out = agentplane(demo_repo, "run", "fix-failing-test", "--deny")
    assert out.returncode == 0, out.stderr
    assert "authors cannot approve" not in out.stderr
    found = re.search(r"^(fix-failing-test-\S+)\s+cancelled ", out.stdout, re.M)
    assert found, out.stdout
    reason = _record(demo_repo, found.group(1)).transitions[-1].reason
    assert reason == "withdrawn by dana@example.com: denied by its requester"
