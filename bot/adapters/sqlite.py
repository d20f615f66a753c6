"""SQLite as the embedded default store: one connection per file, shared across threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def open_db(path: Path, *schema: str) -> tuple[sqlite3.Connection, threading.Lock]:
    """A WAL-mode connection in autocommit, with fsync on commit, and its lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    lock = threading.Lock()
    with lock:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # an acknowledged write is on disk
        for statement in schema:
            db.execute(statement)
    return db, lock
