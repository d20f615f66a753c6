"""Crash anywhere, lose nothing, do nothing twice: 100 SIGKILLs across the run path.

Each pull request's story (opened, proposed, evidence, approved, applied, pushed) is
played by bot processes forked from this one: the webhook endpoint, a worker, the
reconciler. A seeded draw arms named kill points (bot.run.killpoints) in them; a killed
endpoint is re-sent its delivery, as GitHub does when it gets no answer, and a killed
worker is followed by a fresh one. Afterwards every run is applied, every delivery done,
and the GitHub double counts no comment, check run, commit or audit record twice.

AGENTPLANE_KILL_SEED picks another draw; the seed in use is printed with the figures.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

from bot.adapters.git import run_git
from bot.run.killpoints import ENV, POINTS
from tests.support.forked import reserve_for_forking, run_forked
from tests.support.github import GitHubDouble
from tests.support.github.ledger import audit_records, count
from tests.support.github.processes import JOB, JOB_TEXT, Bot, small_repo, warm_up

SEED = int(os.environ.get("AGENTPLANE_KILL_SEED", "1818"))
KILLS = int(os.environ.get("AGENTPLANE_KILLS", "100"))
MAX_PER_STEP = {"accept": 2, "propose": 2, "apply": 5, "reconcile": 0}
"""Kills armed, one after another, in one step before it is let through. Each pull request
costs about two seconds before any kill (a proposal, an apply, a reconciler pass), so
several kills per step keep the pull requests few; a kill while proposing costs a fresh
proposal, the dearest step, hence fewer there."""

# Which points a step of the story can reach (the endpoint only accepts; the first worker
# plans and proposes; the second applies; every worker posts evidence and pushes).
REACH = {
    "accept": ("delivery-accepted",),
    "propose": ("plan", "propose", "evidence-posted", "audit-push"),
    "apply": ("approval-seen", "apply", "evidence-posted", "audit-push"),
    "reconcile": (),
}
HITS = {"propose": 2, "evidence-posted": 2}
"""Points reached more than once in a step: the n-th hit is drawn."""


class Story:
    def __init__(self, bot: Bot, rng: random.Random) -> None:
        self.bot, self.rng = bot, rng
        self.kills: Counter[str] = Counter()
        self.steps = 0

    def step(self, kind: str, action: object) -> None:
        """Run action in fresh processes until one finishes; kill up to MAX_PER_STEP first."""
        assert callable(action)
        for _ in range(self.rng.randint(0, MAX_PER_STEP[kind])):
            point = self.rng.choice(REACH[kind])
            nth = self.rng.randint(1, HITS.get(point, 1))
            ended = run_forked(action, {ENV: f"{point}:{nth}"})
            assert not ended.error, ended.error
            if ended.killed:
                self.kills[point] += 1
        ended = run_forked(action)
        assert not ended.error, ended.error
        assert not ended.killed
        self.steps += 1


def play(github: GitHubDouble, repo: str, story: Story) -> int:
    bot = story.bot
    github.create_repo(repo, small_repo())
    github.commit(repo, "add-job", {JOB: JOB_TEXT}, start="main")
    number, opened = github.open_pull(repo, "add-job", author="dana")
    guid = f"{repo}-opened"
    bot.sent.append(guid)
    story.step("accept", lambda: bot.accept("pull_request", opened, guid))
    story.step("propose", bot.work)
    _, review = github.submit_review(repo, number, "maya", "approved")
    guid = f"{repo}-review"
    bot.sent.append(guid)
    story.step("accept", lambda: bot.accept("pull_request_review", review, guid))
    story.step("apply", bot.work)
    story.step("reconcile", bot.reconcile)  # a worker killed last leaves the reconciler work
    return number


# In a pytest process of its own (make test's second run): see tests.support.forked.
pytestmark = pytest.mark.forks_bots


def test_kills_anywhere_lose_nothing_and_repeat_nothing(
    github: GitHubDouble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reserve_for_forking()
    warm_up(github, tmp_path / "warm")
    rng = random.Random(SEED)
    stories: list[tuple[str, int, Story]] = []
    kills = 0
    while kills < KILLS:
        repo = f"octo/demo{len(stories)}"
        story = Story(Bot(github, tmp_path / f"bot{len(stories)}"), rng)
        stories.append((repo, play(github, repo, story), story))
        kills = sum(sum(s.kills.values()) for _, _, s in stories)

    by_point: Counter[str] = Counter()
    duplicates: list[str] = []
    sent = done = 0
    for repo, number, story in stories:
        bot = story.bot
        by_point += story.kills
        # No delivery lost: everything GitHub sent is in the queue, and done.
        deliveries = bot.deliveries()
        assert set(bot.sent) <= set(deliveries), (repo, bot.sent, deliveries)
        assert {s for g, s in deliveries.items() if g in bot.sent} == {"done"}, deliveries
        sent += len(set(bot.sent))
        done += sum(1 for g in set(bot.sent) if deliveries[g] == "done")
        # Every run completed: the newest is applied and its commit is the PR's head.
        records = audit_records(github, repo)
        newest = bot.newest_run(repo, number)
        final = [r for r in records if r["run_id"] == newest][-1]
        assert final["state"] == "applied", final["transitions"][-1]
        commit = next(a["details"]["commit"] for a in final["applied"] if "commit" in a["details"])
        assert github.head_sha(repo, number) == commit
        # Nothing left in flight, and the bot's whole log reached GitHub.
        assert {r["run_id"]: r["state"] for r in records}.keys() >= {newest}
        in_flight = {r["run_id"]: r["state"] for r in records}
        assert not {k: v for k, v in in_flight.items() if v in ("planned", "running", "approved")}
        clone = bot.root / "repos" / repo.replace("/", "__")
        ours = run_git("rev-parse", "refs/heads/agentplane/audit", cwd=clone).stdout.strip()
        assert github.repo(repo).tip("agentplane/audit") == ours
        ledger = count(github, repo, ["add-job"])
        assert ledger.applied_commits == 1
        duplicates += ledger.duplicates

    with capsys.disabled():
        print(
            f"\nkill suite: seed {SEED}: {kills} kills survived over {len(stories)} pull "
            f"requests ({', '.join(f'{p} {by_point[p]}' for p in POINTS)}); "
            f"deliveries {sent} sent, {done} done, {sent - done} lost; "
            f"duplicates seen {len(duplicates)}"
        )
    assert duplicates == []
    if kills >= 100:
        assert set(by_point) == set(POINTS), "every stage of the run path was killed"
