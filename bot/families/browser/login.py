"""The broker's form login: policy says which fields, which button and how success shows;
the broker types the credential in, in a context of its own, before the model's first step.

The model's context starts with the session cookies only: no page it can read, no trace
and no HAR ever held the password field or the login request. The request is released
at the network gate as that credential's login, once, and only to the credential's own
origin: the login page must be there (after its redirects), the password field must be
an `<input type=password>`, and the form must post back to that origin, or the password
is never typed. Everything a login leaves is recorded as a `Login`; what was typed, never.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Browser, Page, Request, Route
from playwright.async_api import Error as PlaywrightError

from bot.core.policy import ElementRef, FormLogin
from bot.families.browser.allowlist import check_url
from bot.families.browser.driver import BrowserCredential
from bot.families.browser.elements import element_info, locate
from bot.families.browser.errors import BrowserError
from bot.families.browser.gate import SAFE_METHODS
from bot.families.browser.model import Login, Target
from bot.families.browser.netgate import NetworkGate

LOGIN_TIMEOUT_MS = 30_000
"""Each step of the login (the page, the submit and where it lands): the broker waits for
the document, not for every picture and script a console's page loads."""


class LoginFailed(BrowserError):
    """The broker could not log in with the credential's form; nothing was typed elsewhere."""


@dataclass(frozen=True)
class LoggedIn:
    state: Any
    """Playwright's storage state (cookies, local storage) for the model's context."""
    record: Login
    cookie_values: list[str]


def target(ref: ElementRef) -> Target:
    return Target(role=ref.role, name=ref.name, label=ref.label, selector=ref.selector)


def succeeded(form: FormLogin, url: str, text: str) -> list[str]:
    """Pure: what the landing page lacks of policy's success test (empty: logged in)."""
    missing = []
    path = urlsplit(url).path or "/"
    if form.success.url and not fnmatch.fnmatchcase(path, form.success.url):
        missing.append(f"it landed on {path}, not on {form.success.url!r}")
    if form.success.text and form.success.text not in text:
        missing.append(f"the page does not show {form.success.text!r}")
    return missing


async def _field_kind(page: Page, ref: ElementRef) -> str:
    loc = locate(page, target(ref))
    kind: str = await loc.evaluate(
        "el => el.tagName.toLowerCase() + ':' + (el.getAttribute('type') || '').toLowerCase()"
    )
    return kind


async def form_login(
    browser: Browser, credential: BrowserCredential, domains: Sequence[str], gate: NetworkGate
) -> LoggedIn:
    form = credential.form
    assert form is not None
    who = f"credential {credential.name!r} ({credential.form_rule})"
    page_url = urljoin(credential.origin.rstrip("/") + "/", form.url.lstrip("/"))
    sent: list[Request] = []
    refused: list[str] = []
    armed = asyncio.Event()

    async def route(route: Route, request: Request) -> None:
        if not check_url(request.url, domains).allowed:
            refused.append(f"{request.method} {request.url} (outside the domains)")
            await route.abort("blockedbyclient")
            return
        if request.method.upper() in SAFE_METHODS:
            await route.continue_()
            return
        if armed.is_set() and not sent and credential.on_origin(request.url):
            body = request.post_data_buffer
            digest = hashlib.sha256(body).hexdigest() if body is not None else None
            sent.append(request)
            gate.release_login(
                request.method,
                request.url,
                digest,
                f"the login of {who}: policy declares this form as that credential's login",
            )
            await route.continue_()
            return
        refused.append(f"{request.method} {request.url}")
        await route.abort("blockedbyclient")

    # No HAR, no trace: this context is the only one that ever holds the typed password.
    context = await browser.new_context(service_workers="block", accept_downloads=False)
    try:
        context.set_default_timeout(LOGIN_TIMEOUT_MS)
        await context.route("**/*", route)
        page = await context.new_page()
        try:
            response = await page.goto(page_url, wait_until="domcontentloaded")
        except PlaywrightError as exc:
            raise LoginFailed(
                f"{who}: the login page {page_url} did not open: {_short(exc)}"
            ) from None
        if response is None or response.status >= 400:
            status = response.status if response is not None else "no response"
            raise LoginFailed(f"{who}: the login page {page_url} answered {status}")
        if not credential.on_origin(page.url):
            raise LoginFailed(
                f"{who}: the login page went to {page.url}, off the credential's origin "
                f"{credential.origin}; the password is typed only there"
            )
        try:
            kind = await _field_kind(page, form.password)
            if kind != "input:password":
                raise LoginFailed(
                    f"{who}: the password field policy names is <{kind.replace(':', ' type=')}>"
                    ", not <input type=password>: it would show the password, so it is not typed"
                )
            submit = await element_info(locate(page, target(form.submit)))
            action = submit.form_action or page.url
            if not submit.submits_form or not credential.on_origin(action):
                raise LoginFailed(
                    f"{who}: the submit button policy names does not submit a form to "
                    f"{credential.origin} (it posts to {submit.form_action or 'nothing'})"
                )
            await locate(page, target(form.username)).fill(credential.username)
            await locate(page, target(form.password)).fill(credential.password)
            armed.set()
            async with page.expect_navigation(wait_until="domcontentloaded"):
                await locate(page, target(form.submit)).click()
        except LoginFailed:
            raise
        except PlaywrightError as exc:
            raise LoginFailed(
                f"{who}: the login form could not be filled in: {_short(exc)}"
            ) from None
        finally:
            gate.end_login()
        if not sent:
            raise LoginFailed(f"{who}: the login form sent no request")
        login_response = await sent[0].response()
        text = ""
        with contextlib.suppress(PlaywrightError):
            text = await page.locator("body").inner_text()
        missing = succeeded(form, page.url, text)
        if missing:
            raise LoginFailed(
                f"{who}: the login did not succeed as policy says it shows: "
                + "; ".join(missing)
                + " (check the username and password in $AGENTPLANE_CREDENTIAL_<NAME>)"
            )
        state = await context.storage_state()
        cookies = [str(c.get("value", "")) for c in state.get("cookies", [])]
        record = Login(
            credential=credential.name,
            rule=credential.form_rule,
            page=page_url,
            method=sent[0].method,
            url=sent[0].url,
            status=login_response.status if login_response is not None else None,
            landed_on=page.url,
        )
        return LoggedIn(state, record, cookies)
    finally:
        with contextlib.suppress(PlaywrightError):
            await context.close()


def _short(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
