"""`/agentplane plan` and `/agentplane apply` do what their help says (issue 13's bug):
plan posts the plan and runs nothing; apply applies only on approvals that already count,
and otherwise says that approval is a review and what is pending."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.record import Approval
from bot.demo.code import PROJECT
from bot.doors.github.flow import PullRequestDoor
from bot.run.engine import Engine
from tests.doors.github.test_flow import (
    JOB,
    REPO,
    add_job_pr,
    bot_log,
    deliver,
    door_for,
    latest,
    run_id,
)
from tests.support.github import GitHubDouble


@pytest.fixture
def door(github: GitHubDouble, tmp_path: Path) -> PullRequestDoor:
    return door_for(github, tmp_path)


def replies(github: GitHubDouble, number: int) -> str:
    return "\n".join(c.body for c in github.comments(REPO, number))


def test_plan_posts_the_plan_and_starts_no_run(github: GitHubDouble, door: PullRequestDoor) -> None:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, _ = github.open_pull(REPO, "add-job", author="dana")  # its delivery is not handled
    cid, plan = github.add_comment(REPO, number, "dana", "/agentplane plan")
    assert deliver(door, "issue_comment", plan) == "planned 1 of 1 job(s)"
    assert github.reactions(REPO, cid) == ["+1"]
    assert door.state.runs(REPO, number) == []  # nothing was run, staged or recorded
    body = replies(github, number)
    assert "(nothing was run)" in body and "Plan for job fix-failing-test" in body
    assert "requester  dana via pull_request" in body  # a login, not the github: key
    assert "gate       write" in body


def test_apply_without_enough_approvals_says_approval_is_a_review(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, _ = add_job_pr(github, door)
    _, apply = github.add_comment(REPO, number, "dana", "/agentplane apply")
    assert deliver(door, "issue_comment", apply) == "apply: fix-failing-test: pending"
    body = replies(github, number)
    assert "approval is an approving review on this pull request" in body
    assert "`fix-failing-test`: needs 1 approval(s) from role:maintainer; have 0" in body
    assert latest(door, run_id(door, number))["state"] == "awaiting_approval"


def test_apply_applies_when_counted_approvals_already_meet_every_gate(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, head = add_job_pr(github, door)
    # A counted approval already on the record that nothing applied yet (another door's, or
    # a process's that stopped between recording it and applying): apply needs no review.
    engine = Engine(GitRepo(bot_log(door)), BwrapBackend())
    engine.policy()  # reads are checked against policy's signers
    rec = engine.load(run_id(door, number))
    assert rec.proposal is not None
    rec.approvals.append(
        Approval(
            approver=f"github:{github.user_id('maya')}",
            name="maya",
            door="pull_request",
            decision="approve",
            commit=rec.commit,
            job_digest=rec.job_digest,
            proposal_digest=rec.proposal.digest,
            at="2026-12-01T00:00:00Z",
            counted=True,
            reason="counted",
        )
    )
    engine.audit.append(rec.run_id, rec.model_dump(mode="json"))
    _, apply = github.add_comment(REPO, number, "dana", "/agentplane apply")
    assert deliver(door, "issue_comment", apply) == "apply: fix-failing-test: applied"
    assert latest(door, run_id(door, number))["state"] == "applied"
    assert github.head_sha(REPO, number) != head  # the applied commit is on the PR branch


def test_apply_with_nothing_waiting_says_so(github: GitHubDouble, door: PullRequestDoor) -> None:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, _ = github.open_pull(REPO, "add-job", author="dana")
    _, apply = github.add_comment(REPO, number, "dana", "/agentplane apply")
    # No run: nobody is its requester or approver, so the command is refused as before.
    assert deliver(door, "issue_comment", apply).startswith("refused")
