"""Which run belongs to which pull request, job and head: the door's idempotency keys.

Also who is who on GitHub, as the door has seen it: the id each login policy names was
first resolved to (a rename cannot move it), and the login each id last acted under
(for display only: people are compared by id)."""

from __future__ import annotations

from pathlib import Path

from bot.adapters.sqlite import open_db


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
            """CREATE TABLE IF NOT EXISTS evidence (
                repo TEXT NOT NULL, run_id TEXT NOT NULL, digest TEXT NOT NULL,
                posted_at TEXT NOT NULL, PRIMARY KEY (repo, run_id, digest))""",
            """CREATE TABLE IF NOT EXISTS resolved_logins (
                login TEXT PRIMARY KEY, id INTEGER NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS display_names (
                key TEXT PRIMARY KEY, login TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS dispatches (
                repo TEXT NOT NULL, number INTEGER NOT NULL, job TEXT NOT NULL,
                head TEXT NOT NULL, id TEXT NOT NULL UNIQUE, request TEXT NOT NULL,
                sent INTEGER NOT NULL DEFAULT 0, run_id TEXT,
                PRIMARY KEY (repo, number, job, head))""",
            """CREATE TABLE IF NOT EXISTS shown (
                repo TEXT NOT NULL, run_id TEXT NOT NULL, mark TEXT NOT NULL,
                PRIMARY KEY (repo, run_id))""",
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

    def pull_of(self, repo: str, run_id: str) -> tuple[int, str] | None:
        """(PR number, head) a run was remembered under, the newest if several."""
        with self._lock:
            row = self._db.execute(
                "SELECT number, head FROM pr_runs WHERE repo=? AND run_id=? ORDER BY rowid DESC",
                (repo, run_id),
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def dispatch_for(self, repo: str, number: int, job: str, head: str) -> tuple[str, bool] | None:
        """(id, sent) of the dispatch made for this PR head's job, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, sent FROM dispatches WHERE repo=? AND number=? AND job=? AND head=?",
                (repo, number, job, head),
            ).fetchone()
        return (str(row[0]), bool(row[1])) if row else None

    def dispatching(
        self, repo: str, number: int, job: str, head: str, ident: str, request: str
    ) -> None:
        """Recorded before the dispatch is sent: a crash in between sends it again, and
        the id lets only one runner's records count."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO dispatches (repo, number, job, head, id, request)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (repo, number, job, head, ident, request),
            )

    def dispatched(self, ident: str, run_id: str | None = None) -> None:
        """The dispatch was sent (run_id None), or its run came back as run_id."""
        with self._lock:
            if run_id is None:
                self._db.execute("UPDATE dispatches SET sent=1 WHERE id=?", (ident,))
            else:
                self._db.execute("UPDATE dispatches SET run_id=? WHERE id=?", (run_id, ident))

    def awaiting_runners(self, repo: str) -> list[tuple[int, str, str, str, str]]:
        """(number, job, head, id, request) of dispatches whose run has not come back."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT number, job, head, id, request FROM dispatches"
                    " WHERE repo=? AND run_id IS NULL ORDER BY rowid",
                    (repo,),
                )
            )

    def evidence_shown(self, repo: str, run_id: str, digest: str, posted_at: str) -> None:
        """GitHub's time of the first comment that showed this proposal awaiting approval;
        later edits (the audit head moves) keep it: that is when a reviewer could first see it."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO evidence VALUES (?, ?, ?, ?)",
                (repo, run_id, digest, posted_at),
            )

    def evidence_at(self, repo: str, run_id: str, digest: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT posted_at FROM evidence WHERE repo=? AND run_id=? AND digest=?",
                (repo, run_id, digest),
            ).fetchone()
        return str(row[0]) if row else None

    def shown(self, repo: str, run_id: str, mark: str) -> None:
        """The run's record `mark` (state and step) is what GitHub now shows."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO shown VALUES (?, ?, ?)", (repo, run_id, mark))

    def shown_as(self, repo: str, run_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT mark FROM shown WHERE repo=? AND run_id=?", (repo, run_id)
            ).fetchone()
        return str(row[0]) if row else None

    def seen_repo(self, repo: str, installation: int | None) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO repos VALUES (?, ?)", (repo, installation))

    def repos(self) -> list[tuple[str, int | None]]:
        with self._lock:
            return list(self._db.execute("SELECT repo, installation FROM repos"))

    def pinned_login(self, login: str) -> int | None:
        """The id login was first resolved to here, if it ever was."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM resolved_logins WHERE login=?", (login.casefold(),)
            ).fetchone()
        return int(row[0]) if row else None

    def pin_login(self, login: str, uid: int) -> int:
        """Keep the first id a login resolved to; returns the id that stands."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO resolved_logins VALUES (?, ?)", (login.casefold(), uid)
            )
        return self.pinned_login(login) or uid

    def saw(self, key: str, login: str) -> None:
        """The account with identity key acted as login (its latest login wins)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO display_names VALUES (?, ?)", (key, login))

    def display_names(self, keys: set[str]) -> dict[str, str]:
        """key -> login, for the keys the door has seen act."""
        if not keys:
            return {}
        marks = ", ".join("?" for _ in keys)
        with self._lock:
            rows = self._db.execute(
                f"SELECT key, login FROM display_names WHERE key IN ({marks})", sorted(keys)
            ).fetchall()
        return {str(k): str(v) for k, v in rows}
