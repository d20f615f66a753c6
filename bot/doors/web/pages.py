"""The server-rendered pages: /runs, /runs/{id}, /jobs, /jobs/{name} and its form."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from bot.core.errors import AgentplaneError, AuditError, NotAwaitingApproval, RunError
from bot.core.render import render_plan
from bot.doors.web.index import RunFilter
from bot.doors.web.security import CSRF_FIELD, csrf_problem, csrf_token, set_csrf
from bot.doors.web.session import BadToken, Signer
from bot.doors.web.site import Decision, NotPermitted, Site, Start, User
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
USER_SCOPE = "agentplane.user"
"""Where the serve door's sign-in puts the signed-in person in the ASGI scope."""
VIEW_TTL = 3600.0
"""How long an approval form stays good after the page showed it."""
FORM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")

TraceLink = Callable[[User, str], str]
"""(the person viewing, a trace's sha256) -> the trace's URL on the viewer's origin."""


class View(BaseModel):
    """What the run page showed whom, and when: signed into the approval form, so a
    decision is bound to the exact proposal and commit that person saw."""

    run_id: str
    person: str
    commit: str
    digest: str
    shown_at: str


@dataclass(frozen=True)
class Trace:
    name: str
    src: str


def user_of(request: Request, site: Site) -> User:
    """The signed-in person, or the site's own user where no one signs in."""
    user = request.scope.get(USER_SCOPE)
    return user if isinstance(user, User) else site.user


def page_context(request: Request, site: Site) -> dict[str, object]:
    return {
        "user": user_of(request, site),
        "base": request.scope.get("root_path", ""),
        "signed_in": USER_SCOPE in request.scope,
        "jobs_enabled": site.jobs_enabled,
    }


def _page(
    site: Site, request: Request, name: str, status: int = 200, **context: object
) -> HTMLResponse:
    return HTMLResponse(render(name, **page_context(request, site), **context), status)


