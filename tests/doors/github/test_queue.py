import multiprocessing
import time
from pathlib import Path

from bot.doors.github.queue import MAX_ATTEMPTS, Backoff, SqliteQueue
from bot.doors.github.sansio import Delivery


def d(guid: str, hook: str = "1") -> Delivery:
    return Delivery("ping", guid, hook, {"n": guid})


def test_dedup_on_hook_and_guid(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db")
    assert q.put(d("a")) and not q.put(d("a"))
    assert q.put(d("a", hook="2"))  # another hook may reuse a GUID
    assert q.counts() == {"queued": 2}


def test_fifo_lease_done(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db")
    q.put(d("a"))
    q.put(d("b"))
    first = q.lease()
    assert first is not None and first.delivery.payload == {"n": "a"}
    q.done(first)
    second = q.lease()
    assert second is not None and second.delivery.delivery_id == "b"
    assert q.lease() is None


def test_expired_lease_is_redelivered(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db")
    q.put(d("a"))
    assert q.lease(seconds=0.01) is not None
    time.sleep(0.05)
    again = q.lease()
    assert again is not None and again.attempts == 2


def test_failures_retry_then_park(tmp_path: Path) -> None:
    q = SqliteQueue(tmp_path / "q.db", Backoff(base=0))
    q.put(d("a"))
    for _ in range(MAX_ATTEMPTS):
        item = q.lease()
        assert item is not None
        q.failed(item, "boom")
    assert q.lease() is None and q.counts() == {"failed": 1}


def test_backoff_is_exponential_and_bounded() -> None:
    b = Backoff(base=10, cap=100)
    assert [b.delay(n) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert Backoff().delay(MAX_ATTEMPTS - 1) >= 60  # the default spends minutes, not seconds


def test_a_failed_delivery_waits_its_backoff_without_holding_up_the_others(
    tmp_path: Path,
) -> None:
    q = SqliteQueue(tmp_path / "q.db", Backoff(base=0.4))
    q.put(d("bad"))
    q.put(d("good"))
    first = q.lease()
    assert first is not None and first.delivery.delivery_id == "bad"
    q.failed(first, "boom")
    second = q.lease()  # the failed one waits; the next delivery goes ahead
    assert second is not None and second.delivery.delivery_id == "good"
    q.done(second)
    assert q.lease() is None and q.counts() == {"queued": 1, "done": 1}
    time.sleep(0.45)
    again = q.lease()
    assert again is not None and again.delivery.delivery_id == "bad" and again.attempts == 2
    q.failed(again, "boom")
    time.sleep(0.45)
    assert q.lease() is None  # the second wait is twice as long
    time.sleep(0.4)
    assert q.lease() is not None


def test_a_queue_from_before_backoff_keeps_its_deliveries(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "q.db")
    db.execute(
        """CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hook_id TEXT NOT NULL, delivery_id TEXT NOT NULL, event TEXT NOT NULL,
        payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0, lease_until REAL NOT NULL DEFAULT 0,
        error TEXT, received_at REAL NOT NULL, UNIQUE (hook_id, delivery_id))"""
    )
    db.execute(
        "INSERT INTO deliveries (hook_id, delivery_id, event, payload, received_at)"
        " VALUES ('1', 'old', 'ping', '{}', 0)"
    )
    db.commit()
    db.close()
    item = SqliteQueue(tmp_path / "q.db").lease()
    assert item is not None and item.delivery.delivery_id == "old"


def _put_and_die(path: str) -> None:
    q = SqliteQueue(Path(path))
    q.put(d("survivor"))
    import os

    os._exit(9)  # no clean shutdown


def test_acknowledged_delivery_survives_a_killed_process(tmp_path: Path) -> None:
    p = multiprocessing.get_context("spawn").Process(
        target=_put_and_die, args=(str(tmp_path / "q.db"),)
    )
    p.start()
    p.join()
    item = SqliteQueue(tmp_path / "q.db").lease()
    assert item is not None and item.delivery.delivery_id == "survivor"
