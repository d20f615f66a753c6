import multiprocessing
import time
from pathlib import Path

from bot.github.sansio import Delivery
from bot.queue import MAX_ATTEMPTS, SqliteQueue


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
    q = SqliteQueue(tmp_path / "q.db")
    q.put(d("a"))
    for _ in range(MAX_ATTEMPTS):
        item = q.lease()
        assert item is not None
        q.failed(item, "boom")
    assert q.lease() is None and q.counts() == {"failed": 1}


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
