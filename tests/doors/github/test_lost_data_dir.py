"""A lost data directory (the delivery queue and the PR <-> run index) between deliveries:
the bot's webhook endpoint and worker, as processes run them, over the GitHub double.

The index comes back from the audit branch and the evidence time from GitHub's comment,
so the awaiting run is still approved by a review, no run is planned twice, and no
comment, check run, commit or audit record is made twice (the double's ledger)."""

from __future__ import annotations

from pathlib import Path

from bot.doors.github.flow import reconcile
from bot.doors.github.state import PullState
from tests.support.github import GitHubDouble
from tests.support.github.ledger import audit_records, count
from tests.support.github.processes import JOB, JOB_TEXT, Bot, small_repo

REPO = "octo/lost"


def lose_data_dir(root: Path) -> None:
    """What a wiped or replaced volume leaves: no queue, no index (the clones stay: they
    hold the audit log, see the README)."""
    lost = [p for p in root.iterdir() if p.name.startswith(("queue.db", "state.db"))]
    assert {p.name for p in lost} >= {"queue.db", "state.db"}
    for path in lost:
        path.unlink()


def awaiting(github: GitHubDouble, bot: Bot) -> tuple[int, dict[str, object]]:
    github.create_repo(REPO, small_repo())
    github.commit(REPO, "add-job", {JOB: JOB_TEXT}, start="main")
    number, opened = github.open_pull(REPO, "add-job", author="dana")
    bot.accept("pull_request", opened, "opened")
    bot.work()
    return number, opened


def runs_recorded(github: GitHubDouble) -> set[str]:
    return {r["run_id"] for r in audit_records(github, REPO)}


def test_the_index_is_rebuilt_and_the_awaiting_run_is_approved_once(
    github: GitHubDouble, tmp_path: Path
) -> None:
    bot = Bot(github, tmp_path / "bot")
    number, opened = awaiting(github, bot)
    (run_id,) = runs_recorded(github)
    shown = count(github, REPO, ["add-job"])
    _, review = github.submit_review(REPO, number, "maya", "approved")  # GitHub has it...
    lose_data_dir(bot.root)  # ...but the bot loses its data before the delivery arrives

    # GitHub sends the review; its dedup memory gone, the bot also takes a redelivery of
    # the PR's opening, and the reconciler walks the open PRs.
    bot.accept("pull_request_review", review, "review")
    bot.accept("pull_request", opened, "opened")
    bot.work()
    bot.reconcile()

    assert PullState(bot.root / "state.db").runs(REPO, number) == [
        (JOB, opened_head(github, number, run_id), run_id)
    ]
    records = [r for r in audit_records(github, REPO) if r["run_id"] == run_id]
    assert records[-1]["state"] == "applied", records[-1]["transitions"][-1]
    assert runs_recorded(github) == {run_id}  # nothing planned again
    after = count(github, REPO, ["add-job"])
    assert after.duplicates == []
    assert after.applied_commits == 1
    assert after.comments == shown.comments  # the evidence comment edited, none added


def opened_head(github: GitHubDouble, number: int, run_id: str) -> str:
    """The head the run was planned on (the PR's head before the applied commit)."""
    (record,) = [r for r in audit_records(github, REPO) if r["run_id"] == run_id][:1]
    return str(record["commit"])


def test_a_review_given_before_the_evidence_still_does_not_count_after_the_loss(
    github: GitHubDouble, tmp_path: Path
) -> None:
    """The rebuilt evidence time is GitHub's, from the comment: a lost index cannot make
    an early review count."""
    bot = Bot(github, tmp_path / "bot")
    github.create_repo(REPO, small_repo())
    github.commit(REPO, "add-job", {JOB: JOB_TEXT}, start="main")
    number, opened = github.open_pull(REPO, "add-job", author="dana")
    _, early = github.submit_review(REPO, number, "maya", "approved")  # nothing to see yet
    bot.accept("pull_request", opened, "opened")
    bot.work()
    lose_data_dir(bot.root)
    bot.accept("pull_request_review", early, "early")
    bot.work()
    (run_id,) = runs_recorded(github)
    final = [r for r in audit_records(github, REPO) if r["run_id"] == run_id][-1]
    assert final["state"] == "awaiting_approval"
    assert count(github, REPO, ["add-job"]).duplicates == []


def test_the_reconciler_relearns_the_repositories_from_the_clones(
    github: GitHubDouble, tmp_path: Path
) -> None:
    """With no delivery coming, the reconciler alone still finds the repository (the
    index of repositories went with state.db) and walks its open pull requests."""
    bot = Bot(github, tmp_path / "bot")
    awaiting(github, bot)
    lose_data_dir(bot.root)
    queue = bot.queue()
    assert reconcile(bot.door(), queue.put) == 1  # the one open PR, enqueued
    assert PullState(bot.root / "state.db").repos() == [(REPO, github.installations["octo"])]
