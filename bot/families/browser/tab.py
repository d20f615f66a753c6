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
from bot.families.browser.errors import BrowserError
from bot.families.browser.gate import GateHit, request_gate
from bot.families.browser.model import Blocked, ElementInfo, Target

ACTION_TIMEOUT_MS = 10_000
SETTLE_S = 0.3
"""After an action returns, how long a request it started may take to show up."""
HOLD_WAIT_S = 5.0
SHOT_TIMEOUT_S = 10.0
"""The DevTools screenshot has no timeout of its own: a hold must never wedge on it."""
LATE_WAIT_S = 20.0
"""How long a request that came while another was held waits for the seal before it is
refused anyway (the hold's screenshot and abort take well under a second)."""
FORM_INFO_JS = """el => {
  const form = el.form || el.closest('form');
  const type = (el.getAttribute('type') || '').toLowerCase();
  const tag = el.tagName.toLowerCase();
  const submits = !!form && (
    (tag === 'button' && (type === '' || type === 'submit')) ||
    (tag === 'input' && (type === 'submit' || type === 'image')));
  return {
    tag,
    submits,
    method: form ? (el.getAttribute('formmethod') || form.method || 'get') : null,
    action: form ? (el.hasAttribute('formaction') ? el.formAction : form.action) : null,
  };
}"""
MASK = b"[REDACTED]"
"""The one redactor's mask (bot/run/redact.py, a layer above this one)."""
MIN_SECRET = 4
"""As the redactor: a shorter password would mask ordinary bytes."""
_SNAPSHOT_LINE = re.compile(r'^- (?P<role>[\w-]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?')


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


def credential_forms(credential: BrowserCredential | None) -> list[bytes]:
    """Every form in which the credential's password shows up in a HAR or a trace: as
    typed, inside `user:password`, as HTTP Basic's token (every request Chromium sends
    with the credential carries it), JSON-escaped and percent-encoded. Longest first."""
    if credential is None or len(credential.password) < MIN_SECRET:
        return []
    pw, userinfo = credential.password, f"{credential.username}:{credential.password}"
    token = base64.b64encode(userinfo.encode()).decode()
    forms = {pw, userinfo, token, token.rstrip("="), json.dumps(pw)[1:-1], quote(pw, safe="")}
    forms.add(quote_plus(pw))
    return sorted({f.encode() for f in forms}, key=len, reverse=True)


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


def locate(page: Page, target: Target) -> Locator:
    if target.selector:
        return page.locator(target.selector)
    if target.label:
        return page.get_by_label(target.label, exact=True)
    if target.role:
        return page.get_by_role(target.role, name=target.name, exact=True)  # type: ignore[arg-type]
    if target.name:
        return page.get_by_text(target.name, exact=True)
    raise BrowserError("name an element: role (+ name), label or selector")


async def element_info(locator: Locator) -> ElementInfo:
    """Role and accessible name from Playwright's accessibility tree, plus its form."""
    snapshot = await locator.aria_snapshot(timeout=ACTION_TIMEOUT_MS)
    m = _SNAPSHOT_LINE.match(snapshot.strip().splitlines()[0] if snapshot.strip() else "")
    form: dict[str, Any] = await locator.evaluate(FORM_INFO_JS)
    return ElementInfo(
        role=m.group("role") if m else "generic",
        name=(m.group("name") or "").replace('\\"', '"') if m else "",
        tag=str(form["tag"]),
        submits_form=bool(form["submits"]),
        form_method=str(form["method"]).upper() if form["method"] else None,
        form_action=str(form["action"]) if form["action"] else None,
    )


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

    async def open(self, browser: Browser) -> None:
        self._context = await browser.new_context(
            record_har_path=str(Path(self._dir.name) / "browser.har"),
            service_workers="block",  # a service worker's fetches would bypass routing
            http_credentials=self.credential.for_playwright() if self.credential else None,
            accept_downloads=False,
        )
        self._context.set_default_timeout(ACTION_TIMEOUT_MS)
        await self._context.tracing.start(screenshots=True, snapshots=True, sources=False)
        await self._context.route("**/*", self._route)
        await self._context.route_web_socket(re.compile(".*"), self._websocket)
        self._page = await self._context.new_page()
        self._cdp = await self._context.new_cdp_session(self._page)
        # A confirm("Delete?") is answered yes: the request it releases is held at the gate.
        self._page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))

    async def gate_screenshot(self) -> bytes:
        """The page as it is while a navigation is held. Playwright's own screenshot waits
        for that navigation, so ask the DevTools protocol; the session opened with the page
        because detaching one mid-hold never returns."""
        assert self._cdp is not None
        try:
            shot = await asyncio.wait_for(
                self._cdp.send("Page.captureScreenshot", {"format": "png"}), SHOT_TIMEOUT_S
            )
        except TimeoutError:
            raise BrowserError(
                f"the gate screenshot did not come in {SHOT_TIMEOUT_S:g} s"
            ) from None
        return base64.b64decode(shot["data"])

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

    async def act(self, action: Awaitable[Any], armed: GateHit | None = None) -> Held | None:
        """Run one action; return the request it tried to send past the gate, if any."""
        self.armed = armed
        task = asyncio.ensure_future(action)
        waiter = asyncio.ensure_future(self._held_event.wait())
        try:
            done, _ = await asyncio.wait(
                {task, waiter},
                timeout=ACTION_TIMEOUT_MS / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if task in done and self.held is None:
                task.result()  # the action's own error, if it failed
                with contextlib.suppress(PlaywrightError):
                    await self.page.wait_for_load_state("load", timeout=ACTION_TIMEOUT_MS)
                await asyncio.wait({waiter}, timeout=HOLD_WAIT_S if armed else SETTLE_S)
            elif not done:
                raise BrowserError(f"the action did not finish in {ACTION_TIMEOUT_MS} ms")
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
            await self._context.close()
            secrets = credential_forms(self.credential)
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
