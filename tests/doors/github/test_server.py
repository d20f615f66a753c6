"""The webhook endpoint: verify, dedupe, enqueue, answer fast; and every real payload is 2xx."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from bot.doors.github.queue import Backoff, SqliteQueue
from bot.doors.github.sansio import Delivery, signature
from bot.doors.github.server import Metrics, Worker, create_app
from bot.doors.github.settings import Settings
from tests.support.shared import GITHUB

SHARED = GITHUB


def post(
    client: TestClient,
    body: bytes,
    secret: str | None = "s",
    guid: str = "g1",
    event: str = "ping",
    hook: str = "1",
) -> int:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid,
        "X-GitHub-Hook-ID": hook,
        "Content-Type": "application/json",
    }
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret, body)
    return client.post("/webhook", content=body, headers=headers).status_code


@pytest.fixture
def queue(tmp_path: Path) -> SqliteQueue:
    return SqliteQueue(tmp_path / "q.db", Backoff(base=0))


def app(queue: SqliteQueue, secrets: tuple[str, ...] = ("s",)) -> TestClient:
    return TestClient(create_app(Settings(webhook_secrets=secrets), queue))


def test_signed_delivery_is_queued_once(queue: SqliteQueue) -> None:
    client = app(queue)
    assert post(client, b'{"zen": "x"}') == 202
    assert post(client, b'{"zen": "x"}') == 202  # redelivery: same GUID
    assert queue.counts() == {"queued": 1}


@pytest.mark.parametrize("secret", [None, "wrong"])
def test_forged_or_missing_signature_is_401_and_nothing_queued(
    queue: SqliteQueue, secret: str | None
) -> None:
    assert post(app(queue), b"{}", secret=secret) == 401
    assert queue.counts() == {}


def test_no_secret_configured_fails_closed(queue: SqliteQueue) -> None:
    assert post(app(queue, secrets=()), b"{}") == 401
    assert queue.counts() == {}


def test_rotated_secrets_both_work(queue: SqliteQueue) -> None:
    client = app(queue, secrets=("new", "old"))
    assert post(client, b"{}", secret="old", guid="a") == 202
    assert post(client, b"{}", secret="new", guid="b") == 202


@pytest.mark.parametrize("levels", [65, 100_000])
def test_deeply_nested_signed_json_is_400_not_500(queue: SqliteQueue, levels: int) -> None:
    body = ('{"a":' + "[" * levels + "]" * levels + "}").encode()
    assert post(app(queue), body) == 400
    assert queue.counts() == {}


@pytest.fixture
def served(queue: SqliteQueue) -> Iterator[tuple[int, SqliteQueue]]:
    """The webhook on a real uvicorn, with a 1 MiB body limit; yields its port."""
    web = create_app(Settings(webhook_secrets=("s",)), queue, max_body=1 << 20)
    config = uvicorn.Config(web, host="127.0.0.1", port=0, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port, queue
    server.should_exit = True
    thread.join(timeout=10)


def test_an_oversized_chunked_body_is_cut_at_the_limit_not_read_whole(
    served: tuple[int, SqliteQueue],
) -> None:
    port, queue = served
    total, chunk = 64 << 20, b"x" * (64 << 10)
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"X-GitHub-Event: ping\r\nX-GitHub-Delivery: big\r\n"
            b"X-Hub-Signature-256: sha256=00\r\n\r\n"
        )
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(frame)
                sent += len(chunk)
        except OSError:
            pass  # the server hung up on us: what a cut looks like from here
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < total // 4, f"the server read {sent} bytes before refusing"
    assert queue.counts() == {}


def test_a_declared_oversized_body_is_refused_before_it_is_read(
    served: tuple[int, SqliteQueue],
) -> None:
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
            b"X-GitHub-Event: ping\r\nX-GitHub-Delivery: big\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_healthz_and_metrics(queue: SqliteQueue) -> None:
    client = app(queue)
    post(client, b"{}")
    health = client.get("/healthz").json()
    assert health["ok"] and not health["can_act"] and health["queue"] == {"queued": 1}
    text = client.get("/metrics").text
    assert 'agentplane_deliveries_total{outcome="queued"} 1.0' in text
    assert "agentplane_queue_depth 1.0" in text


def test_worker_retries_failures_without_losing_them(queue: SqliteQueue) -> None:
    calls: list[str] = []

    def flaky(d: Delivery) -> str:
        calls.append(d.delivery_id)
        if len(calls) == 1:
            raise RuntimeError("GitHub is down")
        return "handled"

    queue.put(Delivery("ping", "x", "1", {}))
    worker = Worker(queue, flaky, Metrics())
    assert worker.run_once() and queue.counts() == {"queued": 1}
    assert worker.run_once() and queue.counts() == {"done": 1}
    assert calls == ["x", "x"] and not worker.run_once()


def examples() -> list[tuple[str, str, dict[str, object]]]:
    data = json.loads((SHARED / "webhook-examples.json").read_text())
    return [(e["name"], str(i), ex) for e in data for i, ex in enumerate(e["examples"])]


def test_every_real_example_payload_is_acknowledged(queue: SqliteQueue) -> None:
    client = app(queue)
    cases = examples()
    assert len(cases) > 300
    for n, (event, i, payload) in enumerate(cases):
        assert (
            post(client, json.dumps(payload).encode(), guid=f"{event}-{i}-{n}", event=event) == 202
        ), (event, i)
    assert queue.counts() == {"queued": len(cases)}


def test_build_wires_the_embedded_default(tmp_path: Path) -> None:
    from bot.doors.github.server import build

    idle = TestClient(build(Settings(webhook_secrets=("s",), data_dir=tmp_path / "a")))
    assert idle.get("/healthz").json()["can_act"] is False
    with TestClient(
        build(Settings(webhook_secrets=("s",), github_token="t", data_dir=tmp_path / "b"))
    ) as acting:
        health = acting.get("/healthz").json()
        assert health["can_act"] and health["problems"] == []
        assert "agentplane_runs_total" in acting.get("/metrics").text
    assert (tmp_path / "b" / "queue.db").exists() and (tmp_path / "b" / "state.db").exists()
