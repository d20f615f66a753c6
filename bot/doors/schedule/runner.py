"""The scheduler's edge: read scheduled jobs from the default branch and past runs from the
audit branch, ask due.py, and start what is due through the engine, as `agentplane run` does.

Nothing is kept beside the audit branch: a job's last scheduled run is its newest record
with door `schedule`, and an unfinished run is one whose latest state is not final. The
requester of a scheduled run is the schedule itself (`<job>@schedule.invalid`), so policy
decides which jobs may run unattended (list that key in the job type's run_by) and nobody,
the bot's git identity included, is its author when it comes to approving it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.adapters.git import run_git
from bot.core.errors import AgentplaneError
from bot.core.record import PATCH, DoorRef, RunRecord
from bot.doors.schedule.due import (
    SCHEDULE_DOOR,
    PastRun,
    ScheduledJob,
    Verdict,
    decide,
    parse_time,
)
from bot.run.engine import Engine
from bot.run.inputs import JOBS_DIR

DoorRefFor = Callable[[ScheduledJob], DoorRef | None]


def schedule_requester(job_name: str) -> str:
    """Who asks for a scheduled run: the schedule of that job, never a person or the bot.

    Email-shaped, in the reserved `.invalid` domain (RFC 2606), because policy's identities
    are GitHub ids, logins or emails (bot.core.identity): a `schedule:` kind of principal
    is asked for in the needs file, and this is the one place that would change."""
    return f"{job_name}@schedule.invalid"


@dataclass(frozen=True)
class Started:
    verdict: Verdict
    record: RunRecord
    drift: str | None = None
    """For a `drift` (plan-only) schedule: what the job would change now ("" for nothing)."""


@dataclass
class Listing:
    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Job files that could not be read: reported, and they block no other job."""


class Scheduler:
    def __init__(self, engine: Engine, default_zone: str | None = None) -> None:
        self.engine = engine
        self._zone = default_zone

    @property
    def default_zone(self) -> str:
        """The zone a job without its own is read in: policy's `schedule.timezone` (from
        the default branch), unless the caller names one."""
        if self._zone is None:
            self._zone = self.engine.policy().schedule.timezone
        return self._zone

    def commit(self) -> str:
        """The default branch's commit: scheduled jobs run as the default branch has them."""
        repo = self.engine.repo
        return str(repo.repo.commit(repo.policy_ref()).hexsha)

    def jobs(self, commit: str) -> tuple[list[ScheduledJob], list[str]]:
        found: list[ScheduledJob] = []
        problems: list[str] = []
        listed = self.engine.repo.read_dir(commit, JOBS_DIR, (".yaml", ".yml"))
        for path, _ in listed:
            try:
                _, job = self.engine.load_job(path, commit)
            except AgentplaneError as exc:
                problems.append(f"{path}: {exc}")
                continue
            if job.schedule is None:
                continue
            found.append(
                ScheduledJob(
                    name=job.name,
                    path=path,
                    cron=job.schedule.cron.strip(),
                    zone=job.schedule.timezone or self.default_zone,
                    mode=job.schedule.mode,
                    changed_at=self._changed_at(commit, path),
                )
            )
        return found, problems

    def _changed_at(self, commit: str, path: str) -> datetime:
        out = run_git("log", "-1", "--format=%cI", commit, "--", path, cwd=self.engine.repo.root)
        return parse_time(out.stdout.strip())

    def history(self) -> list[PastRun]:
        """Every run on the audit branch, oldest first, from its verified records."""
        runs = []
        for run_id in self.engine.audit.run_ids():
            rec = self.engine.load(run_id)
            if not rec.transitions:
                continue
            runs.append(
                PastRun(
                    run_id=rec.run_id,
                    job_name=rec.job_name,
                    door=rec.door,
                    started_at=parse_time(rec.transitions[0].at),
                    state=rec.state,
                    window=_window(rec.door_ref),
                )
            )
        return runs

    def due(self, at: datetime | None = None, only: str | None = None) -> Listing:
        at = at or datetime.now(UTC)
        jobs, problems = self.jobs(self.commit())
        if only is not None:
            jobs = [j for j in jobs if only in (j.name, j.path)]
        return Listing(decide(jobs, self.history(), at), problems)

    def run(
        self,
        at: datetime | None = None,
        door_ref: DoorRefFor = lambda job: None,
        only: str | None = None,
    ) -> tuple[list[Started], Listing]:
        """Start every due job (or `only` that one), one run each, through the engine."""
        listing = self.due(at, only)
        started = [self.start(v, door_ref(v.job)) for v in listing.verdicts if v.due]
        return started, listing

    def start(self, verdict: Verdict, ref: DoorRef | None) -> Started:
        job = verdict.job
        req = self.engine.request(
            job.path,
            door=SCHEDULE_DOOR,
            requester=schedule_requester(job.name),
            requester_name=f"schedule of {job.name}",
            commit=self.commit(),
        )
        window = verdict.window.isoformat() if verdict.window else None
        ref = (ref or DoorRef(repo=req.repo)).model_copy(update={"window": window})
        drift = job.mode == "drift"
        rec = self.engine.start(req, door_ref=ref, plan_only=drift)
        if not drift:
            return Started(verdict, rec)
        # A plan-only run ends completed: its proposal is the drift, never approvable.
        if rec.state != "completed":
            return Started(verdict, rec, None)
        return Started(verdict, rec, drift_text(rec) if rec.proposal else "")


def _window(ref: DoorRef | None) -> datetime | None:
    if ref is None or ref.window is None:
        return None
    try:
        return parse_time(ref.window)
    except AgentplaneError:
        return None  # a mark that does not parse is no mark: the run's start time is


def drift_text(rec: RunRecord) -> str:
    """What a staged proposal would change, in one line."""
    if rec.proposal is None:
        return "no change"
    parts = rec.proposal.parts
    files = [p for p in parts if p.kind == PATCH]
    others = len(parts) - len(files)
    paths = sorted({path for p in files for path in p.paths})
    plus, minus = rec.proposal.additions, rec.proposal.deletions
    text = f"{len(paths)} file(s) would change (+{plus} -{minus})"
    if paths:
        text += ": " + ", ".join(paths[:10]) + (", ..." if len(paths) > 10 else "")
    if others:
        text += f"; {others} other part(s)"
    return text
