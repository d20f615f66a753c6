"""`agentplane serve`: the webhook endpoint, a worker, and a reconciler.

The HTTP handler only verifies, deduplicates and enqueues: GitHub gives up after
10 s, so all work happens in the worker thread, from the durable queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bot.doors.github.queue import DeliveryQueue, NotRetried
from bot.doors.github.sansio import MAX_BODY, Delivery, TooLarge, WebhookError, parse
from bot.doors.github.settings import Settings
from bot.run import killpoints

log = logging.getLogger("agentplane.server")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "agentplane_deliveries_total",
            "Webhook deliveries by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "agentplane_queue_depth", "Deliveries waiting or leased", registry=self.registry
        )
        self.handled = Counter(
            "agentplane_handled_total",
            "Deliveries handled by result",
            ["result"],
            registry=self.registry,
        )
        self.runs = Counter(
            "agentplane_runs_total",
            "Run states published, by state",
            ["state"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agentplane_handle_seconds", "Time to handle one delivery", registry=self.registry
        )


class Worker:
    """Leases deliveries and hands them to the door; a failure goes back to the queue,
    unless the door says a retry would only repeat it (NotRetried)."""

    def __init__(
        self,
        queue: DeliveryQueue,
        handle: Callable[[Delivery], str],
        metrics: Metrics,
        idle_sleep: float = 0.2,
        lease_seconds: float = 300.0,
    ) -> None:
        self.queue, self.handle, self.metrics = queue, handle, metrics
        self.idle_sleep = idle_sleep
        self.lease_seconds = lease_seconds
        """How long a delivery stays leased to this worker: a worker killed mid-delivery
        leaves it leased, and another takes it once the lease runs out."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentplane-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run_once(self) -> bool:
        item = self.queue.lease(self.lease_seconds)
        if item is None:
            return False
        started = time.perf_counter()
        try:
            result = self.handle(item.delivery)
            self.queue.done(item)
            self.metrics.handled.labels(result.split(":")[0]).inc()
            log.info("%s %s: %s", item.delivery.event, item.delivery.delivery_id, result)
        except NotRetried as exc:  # retrying would repeat the failure (and its cost)
            log.warning("delivery %s failed, not retried: %s", item.delivery.delivery_id, exc)
            self.queue.done_failed(item, str(exc))
            self.metrics.handled.labels("not_retried").inc()
        except Exception as exc:  # any other failure: retry later, never lose the delivery
            log.exception("delivery %s failed", item.delivery.delivery_id)
            self.queue.failed(item, f"{type(exc).__name__}: {exc}")
            self.metrics.handled.labels("error").inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.run_once():
                self._stop.wait(self.idle_sleep)


def create_app(
    settings: Settings,
    queue: DeliveryQueue,
    worker: Worker | None = None,
    reconciler: Callable[[], Any] | None = None,
    scheduler: Callable[[], Any] | None = None,
    metrics: Metrics | None = None,
    max_body: int = MAX_BODY,
) -> FastAPI:
    metrics = metrics or (worker.metrics if worker else Metrics())
    for problem in settings.problems():
        log.warning("%s", problem)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if worker is not None:
            worker.start()
        periodic = [("reconcile", reconciler, settings.reconcile_seconds)]
        periodic += [("schedule", scheduler, settings.schedule_seconds)]
        for name, task, seconds in periodic:
            if task is None or seconds <= 0:
                continue

            def loop(
                name: str = name, task: Callable[[], Any] = task, seconds: float = seconds
            ) -> None:
                while not stop.is_set():
                    try:
                        task()
                    except Exception:
                        log.exception("%s failed", name)
                    stop.wait(seconds)

            threading.Thread(target=loop, name=f"agentplane-{name}", daemon=True).start()
        yield
        stop.set()
        if worker is not None:
            worker.stop()

    app = FastAPI(title="agentplane", lifespan=lifespan)

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        try:
            body = await read_bounded(request, max_body)
            delivery = parse(request.headers, body, settings.webhook_secrets)
        except WebhookError as exc:
            metrics.deliveries.labels(f"rejected_{exc.status}").inc()
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        fresh = queue.put(delivery)
        killpoints.reached("delivery-accepted")  # queued, GitHub not yet answered
        metrics.deliveries.labels("queued" if fresh else "duplicate").inc()
        return JSONResponse({"queued": fresh, "duplicate": not fresh}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "ok": True,
            "can_act": settings.can_act,
            "problems": settings.problems(),
            "queue": queue.counts(),
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        counts = queue.counts()
        metrics.queue_depth.set(counts.get("queued", 0) + counts.get("leased", 0))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes limit: the sender is not authenticated yet
    (the signature covers the whole body), so it must not decide how much we hold."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"payload over {limit} bytes (Content-Length: {declared})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"payload over {limit} bytes")
    return bytes(body)


def build(settings: Settings) -> FastAPI:
    """Wire the embedded default: SQLite queue and state under data_dir, bubblewrap sandbox."""
    from bot.adapters.sandbox.backends import get_backend
    from bot.doors.github.flow import PullRequestDoor, enqueue_schedules, reconcile
    from bot.doors.github.queue import SqliteQueue
    from bot.doors.github.state import PullState

    queue = SqliteQueue(settings.data_dir / "queue.db")
    if not settings.can_act:
        return create_app(settings, queue)
    metrics = Metrics()
    door = PullRequestDoor(
        settings,
        get_backend(),
        PullState(settings.data_dir / "state.db"),
        on_publish=lambda rec: metrics.runs.labels(rec.state).inc(),
    )
    worker = Worker(queue, door.handle, metrics)
    app = create_app(
        settings,
        queue,
        worker,
        reconciler=lambda: reconcile(door, queue.put),
        scheduler=lambda: enqueue_schedules(door, queue.put),
    )
    if settings.pages_enabled:
        from bot.doors.web.wiring import attach_pages

        attach_pages(app, settings, door.state, queue, door.client_for, list(door.redact.secrets))
    return app
