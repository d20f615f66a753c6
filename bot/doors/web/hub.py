"""The run pages inside `agentplane serve`: sign-in with GitHub, one set of pages per
repository, each shown only to people GitHub says can read that repository.

- `/login` -> GitHub's authorize page -> `/login/callback`: the `state` GitHub returns must
  equal the one in our signed, short-lived state cookie; the code is exchanged for a user
  token, `/user` says who it is, and the token is dropped. The session cookie (signed,
  HttpOnly, SameSite=Lax so GitHub's redirect back carries it, Secure over https) holds
  only the numeric id and login.
- `/repos`: the repositories the bot serves that this person can read.
- `/repos/{owner}/{name}/...`: that repository's run pages and API (the same pages as
  `agentplane ui`, over the bot's own audit log for it). Without a session: a redirect to
  sign in (pages) or 401 (API). Without read access, or for a repository the bot does not
  serve: the same 403, which says nothing of the repository's runs or whether it exists.
- The trace viewer (AGENTPLANE_VIEWER_URL): another host that reaches this server, so
  another origin, where no page of the app answers and the session cookie (host-only) is
  never sent. A run page gives its reader one signed token per trace, for that repository
  and trace, good for TRACE_TTL; the viewer serves the trace only while GitHub still says
  that person can read the repository.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.doors.web.access import Access
from bot.doors.web.app import Origins, build
from bot.doors.web.oauth import OAuthError, Person, authorize_url, exchange, whoami
from bot.doors.web.pages import USER_SCOPE, TraceLink
from bot.doors.web.security import app_csp, headers_middleware
from bot.doors.web.session import BadToken, Signer
from bot.doors.web.site import Site, User
from bot.doors.web.templates import render
from bot.doors.web.viewer import NoTrace, build_token_viewer
from bot.doors.web.views import is_trace_name

SESSION_COOKIE = "agentplane_session"
STATE_COOKIE = "agentplane_oauth_state"
SESSION_TTL = 8 * 3600.0
STATE_TTL = 600.0  # GitHub's codes last ten minutes; a sign-in takes less
TRACE_TTL = 900.0
"""How long a trace link from a run page opens the trace in the viewer."""
NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}\Z")


class Session(BaseModel):
    id: int
    login: str


class State(BaseModel):
    state: str
    next: str


class TraceGrant(BaseModel):
    """One reader may view one trace of one repository (signed into the viewer's URL)."""

    repo: str
    sha256: str
    id: int
    login: str


@dataclass(frozen=True)
class SignIn:
    """What sign-in needs from the settings."""

    public_url: str
    client_id: str
    client_secret: str
    secret: str
    web_url: str
    api_url: str

    @property
    def callback(self) -> str:
        return f"{self.public_url}/login/callback"

    @property
    def origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")


Exchange = Callable[[str, str, str, str, str], str]
WhoAmI = Callable[[str, str], Person]


class Hub:
    def __init__(
        self,
        sign_in: SignIn,
        repos: Callable[[], list[str]],
        site_for: Callable[[str], Site | None],
        access: Access,
        exchange_code: Exchange = exchange,
        who: WhoAmI = whoami,
        viewer_url: str | None = None,
    ) -> None:
        self.sign_in, self.repos, self.site_for, self.access = sign_in, repos, site_for, access
        self.exchange_code, self.who = exchange_code, who
        self.viewer_url = viewer_url.rstrip("/") if viewer_url else None
        self.sessions = Signer(sign_in.secret, "session")
        self.states = Signer(sign_in.secret, "oauth state")
        self.grants = Signer(sign_in.secret, "trace view")
        self._apps: dict[str, ASGIApp] = {}
        self._lock = threading.Lock()

    # -- who is asking --------------------------------------------------------------------

    def person(self, request: Request) -> Person | None:
        try:
            s = self.sessions.load(Session, request.cookies.get(SESSION_COOKIE, ""))
        except BadToken:
            return None
        return Person(s.id, s.login)

    def known(self, full: str) -> str | None:
        """The repository's name as the bot serves it (GitHub's names ignore case)."""
        for repo in self.repos():
            if repo.casefold() == full.casefold():
                return repo
        return None

    def readable(self, person: Person) -> list[str]:
        return [r for r in sorted(self.repos()) if self.access.can_read(person, r)]

    def repo_app(self, full: str) -> ASGIApp | None:
        with self._lock:
            if full in self._apps:
                return self._apps[full]
        site = self.site_for(full)
        if site is None:
            return None
        site.refresh()
        origins = Origins(app=self.sign_in.origin, app_hosts=frozenset(), viewer=self.viewer_origin)
        app = build(site, origins, host_check=False, trace_link=self.trace_link(full))
        with self._lock:
            return self._apps.setdefault(full, app)

    # -- the trace viewer -----------------------------------------------------------------

    @property
    def viewer_origin(self) -> str | None:
        if self.viewer_url is None:
            return None
        parts = urlsplit(self.viewer_url)
        return f"{parts.scheme}://{parts.netloc}"

    def trace_link(self, full: str) -> TraceLink | None:
        if self.viewer_url is None:
            return None
        base = self.viewer_url

        def link(user: User, sha256: str) -> str:
            uid = int(user.key.removeprefix("github:"))
            grant = TraceGrant(repo=full, sha256=sha256, id=uid, login=user.name)
            return f"{base}/t/{self.grants.sign(grant, TRACE_TTL)}/trace.zip"

        return link

    def trace(self, token: str) -> bytes:
        """The trace a viewer token grants; NoTrace if it grants none (now)."""
        try:
            grant = self.grants.load(TraceGrant, token)
        except BadToken as exc:
            raise NoTrace(f"{exc}: open the trace from its run page again") from None
        served = self.known(grant.repo)
        person = Person(grant.id, grant.login)
        if served is None or not self.access.can_read(person, served):
            raise NoTrace("this trace cannot be shown: open it from its run page again")
        site = self.site_for(served)
        if site is None:
            raise NoTrace("no run of this repository names this trace")
        site.refresh()
        found = site.index.artifact_run(grant.sha256)
        if found is None or not is_trace_name(found[1]):
            raise NoTrace("no run of this repository names this trace")
        return site.engine.audit.artifact(grant.sha256)

    # -- responses ------------------------------------------------------------------------

    def _set(self, response: Response, name: str, value: str, ttl: float) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(ttl),
            httponly=True,
            samesite="lax",
            secure=self.sign_in.secure,
            path="/",
        )

    def page(
        self,
        request: Request,
        person: Person | None,
        name: str,
        status: int = 200,
        **context: object,
    ) -> HTMLResponse:
        user = User(person.key, person.login) if person else User("", "nobody")
        body = render(
            name, user=user, base="", signed_in=person is not None, jobs_enabled=False, **context
        )
        return HTMLResponse(body, status)

    def refused(
        self, request: Request, person: Person | None, status: int, message: str, api: bool
    ) -> Response:
        if api:
            return JSONResponse({"detail": message}, status)
        title = "Sign in" if status == 401 else "Not allowed"
        return self.page(request, person, "error.html", status, title=title, message=message)


