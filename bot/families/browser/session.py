"""The propose-time browser session: the model's steps, recorded; state changes held.

A held request is recorded exactly (method, URL, body digest) with a screenshot
of the page at that moment, then aborted: in propose nothing state-changing
ever leaves the browser. After a hold the session is sealed and refuses more
steps, so the run stops where the reviewer will pick it up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from playwright.async_api import Error as PlaywrightError

from bot.core.job import GatedElement
from bot.families.browser.allowlist import check_url
from bot.families.browser.driver import BrowserCredential, Chromium
from bot.families.browser.elements import (
    ACTION_TIMEOUT_MS,
    NAVIGATION_TIMEOUT_MS,
    element_info,
    is_password_field,
    locate,
    mask_fields,
    mask_password_values,
    password_names,
    password_values,
)
from bot.families.browser.errors import BrowserError
from bot.families.browser.gate import element_gate, element_matches, gated_seen
from bot.families.browser.login import LoginFailed
from bot.families.browser.model import Blocked, BrowserRun, PendingRequest, Step, StepAction, Target
from bot.families.browser.tab import Held, Tab

MAX_READ = 12_000


class StepRefused(BrowserError):
    """The session refused a step under a rule (outside the allowlist, sealed after a hold)."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule, self.reason = rule, reason
        super().__init__(f"{rule}: {reason}")


