"""One browser context with the run's fences: every request routed through the allowlist,
every state-changing request held until the caller decides, trace and HAR recorded.

Holding means leaving the route unanswered: the page stays where it was (for
the gate screenshot) and the request has not left the browser. The caller then
aborts it (propose) or, if it is exactly the approved one, continues it (apply).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import io
import json
import re
import tempfile
import zipfile
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

from PIL import Image, ImageDraw
from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Locator,
    Page,
    Request,
    Route,
    WebSocketRoute,
)
from playwright.async_api import Error as PlaywrightError

from bot.families.browser.allowlist import check_url
from bot.families.browser.driver import BrowserCredential
from bot.families.browser.elements import (
    ACTION_TIMEOUT_MS,
    NAVIGATION_TIMEOUT_MS,
    element_boxes,
)
from bot.families.browser.errors import BrowserError
from bot.families.browser.gate import GateHit, request_gate
from bot.families.browser.login import form_login
from bot.families.browser.model import Blocked, Login
from bot.families.browser.netgate import NetworkGate

SETTLE_S = 0.3
"""After an action returns, how long a request it started may take to show up."""
HOLD_WAIT_S = 5.0
SHOT_MARGIN = 16.0
MAX_SHOT_PX = 8000.0
"""A gate screenshot is never taller than this (a page can be endless)."""
MARK_COLOUR = (255, 0, 255)
"""The gated element's outline on the gate screenshot: a colour pages rarely use."""
SHOT_TIMEOUT_S = 10.0
"""The DevTools screenshot has no timeout of its own: a hold must never wedge on it."""
LATE_WAIT_S = 20.0
"""How long a request that came while another was held waits for the seal before it is
refused anyway (the hold's screenshot and abort take well under a second)."""
MASK = b"[REDACTED]"
"""The one redactor's mask (bot/run/redact.py, a layer above this one)."""
MIN_SECRET = 4
"""As the redactor: a shorter password would mask ordinary bytes."""
MIN_COOKIE = 8
"""Cookie values this long are masked (a session id); shorter ones are flags like `1`."""


@dataclass
class Held:
    route: Route
    request: Request
    hit: GateHit
    body: bytes | None

    @property
    def body_sha256(self) -> str | None:
        return hashlib.sha256(self.body).hexdigest() if self.body is not None else None

    @property
    def form(self) -> list[tuple[str, str]] | None:
        ctype = (self.request.headers.get("content-type") or "").split(";")[0].strip()
        if self.body is None or ctype != "application/x-www-form-urlencoded":
            return None
        return parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)


