"""The scheduler on a real repo and audit branch: through the engine, as `agentplane run`."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.errors import NotAwaitingApproval
from bot.core.record import RunRecord
from bot.demo.code import MAINTAINER
from bot.doors.schedule.runner import Scheduler
from bot.run.engine import Engine
from tests.conftest import git

JOB = ".agentplane/jobs/fix-failing-test.yaml"
LATER = datetime.now(UTC) + timedelta(days=1, hours=1)


def scheduled(repo: Path, schedule: Any = "0 6 * * *", allow: bool = True) -> None:
    """Give the demo job a schedule and let its schedule run it (policy's run_by)."""
    job = yaml.safe_load((repo / JOB).read_text())
    (repo / JOB).write_text(yaml.safe_dump({**job, "schedule": schedule}))
    if allow:
        policy = repo / "policies/default.yaml"
        text = policy.read_text().replace(
            "run_by: [role:developer]\n    tools: [filesystem, shell]",
            "run_by: [role:developer, fix-failing-test@schedule.invalid]\n"
            "    tools: [filesystem, shell]",
        )
        assert "fix-failing-test@schedule.invalid" in text
        policy.write_text(text)
    git(repo, "commit", "-qam", "schedule the demo job")


def engine(repo: Path) -> Engine:
    return Engine(GitRepo(repo), BwrapBackend())


TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


ELAPSED = re.compile(r"in \d+\.\d+s")


def comparable(rec: RunRecord, e: Engine) -> dict[str, Any]:
    """The record without what must differ: its id, door and times (and the requester,
    who for a scheduled run is the schedule itself, never a person)."""
    doc = rec.model_dump(mode="json")
    for key in ("run_id", "door", "door_ref", "requester", "requester_name", "timings", "owner"):
        doc.pop(key)
    doc["plan"].pop("requester")
    doc["plan"].pop("door")
    for a in doc["artifacts"]:
        # The transcript holds the tools' output, whose elapsed times differ: compared below.
        if a["name"] == "transcript.json":
            a["sha256"] = ELAPSED.sub("in Ts", e.audit.artifact(a["sha256"]).decode())
    text = TIMES.sub("T", yaml.safe_dump(doc, width=1 << 20)).replace(rec.run_id, "RUN")
    text = ELAPSED.sub("in Ts", text)
    text = re.sub(r"(duration_ms|latency_ms): [0-9.e+-]+", r"\1: 0", text)
    out: dict[str, Any] = yaml.safe_load(text)
    return out


def test_a_scheduled_run_and_a_terminal_run_differ_only_in_door_requester_and_times(
    demo_repo: Path,
) -> None:
    scheduled(demo_repo)
    e = engine(demo_repo)
    terminal = e.start(e.request("fix-failing-test"))
    assert terminal.state == "awaiting_approval"
    e.cancel(terminal.run_id, "done comparing")
    started, _ = Scheduler(e).run(LATER)
    (s,) = started
    rec = s.record
    assert (rec.door, rec.requester, terminal.door) == (
        "schedule",
        "fix-failing-test@schedule.invalid",
        "cli",
    )
    assert rec.state == "awaiting_approval" and rec.proposal is not None
    assert comparable(rec, e) == comparable(terminal, e)
    # The requester is the schedule: the developer whose git identity is at the terminal
    # (or the bot's, on a runner) is not its author, and policy decides who approves.
    assert rec.requester != e.repo.identity()
    # The same job's run is now unfinished: the next check is blocked, not a second run.
    (v,) = Scheduler(e).due(LATER + timedelta(days=1)).verdicts
    assert not v.due and v.blocked_by is not None and v.blocked_by.run_id == rec.run_id


def test_a_job_policy_does_not_let_its_schedule_run_is_denied_and_recorded(
    demo_repo: Path,
) -> None:
    scheduled(demo_repo, allow=False)
    (s,), _ = Scheduler(engine(demo_repo)).run(LATER)
    assert s.record.state == "denied"
    assert "requester is not in role:developer" in s.record.transitions[-1].reason


def test_drift_mode_reports_what_would_change_and_proposes_nothing(demo_repo: Path) -> None:
    scheduled(demo_repo, {"cron": "0 6 * * *", "timezone": "Europe/Berlin", "mode": "drift"})
    e = engine(demo_repo)
    (s,), _ = Scheduler(e).run(LATER)
    assert s.drift is not None and "1 file(s) would change" in s.drift and "src/calc.py" in s.drift
    assert s.record.state == "completed" and s.record.proposal is not None
    assert s.record.plan_only and "plan only" in s.record.transitions[-1].reason
    # It never waited for approval, not even for a moment: nothing was ever approvable.
    assert "awaiting_approval" not in [t.state for t in s.record.transitions]
    with pytest.raises(NotAwaitingApproval):
        e.decide(s.record.run_id, MAINTAINER[1], "approve")
    # And the drift run counts as the window's run.
    assert Scheduler(e).due(LATER).verdicts[0].due is False


def agentplane(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_schedule_due_and_run_on_the_terminal(demo_repo: Path) -> None:
    scheduled(demo_repo)
    at = LATER.isoformat()
    due = agentplane(demo_repo, "schedule", "due", "--at", at)
    assert re.search(r"^due\s+fix-failing-test", due.stdout, re.M), due.stdout
    ran = agentplane(demo_repo, "schedule", "run", "--at", at)
    assert ran.returncode == 0, ran.stderr
    assert "started fix-failing-test-" in ran.stdout
    again = agentplane(demo_repo, "schedule", "run", "--at", at)
    assert "skipped fix-failing-test: no window" in again.stdout, again.stdout
    assert "started" not in again.stdout
    bad = agentplane(demo_repo, "schedule", "due", "--at", "2025-03-30T06:00:00")
    assert (
        bad.returncode == 2 and "has no time zone" in bad.stderr and "Traceback" not in bad.stderr
    )


def test_a_bad_time_zone_in_a_job_is_located(tmp_path: Path) -> None:
    (tmp_path / "j.yaml").write_text("schedule:\n  cron: '0 6 * * *'\n  timezone: Mars/Olympus\n")
    out = agentplane(tmp_path, "validate", "j.yaml")
    assert out.returncode == 1
    assert "j.yaml:3:3: schedule.timezone: " in out.stderr and "unknown time zone" in out.stderr


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def test_a_job_without_a_zone_is_read_in_policys_zone(demo_repo: Path) -> None:
    routing = demo_repo / "policies/routing.yaml"
    routing.write_text(routing.read_text() + "\nschedule: {timezone: Asia/Tokyo}\n")
    scheduled(demo_repo, "0 6 * * *")
    (v,) = Scheduler(engine(demo_repo)).due(LATER).verdicts
    assert v.job.zone == "Asia/Tokyo"
    scheduled(demo_repo, {"cron": "0 6 * * *", "timezone": "Europe/Berlin"}, allow=False)
    (own,) = Scheduler(engine(demo_repo)).due(LATER).verdicts
    assert own.job.zone == "Europe/Berlin"  # the job's own zone wins


def test_a_bad_policy_zone_is_located() -> None:
    from bot.core.errors import ValidationFailed
    from bot.core.policy import merge_policy

    with pytest.raises(ValidationFailed, match=r"p.yaml:1:\d+: schedule.timezone: unknown time"):
        merge_policy([("p.yaml", "schedule: {timezone: Mars/Olympus}\n")])