class BrowserSession:
    """Synchronous facade over one context on a private Chromium; one per run."""

    def __init__(
        self,
        domains: Sequence[str],
        gated: Sequence[GatedElement] = (),
        *,
        volatile_fields: Sequence[str] = (),
        domain_rule: str = "job#scope.browser.domains",
        job_rule: str = "job",
        credential: BrowserCredential | None = None,
        chromium: Chromium | None = None,
    ) -> None:
        self.run = BrowserRun(
            domains=list(domains),
            gated=list(gated),
            volatile_fields=list(volatile_fields),
            credential=credential.name if credential else None,
            credential_form=credential.form if credential else None,
            gated_seen=[] if gated else None,
        )
        self.credential = credential
        self.domain_rule, self.job_rule = domain_rule, job_rule
        self.chromium = chromium or Chromium(domains)
        self.tab = Tab(domains, credential, domain_rule)
        self.images: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self._open = False
        self._failed = ""
        self.typed_secrets: list[str] = []
        """Values typed into password fields this session: masked in what it shows."""
        self._closed = False

    # -- helpers ----------------------------------------------------------------------

    def _start(self, action: StepAction, target: Target | None, value: str | None) -> Step:
        if self._closed:
            raise BrowserError("the browser session is closed")
        if self.run.pending is not None:
            raise StepRefused(
                "browser#held",
                f"step {self.run.pending.step} is held for approval "
                f"({self.run.pending.describe()}); the run stops here",
            )
        if self._failed:
            raise BrowserError(self._failed)
        if not self._open:
            try:
                self.chromium.run(self.tab.open(self.chromium.browser(), self.chromium.gate))
            except LoginFailed as exc:
                # Tried once: every later step says why, none types the password again.
                self._failed = str(exc)
                raise
            self._open = True
            self.run.logins = list(self.tab.logins)
        step = Step(n=len(self.run.steps) + 1, action=action, target=target, value=value)
        self.tab.step = self.chromium.gate.step = step.n
        return step

    def _finish(self, step: Step) -> Step:
        with contextlib.suppress(BrowserError):
            step.url_after = self.tab.page.url
        self._look_for_gated(step)
        self.run.steps.append(step)
        self.run.blocked = list(self.tab.blocked)
        self.run.gate_events = self.chromium.gate.refused()
        return step

    async def _hold(self, step: Step, held: Held) -> None:
        try:
            shot = await self.tab.gate_screenshot()
            page_url = self.tab.page.url  # before the abort, which may swap in an error page
        except (PlaywrightError, BrowserError):
            # No picture, no hold: the request is refused all the same, and nothing
            # state-changing leaves this session again.
            with contextlib.suppress(PlaywrightError):
                await held.route.abort("blockedbyclient")
            self.tab.sealed = True
            await self.tab.settle_action()
            raise
        name = "gate.png"
        self.images[name] = shot
        secret_fields = sorted(self.tab.password_names)
        await held.route.abort("blockedbyclient")
        self.tab.sealed = True  # also refuses the requests that came during the hold
        await self.tab.settle_action()
        step.status, step.screenshot = "held", name
        step.note = f"held for approval: {held.request.method} {held.request.url}"
        self.run.pending = PendingRequest(
            step=step.n,
            action=held.hit.action,
            rule=held.hit.rule,
            reason=held.hit.reason,
            method=held.request.method,
            url=held.request.url,
            body_sha256=held.body_sha256,
            body_size=len(held.body or b""),
            content_type=held.request.headers.get("content-type"),
            form=mask_fields(held.form, secret_fields),
            secret_fields=[k for k in secret_fields if k in dict(held.form or [])],
            volatile_fields=[k for k in self.run.volatile_fields if k in dict(held.form or [])],
            page_url=page_url,
            element=step.element,
            screenshot=name,
        )

    def _look_for_gated(self, step: Step) -> None:
        """Note which gated rules match an element of the page now shown (and the clicked
        element), so the evidence can warn of a rule that never matched anything: it
        gates nothing, and its click would pass as a plain submit at most."""
        seen = self.run.gated_seen
        if seen is None:
            return
        found = {
            i
            for i, rule in enumerate(self.run.gated)
            if step.element is not None and element_matches(rule, step.element)
        }
        try:
            found |= gated_seen(
                self.run.gated, self.chromium.run(self.tab.page.locator("body").aria_snapshot())
            )
        except (PlaywrightError, BrowserError):
            return  # a page that cannot be read is not counted as looked at
        if step.url_after and step.url_after not in self.run.pages_seen:
            self.run.pages_seen.append(step.url_after)
        seen[:] = sorted(set(seen) | found)

    # -- the tools --------------------------------------------------------------------

    def goto(self, url: str) -> str:
        step = self._start("goto", None, url)
        verdict = check_url(url, self.run.domains)
        if not verdict.allowed:
            step.status, step.note = "refused", verdict.reason
            self.tab.blocked.append(
                Blocked(
                    step=step.n, method="GET", url=url, resource_type="goto", reason=verdict.reason
                )
            )
            self._finish(step)
            raise StepRefused(self.domain_rule, verdict.reason)

        async def go() -> None:
            response = await self.tab.page.goto(url, wait_until="load")
            step.http_status = response.status if response is not None else None

        return self._act(step, go, NAVIGATION_TIMEOUT_MS)

    def click(self, target: Target) -> str:
        step = self._start("click", target, None)

        async def click() -> Held | None:
            loc = locate(self.tab.page, target)
            step.element = await element_info(loc)
            hit = element_gate(step.element, self.run.gated, self.job_rule)
            if hit is not None:
                self.tab.password_names |= set(await password_names(loc))
                await self.tab.shoot_form(loc)
            return await self.tab.act(loc.click(), armed=hit)

        return self._run_held(step, click)

    def fill(self, target: Target, text: str) -> str:
        step = self._start("fill", target, text)

        async def fill() -> None:
            loc = locate(self.tab.page, target)
            if await is_password_field(loc):
                # What goes into a password field is masked wherever it is shown: the
                # tool call, the evidence, the trace and the HAR. Only browser-run.json
                # keeps it, since apply must type it again.
                step.secret = True
                self.tab.password_names |= set(await password_names(loc))
                if text:
                    self.typed_secrets.append(text)
                    self.tab.extra_secrets.append(text)
            else:
                with contextlib.suppress(PlaywrightError):
                    step.before = await loc.input_value()
            await loc.fill(text)

        return self._act(step, fill)

    def select(self, target: Target, option: str) -> str:
        step = self._start("select", target, option)

        async def select() -> None:
            loc = locate(self.tab.page, target)
            with contextlib.suppress(PlaywrightError):
                step.before = await loc.input_value()
            await loc.select_option(option)

        return self._act(step, select)

    def read(self) -> str:
        step = self._start("read", None, None)

        async def read() -> str:
            title = await self.tab.page.title()
            snap = await self.tab.page.locator("body").aria_snapshot()
            return f"{title}\n{mask_password_values(snap, await password_values(self.tab.page))}"

        try:
            text = self.chromium.run(read())
        except PlaywrightError as exc:
            step.status, step.note = "error", _short(exc)
            self._finish(step)
            raise BrowserError(step.note) from None
        title, _, snap = text.partition("\n")
        step.read_text = snap[:MAX_READ]
        self._finish(step)
        cut = "\n(cut)" if len(snap) > MAX_READ else ""
        return f"URL: {step.url_after}\nTitle: {title}\n{snap[:MAX_READ]}{cut}"

    def screenshot(self) -> str:
        step = self._start("screenshot", None, None)
        name = f"screenshot-{step.n}.png"
        self.images[name] = self.chromium.run(self.tab.page.screenshot(full_page=True))
        step.screenshot = name
        self._finish(step)
        return f"saved {name} ({len(self.images[name])} bytes) of {step.url_after}"

    # -- running actions --------------------------------------------------------------

    def _act(
        self, step: Step, action: Callable[[], Awaitable[None]], timeout_ms: int = ACTION_TIMEOUT_MS
    ) -> str:
        async def run() -> Held | None:
            return await self.tab.act(action(), timeout_ms=timeout_ms)

        return self._run_held(step, run)

    def _run_held(self, step: Step, run: Callable[[], Coroutine[Any, Any, Held | None]]) -> str:
        try:
            held = self.chromium.run(run())
            if held is not None:
                self.chromium.run(self._hold(step, held))
        except (PlaywrightError, BrowserError) as exc:
            step.status, step.note = "error", _short(exc)
            self._finish(step)
            raise BrowserError(f"{step.action} failed: {step.note}") from None
        self._finish(step)
        if self.run.pending is not None:
            p = self.run.pending
            return (
                f"HELD for approval ({p.action}, {p.rule}): {p.reason}. The request "
                f"{p.describe()} was not sent; a reviewer sees it with a screenshot. "
                "The browser session stops here."
            )
        blocked = [b for b in self.tab.blocked if b.step == step.n]
        tail = f"; blocked {len(blocked)} request(s) outside the allowlist" if blocked else ""
        refused = [e for e in self.run.gate_events if e.step == step.n]
        if refused:
            tail += f"; the network gate refused {len(refused)} state-changing request(s)"
        return f"{step.action} ok; now at {step.url_after}{tail}"

    def close(self) -> dict[str, bytes]:
        """End the session; the trace, HAR and screenshots by artifact name."""
        if self._closed:
            return self.files
        self._closed = True
        try:
            if self._open:
                self.files = self.chromium.run(self.tab.close())
        finally:
            self.chromium.close()
            self.run.sandbox = self.chromium.sandbox
            # Complete only now: a beacon fired as the page closed is refused last.
            self.run.gate_events = self.chromium.gate.refused()
        self.files.update(self.images)
        return self.files


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