def form_encoded(value: str) -> str:
    """value as a browser encodes a form field (WHATWG urlencoded: only `*-._` and
    alphanumerics kept, space as `+`); Python's quote_plus also keeps `~`."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def credential_forms(
    credential: BrowserCredential | None, cookies: Sequence[str] = ()
) -> list[bytes]:
    """Every form in which the credential's password shows up in a HAR or a trace: as
    typed, inside `user:password`, as HTTP Basic's token (every request Chromium sends
    with the credential carries it), JSON-escaped, HTML-escaped and percent-encoded (a
    form's body); and the session's cookie values (MIN_COOKIE long or more). Longest first."""
    if credential is None:
        return []
    forms = {c for c in cookies if len(c) >= MIN_COOKIE}
    if len(credential.password) >= MIN_SECRET:
        pw, userinfo = credential.password, f"{credential.username}:{credential.password}"
        token = base64.b64encode(userinfo.encode()).decode()
        forms |= {pw, userinfo, token, token.rstrip("="), json.dumps(pw)[1:-1]}
        forms |= {quote(pw, safe=""), quote_plus(pw), form_encoded(pw), html.escape(pw)}
    return sorted({f.encode() for f in forms}, key=len, reverse=True)


def outline(png: bytes, box: tuple[float, float, float, float]) -> bytes:
    """png with box (x, y, width, height) outlined in MARK_COLOUR."""
    with Image.open(io.BytesIO(png)) as img:
        pic = img.convert("RGB")
    x, y, w, h = box
    ImageDraw.Draw(pic).rectangle(
        (x - 4, y - 4, x + w + 4, y + h + 4), outline=MARK_COLOUR, width=4
    )
    out = io.BytesIO()
    pic.save(out, "PNG")
    return out.getvalue()


def typed_forms(values: Sequence[str]) -> list[bytes]:
    """What was typed into password fields, as the trace and a form body spell it."""
    forms: set[str] = set()
    for v in values:
        if len(v) >= MIN_SECRET:
            forms |= {v, json.dumps(v)[1:-1], form_encoded(v), quote(v, safe=""), html.escape(v)}
    return [f.encode() for f in forms]


def mask(data: bytes, secrets: Sequence[bytes]) -> bytes:
    for secret in secrets:
        data = data.replace(secret, MASK)
    return data


def mask_zip(data: bytes, secrets: Sequence[bytes]) -> bytes:
    """The trace with every member masked (the page's HTML, the network log, the
    snapshots); names, order and compression kept, so the trace viewer still opens it.
    The zip is returned as it was when no member holds a secret."""
    if not secrets:
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        members = [(info, src.read(info)) for info in src.infolist()]
    if not any(secret in body for _, body in members for secret in secrets):
        return data
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info, body in members:
            dst.writestr(info, mask(body, secrets), compress_type=info.compress_type)
    return out.getvalue()


class Tab:
    def __init__(
        self,
        domains: Sequence[str],
        credential: BrowserCredential | None,
        block_rule: str,
    ) -> None:
        self.domains = list(domains)
        self.credential = credential
        self.block_rule = block_rule
        self.blocked: list[Blocked] = []
        self.step = 0
        self.armed: GateHit | None = None
        self.held: Held | None = None
        self.refused_late: list[str] = []
        self.logins: list[Login] = []
        """Form logins the broker performed for this context."""
        self.pre_shot: bytes | None = None
        """The gated click's form, its element outlined: the gate screenshot, if held."""
        self.password_names: set[str] = set()
        """Names of the password fields the page had where the run typed or clicked."""
        self.extra_secrets: list[str] = []
        """Values typed into password fields: masked in the trace and the HAR as well."""
        self.login_cookies: list[str] = []
        """Cookie values the login set: the session is as secret as the password."""
        """State-changing requests refused after the first was held (or after the seal)."""
        self._held_event = asyncio.Event()
        self._sealed_event = asyncio.Event()
        self._dir = tempfile.TemporaryDirectory(prefix="agentplane-browser-")
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._pending_action: asyncio.Future[Any] | None = None
        self._cdp: CDPSession | None = None

    @property
    def sealed(self) -> bool:
        """Once sealed (after a hold is recorded, or as the approved request leaves),
        nothing state-changing leaves the browser again; late attempts are listed in
        refused_late. Sealing also answers the requests that came while one was held."""
        return self._sealed_event.is_set()

    @sealed.setter
    def sealed(self, value: bool) -> None:
        if not value:
            raise ValueError("a sealed tab stays sealed")
        self._sealed_event.set()

    @property
    def page(self) -> Page:
        if self._page is None:
            raise BrowserError("the browser context is not open")
        return self._page

    async def open(self, browser: Browser, gate: NetworkGate | None = None) -> None:
        """Open the context; a form credential logs in first, in a context of its own."""
        state: Any = None
        if self.credential is not None and self.credential.form is not None:
            if gate is None:
                raise BrowserError("a form login needs the network gate to release its request")
            done = await form_login(browser, self.credential, self.domains, gate)
            self.logins.append(done.record)
            self.login_cookies += done.cookie_values
            state = done.state
        self._context = await browser.new_context(
            record_har_path=str(Path(self._dir.name) / "browser.har"),
            service_workers="block",  # a service worker's fetches would bypass routing
            http_credentials=self.credential.for_playwright() if self.credential else None,
            storage_state=state,
            accept_downloads=False,
        )
        self._context.set_default_timeout(ACTION_TIMEOUT_MS)
        self._context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        await self._context.tracing.start(screenshots=True, snapshots=True, sources=False)
        await self._context.route("**/*", self._route)
        await self._context.route_web_socket(re.compile(".*"), self._websocket)
        self._page = await self._context.new_page()
        self._cdp = await self._context.new_cdp_session(self._page)
        # A confirm("Delete?") is answered yes: the request it releases is held at the gate.
        self._page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))

    async def shoot_form(self, locator: Locator) -> None:
        """Before a gated click: the whole form of the element, the element outlined, kept
        for the gate screenshot. Taken before the click because a held navigation stops
        Playwright's screenshots; the outline is drawn on the picture, not the page."""
        self.pre_shot = None
        boxes = await element_boxes(locator)
        if boxes is None:
            return
        el = boxes["element"]
        parts = [b for b in (el, boxes.get("form")) if b]
        x0 = max(0.0, min(b["x"] for b in parts) - SHOT_MARGIN)
        y0 = max(0.0, min(b["y"] for b in parts) - SHOT_MARGIN)
        x1 = max(b["x"] + b["w"] for b in parts) + SHOT_MARGIN
        y1 = min(max(b["y"] + b["h"] for b in parts) + SHOT_MARGIN, y0 + MAX_SHOT_PX)
        try:
            png = await self.page.screenshot(
                full_page=True,
                clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0},
                animations="disabled",
                timeout=ACTION_TIMEOUT_MS,
            )
        except PlaywrightError:
            return  # the hold falls back to the window as it is then
        self.pre_shot = outline(png, (el["x"] - x0, el["y"] - y0, el["w"], el["h"]))

    async def gate_screenshot(self) -> bytes:
        """The picture a reviewer approves: the form shot taken just before the gated
        click, or else the page as it is while a navigation is held. Playwright's own
        screenshot waits for that navigation, so ask the DevTools protocol; the session
        opened with the page because detaching one mid-hold never returns."""
        if self.pre_shot is not None:
            shot, self.pre_shot = self.pre_shot, None
            return shot
        assert self._cdp is not None
        try:
            data = await asyncio.wait_for(
                self._cdp.send("Page.captureScreenshot", {"format": "png"}), SHOT_TIMEOUT_S
            )
        except TimeoutError:
            raise BrowserError(
                f"the gate screenshot did not come in {SHOT_TIMEOUT_S:g} s"
            ) from None
        return base64.b64decode(data["data"])

    def _block(self, method: str, url: str, kind: str, reason: str) -> None:
        self.blocked.append(
            Blocked(step=self.step, method=method, url=url, resource_type=kind, reason=reason)
        )

    async def _route(self, route: Route, request: Request) -> None:
        verdict = check_url(request.url, self.domains)
        if not verdict.allowed:
            self._block(request.method, request.url, request.resource_type, verdict.reason)
            await route.abort("blockedbyclient")
            return
        hit = request_gate(request.method, request.is_navigation_request(), self.armed, request.url)
        if hit is None:
            await route.continue_()
            return
        if self.sealed or self.held is not None:
            self.refused_late.append(f"{request.method} {request.url}")
            if not self.sealed:
                # Another request is held, and its gate screenshot may be in flight:
                # aborting a navigation now would swap in Chromium's error page under
                # it (the page's own POST held, then the form's), and the DevTools
                # screenshot never returns. Leave this one unanswered, like the held
                # one, until the hold is recorded and the tab sealed; then refuse it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._sealed_event.wait(), LATE_WAIT_S)
            with contextlib.suppress(PlaywrightError):
                await route.abort("blockedbyclient")
            return
        self.held = Held(route, request, hit, request.post_data_buffer)
        self._held_event.set()

    async def release(self, held: Held) -> None:
        """Let the held request go. On the credential's origin it carries the credential
        from the start: Chromium would send it without, take the 401, and send it again,
        and the network gate lets the approved request leave once."""
        auth = self.credential.authorization(held.request.url) if self.credential else None
        if auth is None:
            await held.route.continue_()
            return
        await held.route.continue_(headers={**held.request.headers, "authorization": auth})

    async def _websocket(self, ws: WebSocketRoute) -> None:
        verdict = check_url(ws.url, self.domains)
        if not verdict.allowed:
            self._block("GET", ws.url, "websocket", verdict.reason)
            await ws.close(code=1008, reason="blocked by agentplane")
            return
        ws.connect_to_server()  # the server's messages reach the page: they are reads
        # A message from the page may change state, and a socket has no request to hold,
        # replay or compare at apply: so none is forwarded.
        ws.on_message(lambda message: self._websocket_send(ws.url, message))

    def _websocket_send(self, url: str, message: str | bytes) -> None:
        if any(b.step == self.step and b.url == url and b.method == "SEND" for b in self.blocked):
            return  # one entry per socket and step; later sends are dropped all the same
        data = message.encode() if isinstance(message, str) else message
        self._block(
            "SEND",
            url,
            "websocket-send",
            "a WebSocket message from the page can change state and cannot be held for "
            f"approval: dropped ({len(data)} bytes, sha256:{hashlib.sha256(data).hexdigest()})",
        )

    async def act(
        self,
        action: Awaitable[Any],
        armed: GateHit | None = None,
        timeout_ms: int = ACTION_TIMEOUT_MS,
    ) -> Held | None:
        """Run one action; return the request it tried to send past the gate, if any."""
        self.armed = armed
        task = asyncio.ensure_future(action)
        waiter = asyncio.ensure_future(self._held_event.wait())
        try:
            done, _ = await asyncio.wait(
                {task, waiter},
                timeout=timeout_ms / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if task in done and self.held is None:
                task.result()  # the action's own error, if it failed
                with contextlib.suppress(PlaywrightError):
                    await self.page.wait_for_load_state("load", timeout=ACTION_TIMEOUT_MS)
                await asyncio.wait({waiter}, timeout=HOLD_WAIT_S if armed else SETTLE_S)
            elif not done:
                raise BrowserError(f"the action did not finish in {timeout_ms} ms")
            return self.held
        finally:
            waiter.cancel()
            self.armed = None
            if self.held is not None:
                # The action may wait on the held navigation; it ends when the route is answered.
                self._pending_action = task
            elif not task.done():
                task.cancel()

    async def settle_action(self) -> None:
        """After the held route is answered, let the action that started it finish."""
        task = self._pending_action
        if task is not None:
            with contextlib.suppress(PlaywrightError, asyncio.TimeoutError, BrowserError):
                await asyncio.wait_for(task, ACTION_TIMEOUT_MS / 1000)
            self._pending_action = None

    async def close(self) -> dict[str, bytes]:
        """Stop the trace, close the context (which writes the HAR); both as bytes, with
        the broker credential masked in them: they record every request (its Basic
        header) and every page (one may show the password) and go to the audit branch."""
        out: dict[str, bytes] = {}
        self.sealed = True  # a request still waiting on a hold is refused, not sent
        if self._context is None:
            return out
        trace = Path(self._dir.name) / "trace.zip"
        try:
            await self._context.tracing.stop(path=str(trace))
            # A logged-in session's cookies open the console as the password does: every
            # Cookie and Set-Cookie header in the HAR and the trace is masked with it.
            jar: list[str] = []
            if self.credential is not None:
                with contextlib.suppress(PlaywrightError):
                    jar = [str(c.get("value", "")) for c in await self._context.cookies()]
            await self._context.close()
            secrets = credential_forms(self.credential, [*self.login_cookies, *jar])
            secrets = sorted({*secrets, *typed_forms(self.extra_secrets)}, key=len, reverse=True)
            for name in ("trace.zip", "browser.har"):
                path = Path(self._dir.name) / name
                if path.exists():
                    data = path.read_bytes()
                    out[name] = (
                        mask_zip(data, secrets) if name.endswith(".zip") else mask(data, secrets)
                    )
        finally:
            self._context, self._page, self._cdp = None, None, None
            self._dir.cleanup()
        return out
