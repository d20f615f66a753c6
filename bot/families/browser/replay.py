"""Apply: replay the recorded steps in a fresh context and release exactly the approved request.

Deterministic and model-free. Each replayed step must land where it landed in
propose; the gated element must be the one approved; the request it sends
must have the approved method, URL and body digest. On any difference the
held request is aborted, nothing state-changing has left the browser, and
ReplayDiffers lists what differed. After the release the context is sealed:
a second state-changing request (a double submit, a script's follow-up) is
refused, so exactly one request is released. The network gate holds the same line
at the egress proxy for what routing never sees (a beacon, a worker, the browser
following a 307 or 308 with the approved body): it lets that one request through
once and refuses the rest; apply stops at a redirect that keeps the method.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from playwright.async_api import Error as PlaywrightError

from bot.families.browser.driver import BrowserCredential, Chromium
from bot.families.browser.elements import (
    ACTION_TIMEOUT_MS,
    NAVIGATION_TIMEOUT_MS,
    element_info,
    locate,
    mask_fields,
)
from bot.families.browser.errors import (
    BrowserError,
    ReleaseFailed,
    ReleaseRedirected,
    ReplayDiffers,
)
from bot.families.browser.gate import element_gate
from bot.families.browser.model import BrowserRun, GateEvent, Login, PendingRequest, Step
from bot.families.browser.netgate import NetworkGate
from bot.families.browser.tab import Held, Tab

REPLAYED = frozenset({"goto", "click", "fill", "select"})
METHOD_KEEPING_REDIRECTS = frozenset({307, 308})


@dataclass(frozen=True)
class Released:
    """The approved request left the browser once and the server answered."""

    status: int
    url: str
    page_url: str
    steps_replayed: int
    refused_after: list[str]
    gate_events: list[GateEvent] = field(default_factory=list)
    """What the network gate refused during apply (and the release it let through)."""
    artifacts: dict[str, bytes] = field(default_factory=dict)
    """apply-trace.zip and apply.har: the apply's own evidence."""
    logins: list[Login] = field(default_factory=list)
    """The broker's form login before the replay, when the credential has one."""


class _Differs(Exception):
    def __init__(self, differences: list[str]) -> None:
        self.differences = differences


def _masked(form: list[tuple[str, str]], volatile: list[str]) -> list[tuple[str, str]]:
    return [(k, "" if k in volatile else v) for k, v in form]


def form_changes(approved: PendingRequest, held: Held) -> str:
    now = mask_fields(held.form, approved.secret_fields)
    if approved.form is None or now is None:
        return ""
    before = dict(_masked(approved.form, approved.volatile_fields))
    after = dict(_masked(now, approved.volatile_fields))
    names = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    shown = ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in names)
    return f" (fields {shown})" if names else " (same fields, different encoding or order)"


def _same_body(approved: PendingRequest, held: Held) -> bool:
    """The approved body byte for byte; with volatile fields, the same form but for their
    values (same fields, same order, each volatile field present where it was)."""
    if not approved.volatile_fields or approved.form is None or held.form is None:
        return held.body_sha256 == approved.body_sha256
    # Password fields are stored masked, in both forms alike; the replayed fill types the
    # recorded value again, so what they hold is what was approved.
    now = mask_fields(held.form, approved.secret_fields) or []
    return _masked(now, approved.volatile_fields) == _masked(
        approved.form, approved.volatile_fields
    )


def request_differences(approved: PendingRequest, held: Held) -> list[str]:
    out = []
    if held.request.method != approved.method:
        out.append(f"method: approved {approved.method}, now {held.request.method}")
    if held.request.url != approved.url:
        out.append(f"URL: approved {approved.url}, now {held.request.url}")
    if not _same_body(approved, held):
        out.append(
            f"body: approved sha256:{approved.body_sha256}, now sha256:{held.body_sha256}"
            + form_changes(approved, held)
        )
    return out


async def _perform(tab: Tab, run: BrowserRun, step: Step, job_rule: str) -> Held | None:
    page = tab.page
    if step.action == "goto":
        answered: list[int] = []

        async def go() -> None:
            response = await page.goto(step.value or "", wait_until="load")
            answered.extend([response.status] if response is not None else [])

        held = await tab.act(go(), timeout_ms=NAVIGATION_TIMEOUT_MS)
        if step.http_status is not None and answered and answered[0] != step.http_status:
            raise _Differs(
                [
                    f"step {step.n} ({step.describe()}) answered HTTP {answered[0]}; "
                    f"approved HTTP {step.http_status}"
                ]
            )
        return held
    assert step.target is not None
    loc = locate(page, step.target)
    if step.action == "fill":
        return await tab.act(loc.fill(step.value or ""))
    if step.action == "select":
        return await tab.act(loc.select_option(step.value or ""))
    el = await element_info(loc)
    if step.element is not None and el != step.element:
        was, now = step.element.model_dump(), el.model_dump()
        raise _Differs(
            [
                f"step {step.n} {k}: approved {was[k]!r}, now {now[k]!r}"
                for k in was
                if was[k] != now[k]
            ]
        )
    return await tab.act(loc.click(), armed=element_gate(el, run.gated, job_rule))


