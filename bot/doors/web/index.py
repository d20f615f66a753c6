"""The run index: a SQLite cache of every run's newest row, built from the audit branch.

Never the source of truth: it can always be deleted and rebuilt from the branch. It is
updated incrementally from the last seq it indexed; if the entry it stopped at is no
longer the one on the branch (the branch was rewritten), it is rebuilt from seq 0.
Only verified entries reach it: they come from AuditLog.entries().
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from bot.adapters.audit.log import AuditEntry, AuditLog
from bot.core.record import RunRecord
from bot.doors.web.rows import RunRow, row_of

SCHEMA_VERSION = 1
PAGE_SIZE = 100
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, repo TEXT, job TEXT, job_type TEXT, state TEXT, door TEXT,
    requester TEXT, started TEXT, row TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started DESC, run_id DESC);
CREATE TABLE IF NOT EXISTS facets (run_id TEXT, kind TEXT, value TEXT);
CREATE INDEX IF NOT EXISTS facets_value ON facets (kind, value, run_id);
CREATE INDEX IF NOT EXISTS facets_run ON facets (run_id);
CREATE TABLE IF NOT EXISTS artifacts (sha256 TEXT, run_id TEXT, name TEXT);
CREATE INDEX IF NOT EXISTS artifacts_sha ON artifacts (sha256);
"""
_COLUMNS = ("repo", "job", "job_type", "state", "door", "requester")
_FACETS = ("model", "approver", "tool")


class RunFilter(BaseModel):
    """Every filter the list offers; an empty one matches everything."""

    repo: str = ""
    job: str = ""
    job_type: str = ""
    state: str = ""
    door: str = ""
    requester: str = ""
    model: str = ""
    approver: str = ""
    tool: str = ""
    since: str = ""
    """Runs started on or after this date or time (ISO 8601, UTC)."""
    until: str = ""
    """Runs started on or before this date (the whole day) or time."""


class RunPage(BaseModel):
    runs: list[RunRow]
    total: int
    page: int
    pages: int


def _until(text: str) -> str:
    # A bare date means the whole day; ISO strings compare in time order.
    return text + "T23:59:59Z" if len(text) == 10 else text


class RunIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            if self._meta("schema") not in (None, str(SCHEMA_VERSION)):
                self._drop()
            self._db.executescript(_SCHEMA)
            self._set("schema", str(SCHEMA_VERSION))
            self._db.commit()

    @classmethod
    def for_log(cls, log: AuditLog) -> RunIndex:
        """The index beside the log's own state, under the repository's .git/agentplane/."""
        return cls(log.key_dir / "web-index.sqlite")

    def close(self) -> None:
        self._db.close()

    # -- state ------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _drop(self) -> None:
        for table in ("meta", "runs", "facets", "artifacts"):
            self._db.execute(f"DROP TABLE IF EXISTS {table}")

    def last_seq(self) -> int:
        value = self._meta("last_seq")
        return -1 if value is None else int(value)

    # -- updating ---------------------------------------------------------------------

    def update(self, log: AuditLog) -> int:
        """Index the entries after the last indexed one; returns how many were read.
        Rebuilds when the entry it stopped at is no longer on the branch."""
        entries = list(log.entries())
        with self._lock:
            last = self.last_seq()
            if last >= 0 and (
                last >= len(entries) or entries[last].digest != self._meta("last_digest")
            ):
                self._clear()
                last = -1
            fresh = entries[last + 1 :]
            if not fresh:
                return 0
            self._index(fresh)
            self._set("last_seq", str(fresh[-1].seq))
            self._set("last_digest", fresh[-1].digest)
            self._db.commit()
            return len(fresh)

    def rebuild(self, log: AuditLog) -> int:
        with self._lock:
            self._clear()
            self._db.commit()
        return self.update(log)

    def _clear(self) -> None:
        for table in ("runs", "facets", "artifacts"):
            self._db.execute(f"DELETE FROM {table}")
        self._db.execute("DELETE FROM meta WHERE key IN ('last_seq', 'last_digest')")

    def _index(self, entries: Iterable[AuditEntry]) -> None:
        newest: dict[str, AuditEntry] = {}
        for entry in entries:
            newest[entry.run_id] = entry
        for entry in newest.values():
            try:
                rec = RunRecord.model_validate(entry.record)
            except ValidationError:
                continue  # not a run record this version can read: `audit show` still can
            self._put(row_of(rec, entry.seq, entry.digest), rec)

    def _put(self, row: RunRow, rec: RunRecord) -> None:
        db = self._db
        db.execute("DELETE FROM facets WHERE run_id = ?", (row.run_id,))
        db.execute("DELETE FROM artifacts WHERE run_id = ?", (row.run_id,))
        db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.run_id,
                *(getattr(row, c) for c in _COLUMNS),
                row.started,
                row.model_dump_json(),
            ),
        )
        facets = [("model", m) for m in row.models]
        facets += [("approver", a) for a in row.approvers]
        facets += [("approver", a.name) for a in rec.approvals if a.name]
        facets += [("tool", t) for t in row.tools]
        db.executemany(
            "INSERT INTO facets VALUES (?, ?, ?)", [(row.run_id, k, v) for k, v in facets]
        )
        db.executemany(
            "INSERT INTO artifacts VALUES (?, ?, ?)",
            [(a.sha256, row.run_id, a.name) for a in rec.artifacts],
        )

    # -- reading ----------------------------------------------------------------------

    def query(self, f: RunFilter, page: int = 1, size: int = PAGE_SIZE) -> RunPage:
        where: list[str] = []
        args: list[str | int] = []
        for column in _COLUMNS:
            value = getattr(f, column)
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        for kind in _FACETS:
            value = getattr(f, kind)
            if value:
                where.append("run_id IN (SELECT run_id FROM facets WHERE kind = ? AND value = ?)")
                args += [kind, value]
        if f.since:
            where.append("started >= ?")
            args.append(f.since)
        if f.until:
            where.append("started <= ?")
            args.append(_until(f.until))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        page, size = max(1, page), max(1, min(size, 1000))
        with self._lock:
            total = int(self._db.execute(f"SELECT count(*) FROM runs {clause}", args).fetchone()[0])
            rows = self._db.execute(
                f"SELECT row FROM runs {clause} ORDER BY started DESC, run_id DESC "
                "LIMIT ? OFFSET ?",
                [*args, size, (page - 1) * size],
            ).fetchall()
        return RunPage(
            runs=[RunRow.model_validate(json.loads(r[0])) for r in rows],
            total=total,
            page=page,
            pages=max(1, -(-total // size)),
        )

    def choices(self) -> dict[str, list[str]]:
        """The values each filter can take, for the form's pickers."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for column in _COLUMNS:
                rows = self._db.execute(f"SELECT DISTINCT {column} FROM runs ORDER BY 1")
                out[column] = [str(r[0]) for r in rows if r[0]]
            for kind in _FACETS:
                rows = self._db.execute(
                    "SELECT DISTINCT value FROM facets WHERE kind = ? ORDER BY 1", (kind,)
                )
                out[kind] = [str(r[0]) for r in rows if r[0]]
        return out

    def artifact_run(self, sha256: str) -> tuple[str, str] | None:
        """(run id, artifact name) of a run that names this artifact, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT run_id, name FROM artifacts WHERE sha256 = ? LIMIT 1", (sha256,)
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))
