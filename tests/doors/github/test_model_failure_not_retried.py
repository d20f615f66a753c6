"""A delivery whose run the model failed is not retried blindly (#15): a retry would run
the model again, pay for it again, and fail the same way. The worker marks it done with
the failure; the failure is on the PR as usual. Any other failure is still retried."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from bot.demo.code import PROJECT
from bot.doors.github.flow import PullRequestDoor
from bot.doors.github.queue import Leased, SqliteQueue
from bot.doors.github.sansio import Delivery
from bot.doors.github.server import Metrics, Worker
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for

CUT = ".agentplane/jobs/asker.yaml"  # the double's policy routes model `asker` to this script
CUT_JOB = (
    "job_type: code\nmodel: asker\ntools: [filesystem]\n"
    "prompt: fix add(); done when the tests pass\n"
    "scope: {filesystem: {write: ['src/**']}}\n"
)
# The model's answer is cut off by its token limit: the run fails, failure == "model".
CUT_SCRIPT = yaml.safe_dump({"turns": [{"content": "The fix is to chan", "finish": "length"}]})


def opened(github: GitHubDouble, files: dict[str, str | bytes | None]) -> tuple[int, Delivery]:
    github.commit(REPO, "change", files, start="main")
    number, payload = github.open_pull(REPO, "change", author="dana")
    return number, Delivery("pull_request", f"opened-{number}", "1", payload)


def refuse_the_approval_check(github: GitHubDouble, door: PullRequestDoor) -> None:
    """GitHub refuses the run's check once the run has ended: the delivery fails after
    the run, as it would when GitHub is down or the App lost a permission."""

    def arm(rec: Any) -> None:
        if rec.state not in ("planned", "running"):
            github.fail_next("POST", r"/check-runs$", status=403)

    door.on_publish = arm


def worker_for(door: PullRequestDoor, tmp_path: Path) -> tuple[Worker, SqliteQueue, Metrics]:
    queue = SqliteQueue(tmp_path / "q.db")
    metrics = Metrics()
    return Worker(queue, door.handle, metrics), queue, metrics


def handled(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("agentplane_handled_total", {"result": result})
    return value or 0.0


def test_a_delivery_whose_run_the_model_failed_is_done_with_the_failure_not_retried(
    github: GitHubDouble, tmp_path: Path
) -> None:
    door = door_for(github, tmp_path)
    number, delivery = opened(github, {CUT: CUT_JOB, ".agentplane/scripts/asker.yaml": CUT_SCRIPT})
    refuse_the_approval_check(github, door)
    worker, queue, metrics = worker_for(door, tmp_path)
    queue.put(delivery)
    assert worker.run_once()
    assert queue.counts() == {"done_failed": 1}
    assert handled(metrics, "not_retried") == 1 and handled(metrics, "error") == 0
    # Never leased again, not even once any backoff would have passed.
    assert queue.lease() is None and not worker.run_once()
    db = sqlite3.connect(tmp_path / "q.db")
    (error,) = db.execute("SELECT error FROM deliveries").fetchone()
    assert error.startswith("the model failed asker (") and "403" in error, error
    # The failure is on the PR as usual, with the model's reason; the model ran once.
    (body,) = [c.body for c in github.comments(REPO, number) if f"run:{CUT}" in c.body]
    assert "\n### agentplane: `asker` is failed\n" in body, body.splitlines()[:2]
    assert "length" in body
    assert len(door.state.runs(REPO, number)) == 1


def test_the_failure_is_shown_even_when_posting_it_was_what_failed(
    github: GitHubDouble, tmp_path: Path
) -> None:
    """The evidence comment itself is refused once: it is posted before the worker lets go."""
    door = door_for(github, tmp_path)
    number, delivery = opened(github, {CUT: CUT_JOB, ".agentplane/scripts/asker.yaml": CUT_SCRIPT})

    def arm(rec: Any) -> None:
        if rec.state == "failed":
            door.on_publish = lambda rec: None
            github.fail_next("POST", r"/issues/\d+/comments$", status=403)

    door.on_publish = arm
    worker, queue, _ = worker_for(door, tmp_path)
    queue.put(delivery)
    assert worker.run_once()
    assert queue.counts() == {"done_failed": 1}
    bodies = [c.body for c in github.comments(REPO, number) if f"run:{CUT}" in c.body]
    assert len(bodies) == 1 and "length" in bodies[0]


def test_a_delivery_that_failed_after_a_run_the_model_did_not_fail_is_retried(
    github: GitHubDouble, tmp_path: Path
) -> None:
    door = door_for(github, tmp_path)
    _, delivery = opened(github, {JOB: (PROJECT / JOB).read_text()})
    refuse_the_approval_check(github, door)
    worker, queue, metrics = worker_for(door, tmp_path)
    queue.put(delivery)
    assert worker.run_once()
    assert queue.counts() == {"queued": 1}  # back in the queue, after its backoff
    assert handled(metrics, "error") == 1 and handled(metrics, "not_retried") == 0


def test_done_failed_is_final(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.db")
    queue.put(Delivery("pull_request", "g", "1", {"x": 1}))
    item = queue.lease(seconds=0.0)
    assert isinstance(item, Leased)
    queue.done_failed(item, "the model failed")
    assert queue.lease() is None  # even with its lease run out
    assert queue.counts() == {"done_failed": 1}


def test_when_github_refuses_the_failure_twice_the_delivery_still_ends_and_says_so(
    github: GitHubDouble, tmp_path: Path, caplog: Any
) -> None:
    door = door_for(github, tmp_path)
    number, delivery = opened(github, {CUT: CUT_JOB, ".agentplane/scripts/asker.yaml": CUT_SCRIPT})

    def arm(rec: Any) -> None:
        if rec.state == "failed":
            door.on_publish = lambda rec: None
            github.fail_next("POST", r"/issues/\d+/comments$", status=403, times=2)

    door.on_publish = arm
    worker, queue, _ = worker_for(door, tmp_path)
    queue.put(delivery)
    assert worker.run_once()
    assert queue.counts() == {"done_failed": 1}
    assert "cannot show" in caplog.text and "failure" in caplog.text
    assert not [c for c in github.comments(REPO, number) if f"run:{CUT}" in c.body]