def _redirect_stop(approved: PendingRequest, status: int, location: str | None) -> str:
    return (
        f"the approved {approved.method} {approved.url} was sent once and answered "
        f"{status} (to {location or 'no Location'}); a {status} would send the approved body "
        "again to a URL nobody approved, so apply did not follow it and stopped: "
        "check the site's state, then re-run the job against the new address"
    )


async def _replay(
    tab: Tab, gate: NetworkGate, run: BrowserRun, approved: PendingRequest, job_rule: str
) -> Released:
    replayed = 0
    for step in run.steps:
        if step.action not in REPLAYED or step.status not in ("ok", "held"):
            continue
        tab.step = gate.step = step.n
        at_gate = step.n == approved.step
        if at_gate and tab.page.url != approved.page_url:
            raise _Differs([f"the gate page is {tab.page.url}, approved {approved.page_url}"])
        try:
            held = await _perform(tab, run, step, job_rule)
        except (PlaywrightError, BrowserError) as exc:
            raise _Differs([f"step {step.n} ({step.describe()}) failed: {exc}"]) from None
        replayed += 1
        if not at_gate:
            if held is not None:
                await held.route.abort("blockedbyclient")
                raise _Differs(
                    [
                        f"step {step.n} now sends {held.request.method} {held.request.url}"
                        " before the approved gate"
                    ]
                )
            if tab.page.url != step.url_after:
                raise _Differs(
                    [f"step {step.n} landed on {tab.page.url}, approved on {step.url_after}"]
                )
            continue
        if held is None:
            raise _Differs([f"step {step.n} sent no request; approved {approved.describe()}"])
        differences = request_differences(approved, held)
        if differences:
            await held.route.abort("blockedbyclient")
            raise _Differs(differences)
        tab.sealed = True  # from here on, nothing else state-changing leaves
        # The proxy lets exactly this request through, once; routing has just matched it
        # to the approved one (volatile fields carry this page's values).
        gate.release_once(held.request.method, held.request.url, held.body_sha256)
        await tab.release(held)
        response = await held.request.response()
        if response is None:
            raise ReleaseFailed(f"{approved.describe()} was released but got no response")
        if response.status in METHOD_KEEPING_REDIRECTS:
            # Chromium follows it itself, past routing; the network gate refuses that.
            raise ReleaseRedirected(
                _redirect_stop(approved, response.status, response.headers.get("location"))
            )
        if not gate.released:
            raise ReleaseFailed(
                f"{approved.describe()} was released in the browser, but the network gate "
                f"never saw it leave (the site answered {response.status} through the proxy? "
                "see the egress log): apply cannot say it landed"
            )
        await tab.settle_action()
        with contextlib.suppress(PlaywrightError):
            await tab.page.wait_for_load_state("load", timeout=ACTION_TIMEOUT_MS)
        await asyncio.sleep(0.3)  # a follow-up request the page fires is refused, and listed
        return Released(
            status=response.status,
            url=held.request.url,
            page_url=tab.page.url,
            steps_replayed=replayed,
            refused_after=[
                *tab.refused_late,
                *(f"{e.method} {e.url} (refused at the network gate)" for e in gate.refused()),
            ],
            gate_events=list(gate.events),
        )
    raise _Differs([f"step {approved.step} (the gate) is not among the recorded steps"])


def release(
    run: BrowserRun,
    approved_digest: str,
    *,
    credential: BrowserCredential | None = None,
    job_rule: str = "job",
    environ: Mapping[str, str] | None = None,
    chromium: Chromium | None = None,
) -> Released:
    """Replay run and release its pending request, if it is still exactly the approved one.

    approved_digest is PendingRequest.digest() of what the reviewer saw. Raises
    ReplayDiffers (nothing was sent; .differences says why), ReleaseFailed (sent, no
    response) or BrowserUnavailable. Both outcomes carry apply-trace.zip and apply.har.
    """
    approved = run.pending
    if approved is None:
        raise BrowserError("the run holds no pending browser request to release")
    if approved.digest() != approved_digest:
        raise BrowserError("the recorded pending request is not the one that was approved")
    chromium = chromium or Chromium(run.domains, environ)
    tab = Tab(run.domains, credential, "apply")
    artifacts: dict[str, bytes] = {}
    try:
        browser = chromium.browser()
        try:
            chromium.run(tab.open(browser, chromium.gate))
        except BrowserError as exc:
            raise ReplayDiffers([f"the broker's login failed: {exc}"]) from None
        try:
            done = chromium.run(_replay(tab, chromium.gate, run, approved, job_rule))
        except _Differs as exc:
            with contextlib.suppress(PlaywrightError, BrowserError):
                artifacts["apply-differs.png"] = chromium.run(tab.gate_screenshot())
            files = chromium.run(tab.close())
            artifacts.update({f"apply-{k}": v for k, v in files.items()})
            raise ReplayDiffers(exc.differences, artifacts) from None
        files = chromium.run(tab.close())
        artifacts.update({f"apply-{k}": v for k, v in files.items()})
        return Released(**{**done.__dict__, "artifacts": artifacts, "logins": list(tab.logins)})
    finally:
        with contextlib.suppress(PlaywrightError, BrowserError):
            chromium.run(tab.close())
        chromium.close()
