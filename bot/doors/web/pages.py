"""The server-rendered pages: /runs, /runs/{id}, /jobs, /jobs/{name} and its form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.core.errors import AgentplaneError, AuditError, RunError
from bot.core.render import render_plan
from bot.doors.web.index import RunFilter
from bot.doors.web.security import CSRF_FIELD, csrf_problem, csrf_token, set_csrf
from bot.doors.web.site import Site
from bot.doors.web.templates import render
from bot.doors.web.views import is_picture, is_trace, picture_type, safe_filename

FIELDS = (
    ("repo", "Repository"),
    ("job", "Job"),
    ("job_type", "Job type"),
    ("state", "State"),
    ("door", "Door"),
    ("model", "Model"),
    ("requester", "Requester"),
    ("approver", "Approver"),
    ("tool", "Tool"),
)
MAX_FORM = 64 * 1024


@dataclass(frozen=True)
class Trace:
    name: str
    src: str


def _page(site: Site, name: str, status: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(render(name, user=site.user, **context), status)


def error_page(site: Site, status: int, title: str, message: str) -> HTMLResponse:
    return _page(site, "error.html", status, title=title, message=message)


def pages_router(site: Site, viewer_origin: str | None, origins: frozenset[str]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/runs", 303)

    @router.get("/runs")
    def runs(f: Annotated[RunFilter, Query()], page: int = 1) -> Response:
        site.refresh()
        listed = site.index.query(f, page)
        query = urlencode({k: v for k, v in f.model_dump().items() if v})
        return _page(
            site,
            "runs.html",
            page=listed,
            filters=f.model_dump(),
            choices=site.index.choices(),
            fields=FIELDS,
            query=query,
        )

    @router.get("/runs/{run_id}")
    def run(run_id: str) -> Response:
        try:
            detail = site.detail(run_id)
        except RunError as exc:
            return error_page(site, 404, "No such run", str(exc))
        except AuditError as exc:
            return error_page(site, 409, "The audit branch does not verify", str(exc))
        rec = detail.record
        traces = []
        if viewer_origin is not None:
            for ref in rec.artifacts:
                if is_trace(ref):
                    url = f"{viewer_origin}/traces/{ref.sha256}.zip"
                    traces.append(Trace(ref.name, f"{viewer_origin}/index.html?trace={quote(url)}"))
        pictures = [a for a in rec.artifacts if is_picture(a)]
        return _page(site, "run.html", d=detail, traces=traces, pictures=pictures)

    @router.get("/runs/{run_id}/artifacts/{name:path}")
    def artifact(run_id: str, name: str) -> Response:
        try:
            _, data = site.artifact(run_id, name)
        except (RunError, AuditError) as exc:
            return error_page(site, 404, "No such artifact", str(exc))
        # Always a download, never rendered here: an HTML or SVG artifact is hostile.
        return Response(
            data,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{safe_filename(name)}"',
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    @router.get("/runs/{run_id}/pictures/{name:path}")
    def picture(run_id: str, name: str) -> Response:
        try:
            _, data = site.artifact(run_id, name)
        except (RunError, AuditError) as exc:
            return error_page(site, 404, "No such picture", str(exc))
        kind = picture_type(data)
        if kind is None:  # whatever the record calls it, only PNG and JPEG show inline
            return error_page(site, 415, "Not a picture", f"{name} is not PNG or JPEG")
        return Response(
            data, media_type=kind, headers={"Content-Security-Policy": "default-src 'none'"}
        )

    @router.get("/jobs")
    def jobs() -> Response:
        return _page(site, "jobs.html", jobs=site.jobs())

    @router.get("/jobs/{name}")
    def job(name: str, request: Request) -> Response:
        try:
            info = site.job(name)
            eng = site.engine
            req = eng.request(info.path, door="web", requester=site.user.key)
            plan = render_plan(eng.plan(req), eng.redactor)
        except RunError as exc:
            return error_page(site, 404, "No such job", str(exc))
        except AgentplaneError as exc:
            plan = f"cannot plan: {exc}"
        token = csrf_token(request)
        response = _page(site, "job.html", job=info, plan=plan, csrf=token)
        set_csrf(response, token)
        return response

    @router.post("/jobs/{name}/runs")
    async def start(name: str, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM:
            return error_page(site, 413, "Form too large", f"over {MAX_FORM} bytes")
        if request.headers.get("content-type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return error_page(site, 415, "Unsupported form", "expected a urlencoded form")
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        token = form.get(CSRF_FIELD, [""])[0]
        problem = csrf_problem(request, token, origins)
        if problem is not None:
            return error_page(site, 403, "Refused", problem)
        prompt = form.get("prompt", [""])[0].strip() or None
        try:
            rec = await run_in_threadpool(site.start, name, prompt)
        except RunError as exc:
            return error_page(site, 404, "Cannot start", str(exc))
        except AgentplaneError as exc:
            return error_page(site, 400, "Cannot start", str(exc))
        return RedirectResponse(f"/runs/{quote(rec.run_id)}", 303)

    return router
