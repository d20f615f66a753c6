"""What keeps hostile pages and hostile content away from the run pages.

- Host check: `agentplane ui` answers only requests addressed to the loopback names it
  serves, so a page that rebinds its own DNS name to 127.0.0.1 cannot read it.
- Headers: a strict Content-Security-Policy on every response (no script at all in the
  app's origin; the trace viewer's origin is the one frame it may show), nosniff, no
  referrer, no framing.
- CSRF: a double-submit token (cookie and form field, compared in constant time) plus
  the Origin and Sec-Fetch-Site headers browsers send with every POST.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
CSRF_COOKIE = "agentplane_csrf"
CSRF_FIELD = "csrf"


def allowed_hosts(port: int, names: Iterable[str] = LOOPBACK) -> frozenset[str]:
    """The Host header values a server on this loopback port accepts."""
    return frozenset(f"{name}:{port}" for name in names)


def app_csp(frame_origin: str | None) -> str:
    frame = frame_origin or "'none'"
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        f"frame-src {frame}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


def viewer_csp(app_origin: str) -> str:
    """The trace viewer's own origin: its scripts, workers and snapshot frames, and
    nothing from anywhere else; it may be framed only by the app."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'self'; "
        f"form-action 'none'; frame-ancestors {app_origin}"
    )


class HostCheck:
    """ASGI middleware: 421 for any Host not in `hosts` (DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host.lower() not in self.hosts:
                response = PlainTextResponse(
                    "unknown Host: agentplane ui answers only its loopback address\n", 421
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


Handler = Callable[[Request], Awaitable[Response]]


def headers_middleware(
    csp: str, frame_options: str | None = "DENY"
) -> Callable[[Request, Handler], Awaitable[Response]]:
    async def add_headers(request: Request, call_next: Handler) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: with no-referrer a browser posts forms as Origin: null
        response.headers["Referrer-Policy"] = "same-origin"
        if frame_options is not None:
            response.headers.setdefault("X-Frame-Options", frame_options)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return add_headers


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The token this browser already holds, or a new one (set it with `set_csrf`)."""
    held = request.cookies.get(CSRF_COOKIE, "")
    return held if len(held) >= 32 else new_token()


def set_csrf(response: Response, token: str) -> None:
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")


def csrf_problem(request: Request, form_token: str, origins: frozenset[str]) -> str | None:
    """Why this POST is refused, or None: the token pair must match, and a browser that
    says where the request came from must say it came from here."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not form_token:
        return "missing CSRF token: reload the page and submit again"
    if not hmac.compare_digest(cookie.encode(), form_token.encode()):
        return "CSRF token does not match: reload the page and submit again"
    origin = request.headers.get("origin")
    if origin is not None and origin not in origins:
        return f"cross-origin request from {origin[:100]} refused"
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "cross-site request refused"
    return None
