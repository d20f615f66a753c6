"""Webhook acknowledgement latency at a fixed request rate, against a bare FastAPI handler.

Both servers are real uvicorn processes-in-threads on loopback; the client
sends signed deliveries at RATE per second and records each round trip.
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bot.doors.github.queue import SqliteQueue
from bot.doors.github.sansio import signature
from bot.doors.github.server import create_app
from bot.doors.github.settings import Settings

RATE = 200  # requests per second
SECONDS = 3
BODY = json.dumps({"action": "opened", "pull_request": {"number": 1}, "pad": "x" * 4000}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: FastAPI) -> tuple[uvicorn.Server, str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port}/webhook"


def _bare() -> FastAPI:
    app = FastAPI()

    @app.post("/webhook")
    async def hook(request: Request) -> Response:
        await request.body()
        return JSONResponse({"queued": True}, status_code=202)

    return app


def _drive(url: str) -> list[float]:
    latencies = []
    with httpx.Client() as client:
        start = time.perf_counter()
        for i in range(RATE * SECONDS):
            due = start + i / RATE
            if (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            headers = {
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": f"d-{i}",
                "X-GitHub-Hook-ID": "1",
                "X-Hub-Signature-256": signature("s", BODY),
            }
            began = time.perf_counter()
            response = client.post(url, content=BODY, headers=headers)
            latencies.append(time.perf_counter() - began)
            assert response.status_code == 202, response.text
    return latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, ours_url = _serve(
            create_app(Settings(webhook_secrets=("s",)), SqliteQueue(Path(tmp) / "q.db"))
        )
        bare, bare_url = _serve(_bare())
        _drive(bare_url)  # warm-up
        base, mine = _drive(bare_url), _drive(ours_url)
        ours.should_exit = bare.should_exit = True
    print(
        f"webhook ack at {RATE} req/s: p50 {_pct(mine, 50):.2f} ms, p99 {_pct(mine, 99):.2f} ms"
        f" (verify + durable enqueue); bare FastAPI p50 {_pct(base, 50):.2f} ms,"
        f" p99 {_pct(base, 99):.2f} ms; ratio p50 {_pct(mine, 50) / _pct(base, 50):.1f}x,"
        f" p99 {_pct(mine, 99) / _pct(base, 99):.1f}x"
    )


if __name__ == "__main__":
    main()