def error_page(site: Site, request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return _page(site, request, "error.html", status, title=title, message=message)


async def read_form(request: Request) -> dict[str, list[str]] | tuple[int, str, str]:
    """The urlencoded form, or (status, title, message) of why it is refused."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return 413, "Form too large", f"over {MAX_FORM} bytes"
    if request.headers.get("content-type", "").split(";")[0] != (
        "application/x-www-form-urlencoded"
    ):
        return 415, "Unsupported form", "expected a urlencoded form"
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def plain_trace_link(viewer_origin: str) -> TraceLink:
    """`agentplane ui`: its viewer serves any trace the local branch names."""
    return lambda user, sha256: f"{viewer_origin}/traces/{sha256}.zip"


def pages_router(
    site: Site,
    viewer_origin: str | None,
    origins: frozenset[str],
    trace_link: TraceLink | None = None,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    if viewer_origin is not None and trace_link is None:
        trace_link = plain_trace_link(viewer_origin)
    signer = Signer(site.secret, "approval form")

    @router.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/runs", 303)

    @router.get("/runs")
    def runs(request: Request, f: Annotated[RunFilter, Query()], page: int = 1) -> Response:
        site.refresh()
        listed = site.index.query(f, page)
        query = urlencode({k: v for k, v in f.model_dump().items() if v})
        return _page(
            site,
            request,
            "runs.html",
            page=listed,
            filters=f.model_dump(),
            choices=site.index.choices(),
            fields=FIELDS,
            query=query,
        )

    @router.get("/runs/{run_id}")
    def run(run_id: str, request: Request) -> Response:
        try:
            detail = site.detail(run_id)
        except RunError as exc:
            return error_page(site, request, 404, "No such run", str(exc))
        except AuditError as exc:
            return error_page(site, request, 409, "The audit branch does not verify", str(exc))
        rec = detail.record
        traces = []
        if viewer_origin is not None and trace_link is not None:
            for ref in rec.artifacts:
                if is_trace(ref):
                    url = trace_link(user_of(request, site), ref.sha256)
                    traces.append(Trace(ref.name, f"{viewer_origin}/index.html?trace={quote(url)}"))
        pictures = [a for a in rec.artifacts if is_picture(a)]
        form = None
        token = csrf_token(request)
        if site.decider is not None and rec.state == "awaiting_approval" and rec.proposal:
            view = View(
                run_id=rec.run_id,
                person=user_of(request, site).key,
                commit=rec.commit,
                digest=rec.proposal.digest,
                shown_at=datetime.now(UTC).isoformat(),
            )
            form = signer.sign(view, VIEW_TTL)
        response = _page(
            site,
            request,
            "run.html",
            d=detail,
            traces=traces,
            pictures=pictures,
            view=form,
            csrf=token,
        )
        if form is not None:
            set_csrf(response, token)
        return response

    @router.post("/runs/{run_id}/decision")
    async def decide(run_id: str, request: Request) -> Response:
        form = await read_form(request)
        if isinstance(form, tuple):
            return error_page(site, request, *form)
        problem = csrf_problem(request, form.get(CSRF_FIELD, [""])[0], origins)
        if problem is not None:
            return error_page(site, request, 403, "Refused", problem)
        if site.decider is None:
            return error_page(site, request, 403, "Refused", "decisions are not taken here")
        person = user_of(request, site)
        try:
            view = signer.load(View, form.get("view", [""])[0])
        except BadToken as exc:
            return error_page(site, request, 403, "Refused", f"{exc}: reload the run page")
        if view.run_id != run_id or view.person != person.key:
            return error_page(
                site, request, 403, "Refused", "this form was shown for another run or person"
            )
        choice = form.get("decision", [""])[0]
        if choice not in ("approve", "deny"):
            return error_page(site, request, 400, "Refused", "decision must be approve or deny")
        decision: Literal["approve", "deny"] = "approve" if choice == "approve" else "deny"
        d = Decision(
            run_id=run_id,
            person=person,
            decision=decision,
            reviewed_commit=view.commit,
            reviewed_digest=view.digest,
            shown_at=datetime.fromisoformat(view.shown_at),
            submitted_at=datetime.now(UTC),
        )
        try:
            note = await run_in_threadpool(site.decider, d)
        except NotAwaitingApproval as exc:
            return error_page(site, request, 409, "Not awaiting approval", str(exc))
        except RunError as exc:
            return error_page(site, request, 404, "Cannot decide", str(exc))
        except AgentplaneError as exc:
            return error_page(site, request, 400, "Cannot decide", str(exc))
        base = request.scope.get("root_path", "")
        if note is not None:
            return _page(
                site, request, "notice.html", title="Decision sent", message=note, run_id=run_id
            )
        return RedirectResponse(f"{base}/runs/{quote(run_id)}", 303)

    @router.get("/runs/{run_id}/artifacts/{name:path}")
    def artifact(run_id: str, name: str, request: Request) -> Response:
        try:
            _, data = site.artifact(run_id, name)
        except (RunError, AuditError) as exc:
            return error_page(site, request, 404, "No such artifact", str(exc))
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
    def picture(run_id: str, name: str, request: Request) -> Response:
        try:
            _, data = site.artifact(run_id, name)
        except (RunError, AuditError) as exc:
            return error_page(site, request, 404, "No such picture", str(exc))
        kind = picture_type(data)
        if kind is None:  # whatever the record calls it, only PNG and JPEG show inline
            return error_page(site, request, 415, "Not a picture", f"{name} is not PNG or JPEG")
        return Response(
            data, media_type=kind, headers={"Content-Security-Policy": "default-src 'none'"}
        )

    if site.jobs_enabled:
        _job_routes(router, site, origins)
    return router


def _job_routes(router: APIRouter, site: Site, origins: frozenset[str]) -> None:
    @router.get("/jobs")
    def jobs(request: Request) -> Response:
        return _page(site, request, "jobs.html", jobs=site.jobs())

    @router.get("/jobs/{name}")
    def job(name: str, request: Request) -> Response:
        user = user_of(request, site)
        try:
            info = site.job(name)
            eng = site.engine
            req = eng.request(info.path, door="web", requester=user.key, commit=site.jobs_commit())
            plan = render_plan(eng.plan(req), eng.redactor)
        except RunError as exc:
            return error_page(site, request, 404, "No such job", str(exc))
        except AgentplaneError as exc:
            plan = f"cannot plan: {exc}"
        token = csrf_token(request)
        form_id = secrets.token_urlsafe(24)
        refused = site.may_start(user) if site.may_start else None
        response = _page(
            site,
            request,
            "job.html",
            job=info,
            plan=plan,
            csrf=token,
            form_id=form_id,
            refused=refused,
        )
        set_csrf(response, token)
        return response

    @router.post("/jobs/{name}/runs")
    async def start(name: str, request: Request) -> Response:
        form = await read_form(request)
        if isinstance(form, tuple):
            return error_page(site, request, *form)
        token = form.get(CSRF_FIELD, [""])[0]
        problem = csrf_problem(request, token, origins)
        if problem is not None:
            return error_page(site, request, 403, "Refused", problem)
        prompt = form.get("prompt", [""])[0].strip() or None
        if site.starter is not None:
            return await _hand_over(site, request, name, prompt, form.get("form", [""])[0])
        try:
            rec = await run_in_threadpool(site.start, name, prompt, user_of(request, site))
        except RunError as exc:
            return error_page(site, request, 404, "Cannot start", str(exc))
        except AgentplaneError as exc:
            return error_page(site, request, 400, "Cannot start", str(exc))
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/runs/{quote(rec.run_id)}", 303)


async def _hand_over(
    site: Site, request: Request, name: str, prompt: str | None, form_id: str
) -> Response:
    """serve: the start goes to the door's queue; the worker runs it, not this request."""
    assert site.starter is not None
    if not FORM_ID.match(form_id):
        form_id = secrets.token_urlsafe(24)
    try:
        info = await run_in_threadpool(site.job, name)
        note = await run_in_threadpool(
            site.starter, Start(info, user_of(request, site), prompt, form_id)
        )
    except NotPermitted as exc:
        return error_page(site, request, 403, "Not allowed", str(exc))
    except RunError as exc:
        return error_page(site, request, 404, "Cannot start", str(exc))
    except AgentplaneError as exc:
        return error_page(site, request, 400, "Cannot start", str(exc))
    return _page(site, request, "notice.html", title="Run requested", message=note, run_id=None)
