"""Run pages at scale: the /runs list at 10,000 runs, and one index update when a record
arrives.

Builds a signed audit branch of 10,000 synthetic run records (one entry each, shaped like
the engine's), indexes it, then times the list page (through the app, as a browser gets
it) and the incremental update after one more append.

Run: .venv/bin/python -m bench.bench_runs
Prints numbers only; there are no thresholds.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bot.adapters.audit.log import AuditLog
from bot.doors.web.app import Origins, build
from bot.doors.web.index import RunFilter, RunIndex
from bot.doors.web.site import Site, User
from bot.run.engine import Engine
from tests.support.jobs import browser_plan

RUNS = 10_000
STATES = ("applied", "denied", "awaiting_approval", "failed", "completed")


def record(i: int, plan: dict[str, Any]) -> dict[str, Any]:
    at = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
    return {
        "schema_version": 2,
        "run_id": f"job-{i % 20}-{i:06d}",
        "job_name": f"job-{i % 20}",
        "job_path": f".agentplane/jobs/job-{i % 20}.yaml",
        "job_digest": "sha256:" + "0" * 64,
        "repo": f"org/repo-{i % 7}",
        "commit": "0" * 40,
        "door": ("cli", "pull_request", "web")[i % 3],
        "requester": f"user{i % 50}@example.com",
        "prompt": "do the thing",
        "plan": plan,
        "tools_granted": ["browser"],
        "model": None,
        "state": STATES[i % len(STATES)],
        "transitions": [
            {"state": "planned", "at": at, "reason": "planned"},
            {"state": STATES[i % len(STATES)], "at": at, "reason": "done"},
        ],
        "cost_usd": 0.01 * (i % 10),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q",
             "--allow-empty", "-m", "init"],
            cwd=repo, check=True,
        )  # fmt: skip
        log = AuditLog(repo)
        plan = browser_plan().model_dump(mode="json")
        start = time.perf_counter()
        for i in range(RUNS):
            log.append(f"job-{i % 20}-{i:06d}", record(i, plan))
        print(f"built {RUNS} runs on the audit branch in {time.perf_counter() - start:.1f} s")

        engine = Engine.__new__(Engine)  # only .audit is read by the list page
        engine.audit = log
        index = RunIndex(Path(tmp) / "index.sqlite")
        start = time.perf_counter()
        index.update(log)
        print(f"full index build: {time.perf_counter() - start:.2f} s")

        site = Site(engine, index, User("bench@example.com"))
        site.refresh = lambda: index.update(log)  # type: ignore[method-assign]
        client = TestClient(build(site, Origins("http://testserver", frozenset({"testserver"}))))
        for label, params in (
            ("list page (newest 100)", {}),
            ("list page, filtered by state and door", {"state": "denied", "door": "web"}),
            ("list page, page 50", {"page": "50"}),
        ):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                response = client.get("/runs", params=params)
                times.append(time.perf_counter() - t)
                assert response.status_code == 200
            print(f"{label} at {RUNS} runs: {min(times) * 1000:.1f} ms (best of 5)")

        log.append("job-0-999999", record(999_999, plan))
        t = time.perf_counter()
        read = index.update(log)
        print(f"index update after one record arrives: {(time.perf_counter() - t) * 1000:.1f} ms "
              f"({read} entry read)")  # fmt: skip
        assert index.query(RunFilter()).total == RUNS + 1


if __name__ == "__main__":
    main()
