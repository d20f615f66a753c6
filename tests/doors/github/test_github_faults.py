"""GitHub misbehaving: 20% of the double's calls meet a seeded fault, and every run still
completes with nothing duplicated.

The faults (tests.support.github.chaos) are 5xx answers, 403 and 429 rate limits with
Retry-After, timeouts, slow answers, and writes whose connection drops after they were
made. The bot resends only what cannot act twice and looks before it writes again
(GitHubClient.write); a delivery that still fails goes back to the queue.

AGENTPLANE_FAULT_SEED picks another draw; the seed is printed with the figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.forked import reserve_for_forking, run_forked
from tests.support.github import GitHubDouble
from tests.support.github.chaos import KINDS, Chaos
from tests.support.github.ledger import audit_records, count
from tests.support.github.processes import JOB, JOB_TEXT, Bot, small_repo, warm_up

SEED = int(os.environ.get("AGENTPLANE_FAULT_SEED", "1820"))
PULLS = 3


def handled(
    github: GitHubDouble, chaos: Chaos, bot: Bot, event: str, payload: dict[str, Any], guid: str
) -> None:
    """GitHub sends one delivery; a bot process accepts it and works the queue, while a
    fifth of the calls to GitHub fail."""
    bot.sent.append(guid)
    github.chaos = chaos
    try:
        ended = run_forked(lambda: (bot.accept(event, payload, guid), bot.work()))
    finally:
        github.chaos = None
    assert not ended.error and not ended.killed, ended.error


# In a pytest process of its own (make test's second run): see tests.support.forked.
pytestmark = pytest.mark.forks_bots


def test_a_fifth_of_github_calls_failing_duplicates_nothing(
    github: GitHubDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reserve_for_forking()
    warm_up(github, tmp_path / "warm")
    chaos = Chaos(SEED, rate=0.2, timeout=1.0)
    bots = []
    for i in range(PULLS):
        repo = f"octo/flaky{i}"
        bot = Bot(github, tmp_path / f"bot{i}", timeout=1, backoff=0.05)
        github.create_repo(repo, small_repo())
        github.commit(repo, "add-job", {JOB: JOB_TEXT}, start="main")
        number, opened = github.open_pull(repo, "add-job", author="dana")
        handled(github, chaos, bot, "pull_request", opened, f"{repo}-opened")
        _, review = github.submit_review(repo, number, "maya", "approved")
        handled(github, chaos, bot, "pull_request_review", review, f"{repo}-review")
        bots.append((repo, number, bot))

    duplicates: list[str] = []
    for repo, number, bot in bots:
        deliveries = bot.deliveries()
        assert {deliveries[g] for g in bot.sent} == {"done"}, bot.errors()
        records = audit_records(github, repo)
        newest = bot.newest_run(repo, number)
        final = [r for r in records if r["run_id"] == newest][-1]
        assert final["state"] == "applied", final["transitions"][-1]
        ledger = count(github, repo, ["add-job"])
        assert ledger.applied_commits == 1
        duplicates += ledger.duplicates
    with capsys.disabled():
        kinds = ", ".join(f"{k} {chaos.injected[k]}" for k in KINDS)
        print(
            f"\nGitHub fault suite: seed {SEED}: {sum(chaos.injected.values())} faults injected"
            f" in {chaos.calls} calls ({kinds}); retries {chaos.retries};"
            f" runs completed {len(bots)}/{PULLS};"
            f" duplicates seen {len(duplicates)}"
        )
    assert duplicates == []
    assert all(chaos.injected[k] for k in KINDS), chaos.injected
