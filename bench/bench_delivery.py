"""Webhook delivery to evidence comment, against the same job run from the terminal.

The GitHub door runs against the spec-checked GitHub double on loopback: each
iteration commits the job to a fresh branch, opens a pull request and times
`door.handle()` on its `opened` delivery (clone/fetch, checks, the run, comments,
audit push). The baseline is `Engine.start` on a local repo, i.e. the terminal
door. Both use the scripted model and the bubblewrap sandbox.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.code import PROJECT, build_repo
from bot.doors.github.sansio import Delivery
from bot.run.engine import Engine
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for

ITERATIONS = 3


def _median_s(run: Callable[[int], float], n: int) -> float:
    run(0)  # warm-up: first clone, imports, page cache
    return statistics.median(run(i) for i in range(1, n + 1))


def _github(root: Path) -> float:
    with GitHubDouble(root) as gh:
        door = door_for(gh, root)

        def once(i: int) -> float:
            branch = f"add-job-{i}"
            gh.commit(REPO, branch, {JOB: (PROJECT / JOB).read_text()}, start="main")
            number, payload = gh.open_pull(REPO, branch, author="dana")
            began = time.perf_counter()
            done = door.handle(Delivery("pull_request", f"guid-{i}", "1", payload))
            took = time.perf_counter() - began
            assert done == "ran 1 of 1 job(s)", done
            assert [c for c in gh.comments(REPO, number) if f"run:{JOB}" in c.body], "no evidence"
            return took

        median = _median_s(once, ITERATIONS)
        assert gh.violations == [], gh.violations
    return median


def _terminal(root: Path) -> float:
    build_repo(root)
    engine = Engine(GitRepo(root), BwrapBackend())

    def once(_: int) -> float:
        began = time.perf_counter()
        rec = engine.start(engine.request("fix-failing-test", requester="dana@example.com"))
        took = time.perf_counter() - began
        assert rec.state == "awaiting_approval", rec.state
        return took

    return _median_s(once, ITERATIONS)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="agentplane-bench-") as tmp:
        door_s = _github(Path(tmp) / "github")
        terminal_s = _terminal(Path(tmp) / "terminal")
    print(
        f"delivery -> evidence comment: {door_s:.2f} s median (clone/fetch, checks, comments,"
        f" audit push); same job from the terminal {terminal_s:.2f} s;"
        f" ratio {door_s / terminal_s:.1f}x"
    )


if __name__ == "__main__":
    main()
