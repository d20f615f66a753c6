"""Which run belongs to which pull request, job and head: the door's idempotency keys."""

from __future__ import annotations

from pathlib import Path

from bot.sqlite import open_db


class PullState:
    def __init__(self, path: Path) -> None:
        self._db, self._lock = open_db(
            path,
            """CREATE TABLE IF NOT EXISTS pr_runs (
                repo TEXT NOT NULL, number INTEGER NOT NULL, job TEXT NOT NULL,
                head TEXT NOT NULL, run_id TEXT NOT NULL,
                PRIMARY KEY (repo, number, job, head))""",
            """CREATE TABLE IF NOT EXISTS repos (
                repo TEXT PRIMARY KEY, installation INTEGER)""",
        )

    def run_for(self, repo: str, number: int, job: str, head: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT run_id FROM pr_runs WHERE repo=? AND number=? AND job=? AND head=?",
                (repo, number, job, head),
            ).fetchone()
        return row[0] if row else None

    def remember(self, repo: str, number: int, job: str, head: str, run_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO pr_runs VALUES (?, ?, ?, ?, ?)",
                (repo, number, job, head, run_id),
            )

    def forget(self, repo: str, number: int, job: str, head: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM pr_runs WHERE repo=? AND number=? AND job=? AND head=?",
                (repo, number, job, head),
            )

    def runs(self, repo: str, number: int) -> list[tuple[str, str, str]]:
        """(job, head, run_id) of every run of the PR, oldest first."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT job, head, run_id FROM pr_runs WHERE repo=? AND number=?"
                    " ORDER BY rowid",
                    (repo, number),
                )
            )

    def seen_repo(self, repo: str, installation: int | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO repos VALUES (?, ?)", (repo, installation))

    def repos(self) -> list[tuple[str, int | None]]:
        with self._lock:
            return list(self._db.execute("SELECT repo, installation FROM repos"))
