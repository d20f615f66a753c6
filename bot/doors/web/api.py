"""The JSON API behind the pages (in the OpenAPI FastAPI publishes at /openapi.json)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from bot.core.errors import AuditError, RunError
from bot.doors.web.index import RunFilter, RunPage
from bot.doors.web.site import JobInfo, Site
from bot.doors.web.views import RunDetail


def api_router(site: Site) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["runs"])

    @router.get("/runs", response_model=RunPage, summary="Runs, newest first, filtered")
    def list_runs(f: Annotated[RunFilter, Query()], page: int = 1, size: int = 100) -> RunPage:
        site.refresh()
        return site.index.query(f, page, size)

    @router.get("/runs/{run_id}", response_model=RunDetail, summary="Everything about one run")
    def get_run(run_id: str) -> RunDetail:
        try:
            return site.detail(run_id)
        except RunError as exc:
            raise HTTPException(404, str(exc)) from exc
        except AuditError as exc:
            raise HTTPException(409, f"the audit branch does not verify: {exc}") from exc

    @router.get("/jobs", response_model=list[JobInfo], summary="Jobs at HEAD")
    def list_jobs() -> list[JobInfo]:
        return site.jobs()

    return router