def safe_next(target: str) -> str:
    """A local path to return to after sign-in: never another site (`//evil`, `/\\evil`)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2000:
        return "/repos"
    return target


def attach(app: FastAPI, hub: Hub) -> None:
    """Add sign-in and the per-repository pages to serve's app."""
    cfg = hub.sign_in

    @app.get("/login", include_in_schema=False)
    def login(next: str = "/repos") -> Response:
        state = secrets.token_urlsafe(32)
        response = RedirectResponse(
            authorize_url(cfg.web_url, cfg.client_id, cfg.callback, state), 302
        )
        token = hub.states.sign(State(state=state, next=safe_next(next)), STATE_TTL)
        hub._set(response, STATE_COOKIE, token, STATE_TTL)
        return response

    @app.get("/login/callback", include_in_schema=False)
    async def callback(request: Request, code: str = "", state: str = "") -> Response:
        try:
            held = hub.states.load(State, request.cookies.get(STATE_COOKIE, ""))
        except BadToken as exc:
            return hub.refused(
                request, None, 400, f"sign-in did not start here ({exc}): sign in again", api=False
            )
        if not state or not secrets.compare_digest(held.state.encode(), state.encode()):
            return hub.refused(
                request, None, 400, "the sign-in's state does not match: sign in again", api=False
            )
        if not code or len(code) > 512:
            return hub.refused(request, None, 400, "GitHub sent no code: sign in again", api=False)
        try:
            token = await run_in_threadpool(
                hub.exchange_code,
                cfg.web_url,
                cfg.client_id,
                cfg.client_secret,
                code,
                cfg.callback,
            )
            person = await run_in_threadpool(hub.who, cfg.api_url, token)
        except OAuthError as exc:
            return hub.refused(request, None, 502, str(exc), api=False)
        del token  # used once, for /user; never kept
        response = RedirectResponse(held.next, 303)
        hub._set(
            response,
            SESSION_COOKIE,
            hub.sessions.sign(Session(id=person.id, login=person.login), SESSION_TTL),
            SESSION_TTL,
        )
        response.delete_cookie(STATE_COOKIE, path="/")
        return response

    @app.get("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/repos", include_in_schema=False)
    async def repos(request: Request) -> Response:
        person = hub.person(request)
        if person is None:
            return RedirectResponse(f"/login?next={quote('/repos')}", 303)
        readable = await run_in_threadpool(hub.readable, person)
        return hub.page(request, person, "repos.html", repos=readable)

    app.mount("/repos", RepoPages(hub))
    app.middleware("http")(headers_middleware(app_csp(hub.viewer_origin)))
    if hub.viewer_url is not None:
        viewer = build_token_viewer(hub.trace, cfg.origin)
        app.add_middleware(ByHost, host=urlsplit(hub.viewer_url).netloc, other=viewer)


