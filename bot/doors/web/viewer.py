"""The Playwright trace viewer, on an origin of its own.

The viewer is the static app the playwright package ships. It runs script and a service
worker and renders recorded pages (hostile HTML) in its frames, so it never shares the
run pages' origin: it is served on another loopback port, framed only by the app, and
it serves only traces that a run on the verified audit branch names.

In `agentplane serve` the viewer answers on a host of its own (AGENTPLANE_VIEWER_URL) and
holds no session: a trace is served only for a signed, short-lived token that the run page
of one repository gave one reader for one trace (bot.doors.web.hub).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import playwright
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from bot.core.errors import AgentplaneError, AuditError
from bot.doors.web.security import HostCheck, headers_middleware, viewer_csp
from bot.doors.web.site import Site
from bot.doors.web.views import is_trace_name

HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def viewer_dir() -> Path:
    """The trace viewer's static files inside the installed playwright package."""
    return Path(playwright.__file__).parent / "driver/package/lib/vite/traceViewer"


def _trace(data: bytes) -> Response:
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="trace.zip"'},
    )


def _finish(app: FastAPI, app_origin: str, hosts: frozenset[str] | None) -> FastAPI:
    directory = viewer_dir()
    if directory.is_dir():
        app.mount("/", StaticFiles(directory=directory, html=True), name="viewer")
    app.middleware("http")(headers_middleware(viewer_csp(app_origin), frame_options=None))
    if hosts is not None:
        app.add_middleware(HostCheck, hosts=hosts)
    return app


class NoTrace(AgentplaneError):
    """A viewer token that grants no trace (forged, expired, or the reader lost access)."""


def build_token_viewer(load: Callable[[str], bytes], app_origin: str) -> FastAPI:
    """serve's viewer: `/t/{token}/trace.zip`, where load(token) is the trace the token
    grants or NoTrace. The Host is checked by the dispatch that sends requests here."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/t/{token}/trace.zip")
    def trace(token: str) -> Response:
        try:
            data = load(token)
        except NoTrace as exc:
            return PlainTextResponse(str(exc), 404)
        except AuditError as exc:
            return PlainTextResponse(str(exc), 409)
        return _trace(data)

    return _finish(app, app_origin, None)


def build_viewer(site: Site, app_origin: str, hosts: frozenset[str]) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/traces/{sha256}.zip")
    def trace(sha256: str) -> Response:
        if not HEX64.match(sha256):
            return PlainTextResponse("not a digest", 404)
        site.refresh()
        found = site.index.artifact_run(sha256)
        if found is None or not is_trace_name(found[1]):
            return PlainTextResponse("no run names this trace", 404)
        try:
            data = site.engine.audit.artifact(sha256)
        except AuditError as exc:
            return PlainTextResponse(str(exc), 409)
        return _trace(data)

    return _finish(app, app_origin, hosts)
