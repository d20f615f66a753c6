"""The data behind the pages and the API: the engine, the run index, and the verify
report of the branch's current head (recomputed only when the head moves)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel

from bot.adapters.audit.verify import VerifyReport, verify
from bot.core.errors import AgentplaneError, RunError
from bot.core.gates import ReviewTiming
from bot.core.record import RunRecord
from bot.doors.web.index import RunIndex
from bot.doors.web.rows import cost, duration
from bot.doors.web.views import (
    RunDetail,
    Verification,
    diff_lines,
    evidence_sections,
)
from bot.run.engine import Engine

JOBS_DIR = ".agentplane/jobs"


class JobInfo(BaseModel):
    name: str
    path: str
    job_type: str | None
    prompt: str | None
    problem: str = ""
    """Why the job cannot be loaded at this commit, or ""."""


@dataclass(frozen=True)
class User:
    key: str
    """The identity key runs are requested as (bot.core.identity)."""
    name: str = ""


@dataclass(frozen=True)
class Decision:
    """One person's approve or deny from the run page, with what the page showed them."""

    run_id: str
    person: User
    decision: Literal["approve", "deny"]
    reviewed_commit: str
    reviewed_digest: str
    shown_at: datetime
    """When this server showed this person the page with this proposal (its clock)."""
    submitted_at: datetime
    """When the decision reached this server (its clock)."""

    @property
    def timing(self) -> ReviewTiming:
        return ReviewTiming(self.submitted_at, self.shown_at)


Decider = Callable[[Decision], str | None]
"""Takes a decision through the gates; returns a note to show instead of the run page
(a door that decides later, from its queue), or None."""


@dataclass(frozen=True)
class Start:
    """One person's request, from a job's page, to run that job."""

    job: JobInfo
    person: User
    prompt: str | None
    form: str
    """The id of the form the page showed: a form posted twice is one start."""


Starter = Callable[[Start], str]
"""Hands a start to a door that runs it later (serve: its queue); returns the note to
show. NotPermitted if this person may not start runs here."""


class NotPermitted(AgentplaneError):
    """The signed-in person may not do this here (GitHub's permission, not policy)."""


@dataclass
class Site:
    engine: Engine
    index: RunIndex
    user: User
    """Who uses the pages when no one signs in (`agentplane ui`: this clone's git identity)."""
    decider: Decider | None = None
    """How approvals from the run page are decided; None: the page offers none."""
    jobs_enabled: bool = True
    """Whether the pages list jobs and start runs (the web door)."""
    starter: Starter | None = None
    """How serve starts runs (its queue); None: in this process (`agentplane ui`)."""
    may_start: Callable[[User], str | None] | None = None
    """Why this person may not start runs here, or None (serve: GitHub's permission); the
    job page says it instead of offering the form. The starter checks again."""
    jobs_from_default: bool = False
    """Jobs as the default branch has them at the remote (serve's clone never checks out),
    not at HEAD."""
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    """Signs the view tokens approval forms carry (serve: its session secret)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _start_lock: threading.Lock = field(default_factory=threading.Lock)
    _report: tuple[str | None, VerifyReport] | None = None

    def refresh(self) -> None:
        self.engine.policy()  # arms the store: reads go through policy's signers
        self.index.update(self.engine.audit)

    def report(self) -> VerifyReport:
        tip = self.engine.audit.tip()
        key = None if tip is None else str(tip)
        with self._lock:
            if self._report is None or self._report[0] != key:
                self._report = (key, verify(self.engine.audit))
            return self._report[1]

    def record(self, run_id: str) -> RunRecord:
        return self.engine.load(run_id)  # RunError if unknown, AuditError if it does not hold

    def detail(self, run_id: str) -> RunDetail:
        rec = self.record(run_id)
        entry = self.engine.audit.latest(run_id)
        assert entry is not None  # load() found it
        report = self.report()
        try:
            patch = self.engine.patch(rec)
        except (AgentplaneError, UnicodeDecodeError):
            patch = ""
        return RunDetail(
            record=rec,
            verification=Verification(
                verified=report.ok,
                head=report.head,
                findings=[f.message for f in report.findings],
                entry_seq=entry.seq,
                entry_digest=entry.digest,
                entry_commit=entry.commit,
            ),
            evidence=evidence_sections(self.engine.evidence(rec)),
            diff=diff_lines(patch),
            duration_s=duration(rec),
            cost_usd=cost(rec),
        )

    def artifact(self, run_id: str, name: str) -> tuple[str, bytes]:
        """(media type, bytes) of the run's artifact by name; RunError if it has none."""
        rec = self.record(run_id)
        ref = rec.artifact(name)
        if ref is None:
            raise RunError(f"run {run_id} has no artifact {name!r}")
        return ref.media_type, self.engine.audit.artifact(ref.sha256)

    def jobs_commit(self) -> str:
        repo = self.engine.repo
        if self.jobs_from_default:
            return str(repo.repo.commit(repo.policy_ref()).hexsha)
        return repo.head_commit()

    def jobs(self) -> list[JobInfo]:
        repo = self.engine.repo
        commit = self.jobs_commit()
        out = []
        for path, _ in repo.read_dir(commit, JOBS_DIR, (".yaml", ".yml")):
            stem = PurePosixPath(path).stem
            try:
                _, job = self.engine.load_job(path, commit)
            except AgentplaneError as exc:
                out.append(
                    JobInfo(name=stem, path=path, job_type=None, prompt=None, problem=str(exc))
                )
                continue
            out.append(JobInfo(name=job.name, path=path, job_type=job.job_type, prompt=job.prompt))
        return out

    def job(self, name: str) -> JobInfo:
        for job in self.jobs():
            if job.name == name:
                return job
        raise RunError(f"no job {name!r} in {JOBS_DIR} at {self.jobs_commit()[:12]}")

    def start(self, name: str, prompt: str | None, user: User | None = None) -> RunRecord:
        """A run through the one path, as door `web`, requested by the signed-in user."""
        job = self.job(name)
        engine = self.engine
        who = user or self.user
        req = engine.request(
            job.path,
            prompt=prompt or None,
            door="web",
            requester=who.key,
            requester_name=who.name,
        )
        with self._start_lock:
            rec = engine.start(req)
        self.index.update(engine.audit)
        return rec

    def decide_here(self, d: Decision) -> str | None:
        """The decider of `agentplane ui`: the engine's own gates, in this process."""
        with self._start_lock:
            self.engine.decide(
                d.run_id,
                d.person.key,
                d.decision,
                reviewed_commit=d.reviewed_commit,
                reviewed_digest=d.reviewed_digest,
                door="web",
                name=d.person.name,
                timing=d.timing,
            )
        self.index.update(self.engine.audit)
        return None
