"""The durable delivery queue: acknowledge fast, work later, lose nothing.

Embedded default: SQLite (WAL). Not huey: its SQLite storage deletes a message
when it is dequeued, so a worker killed mid-delivery would lose it; we need
leases (at-least-once) plus dedup on (hook id, delivery GUID), and effects made
idempotent by the handlers. A PostgreSQL backend implements the same ABC later.
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.adapters.sqlite import open_db
from bot.doors.github.sansio import Delivery

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Backoff:
    """Exponential and bounded: a delivery that keeps failing (GitHub down, a bug) waits
    longer each time, so its attempts span minutes instead of burning out in seconds, and
    it never waits so long that a fixed fault goes unnoticed."""

    base: float = 10.0
    cap: float = 900.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the attempts-th failed attempt."""
        return float(min(self.cap, self.base * 2 ** max(0, attempts - 1)))


class NotRetried(Exception):
    """A delivery that failed in a way a retry would only repeat: its handler says so (a
    run the model failed would fail again, and be paid for again). The worker marks it
    done with the failure instead of putting it back in the queue."""


@dataclass(frozen=True)
class Leased:
    id: int
    delivery: Delivery
    attempts: int


class DeliveryQueue(abc.ABC):
    @abc.abstractmethod
    def put(self, delivery: Delivery) -> bool:
        """Durably enqueue; False when (hook id, GUID) was already received."""

    @abc.abstractmethod
    def lease(self, seconds: float = 300.0) -> Leased | None:
        """The oldest queued delivery (or one whose lease ran out), leased to the caller."""

    @abc.abstractmethod
    def done(self, item: Leased) -> None: ...

    @abc.abstractmethod
    def failed(self, item: Leased, error: str) -> None:
        """Back to the queue after a backoff, until MAX_ATTEMPTS; then parked as failed."""

    @abc.abstractmethod
    def done_failed(self, item: Leased, error: str) -> None:
        """Finished, with a failure that is not retried (NotRetried): never leased again."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]: ...


class SqliteQueue(DeliveryQueue):
    def __init__(self, path: Path, backoff: Backoff = Backoff()) -> None:
        self.backoff = backoff
        self._db, self._lock = open_db(
            path,
            """CREATE TABLE IF NOT EXISTS deliveries (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                hook_id TEXT NOT NULL, delivery_id TEXT NOT NULL, event TEXT NOT NULL,
                payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
                attempts INTEGER NOT NULL DEFAULT 0, lease_until REAL NOT NULL DEFAULT 0,
                error TEXT, received_at REAL NOT NULL, not_before REAL NOT NULL DEFAULT 0,
                UNIQUE (hook_id, delivery_id))""",
        )
        with self._lock:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(deliveries)")}
            if "not_before" not in columns:  # a queue written before backoff existed
                self._db.execute(
                    "ALTER TABLE deliveries ADD COLUMN not_before REAL NOT NULL DEFAULT 0"
                )

    def put(self, delivery: Delivery) -> bool:
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (hook_id, delivery_id, event, payload,"
                " received_at) VALUES (?, ?, ?, ?, ?)",
                (
                    delivery.hook_id,
                    delivery.delivery_id,
                    delivery.event,
                    json.dumps(delivery.payload),
                    time.time(),
                ),
            )
            return cur.rowcount == 1

    def lease(self, seconds: float = 300.0) -> Leased | None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT id, hook_id, delivery_id, event, payload, attempts FROM deliveries"
                " WHERE (state = 'queued' AND not_before <= ?)"
                " OR (state = 'leased' AND lease_until < ?)"
                " ORDER BY id LIMIT 1",
                (now, now),
            ).fetchone()
            if row is None:
                self._db.execute("COMMIT")
                return None
            self._db.execute(
                "UPDATE deliveries SET state = 'leased', lease_until = ?, attempts = attempts + 1"
                " WHERE id = ?",
                (now + seconds, row[0]),
            )
            self._db.execute("COMMIT")
        payload: dict[str, Any] = json.loads(row[4])
        return Leased(row[0], Delivery(row[3], row[2], row[1], payload), row[5] + 1)

    def done(self, item: Leased) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = 'done', payload = '{}' WHERE id = ?", (item.id,)
            )

    def failed(self, item: Leased, error: str) -> None:
        state = "failed" if item.attempts >= MAX_ATTEMPTS else "queued"
        retry_at = time.time() + self.backoff.delay(item.attempts)
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = ?, error = ?, lease_until = 0, not_before = ?"
                " WHERE id = ?",
                (state, error[:2000], retry_at, item.id),
            )

    def done_failed(self, item: Leased, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = 'done_failed', error = ?, lease_until = 0,"
                " payload = '{}' WHERE id = ?",
                (error[:2000], item.id),
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM deliveries GROUP BY state")
            return {state: n for state, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