class ByHost:
    """ASGI: requests addressed to `host` go to `other` (the viewer), all else to the app.
    The viewer's host answers nothing of the app's, so no page or cookie of the app is
    ever on the viewer's origin."""

    def __init__(self, app: ASGIApp, host: str, other: ASGIApp) -> None:
        self.app, self.host, self.other = app, host.lower(), other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if host == self.host:
                await self.other(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RepoPages:
    """ASGI: `/repos/{owner}/{name}/...` to that repository's pages, for people who may
    read it; the person goes into the scope for the pages to show and act as."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        root = scope.get("root_path", "")
        rest = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
        parts = rest.lstrip("/").split("/", 2)
        tail = "/" + parts[2] if len(parts) > 2 else "/"
        api = tail.startswith(("/api/", "/openapi.json"))
        person = self.hub.person(request)
        if person is None:
            if api:
                response: Response = self.hub.refused(request, None, 401, "sign in first", True)
            else:
                back = quote(
                    scope["path"]
                    + (
                        "?" + scope["query_string"].decode("latin-1")
                        if scope.get("query_string")
                        else ""
                    )
                )
                response = RedirectResponse(f"/login?next={back}", 303)
            await response(scope, receive, send)
            return
        full = "/".join(parts[:2]) if len(parts) >= 2 else ""
        ok = len(parts) >= 2 and all(NAME.match(p) for p in parts[:2])
        served = self.hub.known(full) if ok else None
        app = None
        if served is not None:
            allowed = await run_in_threadpool(self.hub.access.can_read, person, served)
            app = self.hub.repo_app(served) if allowed else None
        if app is None:
            response = self.hub.refused(
                request,
                person,
                403,
                f"{person.login} cannot read this repository's runs here (GitHub does not "
                "list read access, or agentplane does not serve it)",
                api,
            )
            await response(scope, receive, send)
            return
        child = dict(scope)
        child["root_path"] = f"{root}/{full}"
        child[USER_SCOPE] = User(person.key, person.login)
        await app(child, receive, send)
