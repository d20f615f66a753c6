"""Rollback on real parts: an applied run is undone by a new run (planned, gated, applied
through the one path), checked by the digests of the repository's files and trees."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import openpyxl
import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.errors import RunError
from bot.core.record import AppliedPart, ProposalPart
from bot.demo.code import DEVELOPER, MAINTAINER
from bot.families.browser.family import BrowserFamily
from bot.families.interface import InverseContext
from bot.run.engine import Engine
from tests.conftest import Scripted, git


def engine(repo: Path) -> Engine:
    return Engine(GitRepo(repo), BwrapBackend())


def tree(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}").strip()


def digest(repo: Path, rev: str, path: str) -> str:
    """sha256 of the file's bytes at rev (binary documents included)."""
    blob = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=repo, check=True, capture_output=True
    ).stdout
    return hashlib.sha256(blob).hexdigest()


def applied_demo(repo: Path) -> tuple[Engine, str, str]:
    """The demo job run and applied by a maintainer: (engine, run id, applied commit)."""
    e = engine(repo)
    rec = e.start(e.request("fix-failing-test"))
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied"
    applied = done.applied_commit()
    assert applied is not None
    return e, rec.run_id, applied[0]


def test_rollback_is_a_gated_run_that_restores_the_tree(demo_repo: Path) -> None:
    base = git(demo_repo, "rev-parse", "HEAD").strip()
    before = digest(demo_repo, base, "src/calc.py")
    e, run_id, applied = applied_demo(demo_repo)
    assert digest(demo_repo, applied, "src/calc.py") != before
    rb = e.rollback(run_id)
    # Its own run: planned with policy, a proposal reverting the applied commit, gated.
    assert rb.rollback_of == run_id and rb.run_id != run_id
    assert rb.commit == applied  # HEAD does not hold the change: undone on the run's commit
    assert rb.state == "awaiting_approval" and rb.model is None and not rb.model_calls
    assert [t.state for t in rb.transitions] == ["planned", "running", "awaiting_approval"]
    assert rb.proposal is not None and rb.proposal.paths == ["src/calc.py"]
    assert rb.proposal.parts[0].detail["reverts"] == applied
    assert "-    return a + b\n+    return a - b" in e.patch(rb)
    assert rb.plan.allowed.granted and rb.plan.gates  # the job's own gates
    # The job's checks ran on the undone tree: shown, not blocking (the bug is back).
    assert [v.passed for v in rb.verification] == [False]
    assert "the job's checks fail on the undone tree" in rb.transitions[-1].reason
    # The author of the rollback cannot approve it; a maintainer can.
    assert e.decide(rb.run_id, DEVELOPER[1], "approve").kind == "not_counted"
    done = e.decide(rb.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied"
    revert, branch = done.applied_commit() or ("", "")
    assert branch == f"agentplane/run/{rb.run_id}"
    assert git(demo_repo, "rev-parse", f"{revert}^").strip() == applied
    assert tree(demo_repo, revert) == tree(demo_repo, base)
    assert digest(demo_repo, revert, "src/calc.py") == before
    message = git(demo_repo, "log", "-1", "--format=%B", revert)
    assert f"This reverts commit {applied}." in message
    # The record of the rolled-back run is untouched; both verify on the audit branch.
    assert e.load(run_id).state == "applied"
    assert git(demo_repo, "rev-parse", "HEAD").strip() == base  # working branch untouched


def test_rollback_of_a_merged_run_reverts_on_head_and_keeps_later_work(demo_repo: Path) -> None:
    base = git(demo_repo, "rev-parse", "HEAD").strip()
    e, run_id, applied = applied_demo(demo_repo)
    git(demo_repo, "merge", "-q", "--ff-only", applied)
    (demo_repo / "NOTES.md").write_text("later work\n")
    git(demo_repo, "add", "NOTES.md")
    git(demo_repo, "commit", "-qm", "later work")
    head = git(demo_repo, "rev-parse", "HEAD").strip()
    rb = e.rollback(run_id)
    assert rb.commit == head and rb.state == "awaiting_approval"
    done = e.decide(rb.run_id, MAINTAINER[1], "approve").record
    revert = (done.applied_commit() or ("", ""))[0]
    assert git(demo_repo, "rev-parse", f"{revert}^").strip() == head
    assert digest(demo_repo, revert, "src/calc.py") == digest(demo_repo, base, "src/calc.py")
    assert digest(demo_repo, revert, "NOTES.md") == digest(demo_repo, head, "NOTES.md")


def test_rollback_that_no_longer_applies_fails_and_says_where(demo_repo: Path) -> None:
    e, run_id, applied = applied_demo(demo_repo)
    git(demo_repo, "merge", "-q", "--ff-only", applied)
    calc = demo_repo / "src/calc.py"
    calc.write_text(calc.read_text().replace("a + b", "b + a"))
    git(demo_repo, "commit", "-qam", "edited since")
    rb = e.rollback(run_id)
    assert rb.state == "failed" and rb.proposal is None
    reason = rb.transitions[-1].reason
    assert f"the revert of {applied[:12]} does not apply" in reason and "src/calc.py" in reason
    # --onto the run's own commit still works.
    assert e.rollback(run_id, onto=applied).state == "awaiting_approval"


def test_only_finished_runs_roll_back(demo_repo: Path) -> None:
    e = engine(demo_repo)
    rec = e.start(e.request("fix-failing-test"))
    with pytest.raises(RunError, match="is awaiting_approval: only a run that was applied"):
        e.rollback(rec.run_id)
    e.decide(rec.run_id, MAINTAINER[1], "approve")
    with pytest.raises(RunError, match="--onto 'no-such-branch' names no commit"):
        e.rollback(rec.run_id, onto="no-such-branch")


def test_rollback_is_planned_against_policy_for_its_requester(demo_repo: Path) -> None:
    e, run_id, _ = applied_demo(demo_repo)
    rb = e.rollback(run_id, requester="mallory@example.com")
    assert rb.state == "denied" and rb.proposal is None
    assert rb.transitions[-1].reason.startswith("policies/default.yaml#job_types.code.run_by")


def test_read_only_run_has_nothing_to_undo(demo_repo: Path, scripted_job: Scripted) -> None:
    job = scripted_job(
        "look-only",
        [
            {"content": "reading", "tool_calls": [call("fs_read", path="src/calc.py")]},
            {"content": "add() subtracts; nothing changed."},
        ],
        prompt="say what add() does; done when you said it",
    )
    e = engine(demo_repo)
    rec = e.start(e.request(job))
    assert rec.state == "completed" and rec.proposal is None
    head = tree(demo_repo, "HEAD")
    rb = e.rollback(rec.run_id)
    assert rb.state == "completed" and rb.proposal is None
    assert rb.transitions[-1].reason == (
        f"nothing to undo: run {rec.run_id} changed nothing; it only read "
        "(its tool calls: fs_read) and proposed no change"
    )
    assert tree(demo_repo, "HEAD") == head


def call(name: str, **arguments: str) -> dict[str, object]:
    return {"name": name, "arguments": arguments}


def workbook(value: str) -> bytes:
    book = openpyxl.Workbook()
    book.active["A1"] = value
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_rollback_returns_a_document_byte_for_byte(demo_repo: Path, scripted_job: Scripted) -> None:
    (demo_repo / "docs").mkdir()
    (demo_repo / "docs/q3.xlsx").write_bytes(workbook("Q3 draft"))
    git(demo_repo, "add", "docs")
    git(demo_repo, "commit", "-qm", "the workbook")
    original = hashlib.sha256((demo_repo / "docs/q3.xlsx").read_bytes()).hexdigest()
    edited = workbook("Q3 final").hex()
    write = f"import pathlib; pathlib.Path('docs/q3.xlsx').write_bytes(bytes.fromhex('{edited}'))"
    job = scripted_job(
        "edit-workbook",
        [
            {"content": "editing", "tool_calls": [call("shell", command=f'python3 -c "{write}"')]},
            {"content": "done"},
        ],
        prompt="mark the workbook final; done when A1 says final",
        scope={"filesystem": {"write": ["docs/**"]}},
    )  # fmt: skip
    e = engine(demo_repo)
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval" and rec.proposal.paths == ["docs/q3.xlsx"]
    applied = e.decide(rec.run_id, MAINTAINER[1], "approve").record.applied_commit()
    assert applied is not None and digest(demo_repo, applied[0], "docs/q3.xlsx") != original
    rb = e.rollback(rec.run_id)
    assert rb.state == "awaiting_approval" and rb.proposal.paths == ["docs/q3.xlsx"]
    revert = e.decide(rb.run_id, MAINTAINER[1], "approve").record.applied_commit()
    assert revert is not None
    assert digest(demo_repo, revert[0], "docs/q3.xlsx") == original
    assert tree(demo_repo, revert[0]) == tree(demo_repo, rec.commit)


def test_a_released_browser_request_is_reported_irreversible(demo_repo: Path) -> None:
    part = ProposalPart(
        family="browser", kind="held_request", digest="d" * 64, actions=["submit"],
        summary="the held browser request above",
        detail={"method": "POST", "url": "http://127.0.0.1:8000/users/2", "action": "submit"},
    )  # fmt: skip
    applied = AppliedPart(
        family="browser", summary="released POST http://127.0.0.1:8000/users/2 (HTTP 302)"
    )
    e, run_id, _ = applied_demo(demo_repo)
    old = e.load(run_id)
    ctx = InverseContext(
        record=old, applied=applied, onto=old.commit, repo=e.repo,
        job=e.load_job(old.job_path, old.commit)[1], artifact=e.audit.artifact,
    )  # fmt: skip
    inverse = BrowserFamily().inverse(part, ctx)
    assert inverse.parts == ()
    assert inverse.irreversible.startswith(
        "browser: released POST http://127.0.0.1:8000/users/2 (HTTP 302) reached"
    )
    assert "cannot be taken back" in inverse.irreversible
