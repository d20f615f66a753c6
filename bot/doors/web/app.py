"""The web app: pages and API on one origin, the trace viewer on another.

`build` is what `agentplane ui` serves and what the tests drive; nothing here listens.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from bot.doors.web.api import api_router
from bot.doors.web.pages import TraceLink, pages_router
from bot.doors.web.security import HostCheck, app_csp, headers_middleware
from bot.doors.web.site import Site
from bot.doors.web.templates import TEMPLATES

STATIC = TEMPLATES.parent / "static"


@dataclass(frozen=True)
class Origins:
    """Where the app and the viewer are reached, and the Host values each accepts."""

    app: str
    app_hosts: frozenset[str]
    viewer: str | None = None
    viewer_hosts: frozenset[str] = frozenset()
    also: frozenset[str] = frozenset()
    """Other origins a form may be posted from (the app reached as localhost)."""

    @property
    def form_origins(self) -> frozenset[str]:
        return frozenset({self.app}) | self.also


def build(
    site: Site, origins: Origins, host_check: bool = True, trace_link: TraceLink | None = None
) -> FastAPI:
    """host_check: off only behind serve, whose pages need a signed session anyway.
    trace_link: how the run page names a trace on the viewer (serve: a signed token)."""
    app = FastAPI(
        title="agentplane",
        summary="Runs on the audit branch: every run, and everything about one.",
        docs_url=None,  # Swagger UI loads script from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.include_router(api_router(site))
    app.include_router(pages_router(site, origins.viewer, origins.form_origins, trace_link))

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> object:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/openapi.json", 303)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.middleware("http")(headers_middleware(app_csp(origins.viewer)))
    if host_check:
        app.add_middleware(HostCheck, hosts=origins.app_hosts)
    return app
