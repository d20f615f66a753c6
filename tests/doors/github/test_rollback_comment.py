"""`/agentplane rollback` on a pull request: the applied run is undone by a new run of the
PR, gated by review like any, and the branch's tree returns to what it was (by digest)."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from bot.doors.github.flow import PullRequestDoor
from tests.doors.github.test_flow import add_job_pr, deliver, list_bot_key
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for


@pytest.fixture
def door(github: GitHubDouble, tmp_path: Path) -> PullRequestDoor:
    return door_for(github, tmp_path)


def tree(github: GitHubDouble, sha: str) -> str:
    return str(github.repo(REPO).git()[sha].peel(pygit2.Commit).tree_id)


def test_a_comment_rolls_back_the_applied_run_and_review_applies_the_revert(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, head = add_job_pr(github, door)
    list_bot_key(github, door)
    before = tree(github, head)
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    applied_head = github.head_sha(REPO, number)
    assert tree(github, applied_head) != before

    # Someone with no role may not ask; a developer may, and it waits for review.
    _, event = github.add_comment(REPO, number, "mallory", "/agentplane rollback")
    assert deliver(door, "issue_comment", event).startswith("refused:")
    _, event = github.add_comment(REPO, number, "dana", "/agentplane rollback")
    said = deliver(door, "issue_comment", event)
    assert said.startswith("rollback of fix-failing-test-") and said.endswith("awaiting_approval")
    (shown,) = [c.body for c in github.comments(REPO, number) if f"rollback:{JOB}" in c.body]
    assert "-    return a + b" in shown  # the revert of the fix, shown before anyone approves
    assert github.head_sha(REPO, number) == applied_head  # nothing moved yet

    # The requester cannot approve it; an approver's review applies the revert on the branch.
    _, own = github.submit_review(REPO, number, "dana", "approved")
    assert "not counted" in deliver(door, "pull_request_review", own)
    _, review = github.submit_review(REPO, number, "omar", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    reverted = github.head_sha(REPO, number)
    assert reverted != applied_head and tree(github, reverted) == before

    # Nothing applied is left to undo.
    _, event = github.add_comment(REPO, number, "dana", "/agentplane rollback nosuch-run")
    assert deliver(door, "issue_comment", event) == "ignored: nothing to roll back"
