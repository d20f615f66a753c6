"""The data behind the pages and the API: the engine, the run index, and the verify
report of the branch's current head (recomputed only when the head moves)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from pydantic import BaseModel

from bot.adapters.audit.verify import VerifyReport, verify
from bot.core.errors import AgentplaneError, RunError
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


@dataclass
class Site:
    engine: Engine
    index: RunIndex
    user: User
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

    def jobs(self) -> list[JobInfo]:
        repo = self.engine.repo
        commit = repo.head_commit()
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
        raise RunError(f"no job {name!r} in {JOBS_DIR} at HEAD")

    def start(self, name: str, prompt: str | None) -> RunRecord:
        """A run through the one path, as door `web`, requested by the signed-in user."""
        job = self.job(name)
        engine = self.engine
        req = engine.request(
            job.path,
            prompt=prompt or None,
            door="web",
            requester=self.user.key,
            requester_name=self.user.name,
        )
        with self._start_lock:
            rec = engine.start(req)
        self.index.update(engine.audit)
        return rec
