"""Policy decisions per second: plan() over the shipped policy, against parsing alone."""

from __future__ import annotations

import time
from pathlib import Path

from bot.core.job import load_job
from bot.core.policy import merge_policy
from bot.core.request import RunRequest
from tests.support.planning import plan

ROOT = Path(__file__).resolve().parents[1]
N = 5000


def main() -> None:
    policy = merge_policy(
        [
            (str(p.relative_to(ROOT)), p.read_text())
            for p in sorted((ROOT / "policies").glob("*.yaml"))
        ]
    )
    job = load_job(ROOT / ".agentplane/jobs/fix-failing-test.yaml")
    req = RunRequest(
        job=job, job_path="j.yaml", requester="dana@example.com", repo="r", commit="0" * 40
    )
    began = time.perf_counter()
    for _ in range(N):
        plan(req, policy)
    decide = N / (time.perf_counter() - began)
    began = time.perf_counter()
    for _ in range(N):
        RunRequest.model_validate(req.model_dump())
    baseline = N / (time.perf_counter() - began)
    print(
        f"policy decisions: {decide:,.0f} plans/s; baseline (re-validating the request "
        f"alone): {baseline:,.0f}/s; ratio {baseline / decide:.1f}x"
    )


if __name__ == "__main__":
    main()
