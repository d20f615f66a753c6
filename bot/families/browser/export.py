"""`agentplane browser export RUN`: the run's steps as a plain pytest test (Playwright sync API).

Plain pytest rather than pytest-playwright: its fixtures want Playwright's
downloaded browsers, which many hosts (ours) cannot fetch; this test finds
Chromium the way agentplane does. It replays the steps up to the approval gate
and never past it, asserts the URLs and the accessible text the agent read (but
not the values the run itself changes, which the page shows anew once it applied),
records a trace, and refuses every state-changing request, so running it
cannot change the site. Every recorded value is emitted with repr(): page
text can never become code.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from urllib.parse import urlsplit

from bot.families.browser.model import BrowserRun, Step, Target

HEADER = '''"""Regression test exported by agentplane from run {run_id}.

Replays the agent's browser steps (up to the approval gate, never past it) and
asserts what the agent read. Run: pytest {filename}
Credentials: $AGENTPLANE_BROWSER_USERNAME / $AGENTPLANE_BROWSER_PASSWORD{cred_note}.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, WebSocketRoute, expect, sync_playwright

DOMAINS = {domains!r}
CREDENTIAL_ORIGIN = {origin!r}


def _chromium(own: str) -> str:
    """As agentplane: $AGENTPLANE_CHROMIUM, else Playwright's own, else Debian's."""
    for path in (os.environ.get("AGENTPLANE_CHROMIUM"), own, "/usr/bin/chromium"):
        if path and os.access(path, os.X_OK):
            return path
    pytest.skip("no Chromium: set AGENTPLANE_CHROMIUM")


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host, port = (parts.hostname or "").lower(), parts.port
    for entry in DOMAINS:
        name, _, p = entry.lower().rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        name = name or entry.lower()
        if p and p.isdigit() and int(p) != port:
            continue
        if host == name or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def _guard(route: Route) -> None:
    # The regression test only looks: nothing off-list, nothing state-changing.
    request = route.request
    if not _allowed(request.url) or request.method not in ("GET", "HEAD"):
        route.abort("blockedbyclient")
    else:
        route.continue_()


def _guard_socket(ws: WebSocketRoute) -> None:
    # The server's messages reach the page; the page's (which may change state) never leave.
    if not _allowed(ws.url):
        ws.close(code=1008, reason="blocked by the exported test")
        return
    ws.connect_to_server()
    ws.on_message(lambda message: None)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    credentials = None
    if CREDENTIAL_ORIGIN:
        user = os.environ.get("AGENTPLANE_BROWSER_USERNAME")
        password = os.environ.get("AGENTPLANE_BROWSER_PASSWORD")
        if not (user and password):
            pytest.skip("set AGENTPLANE_BROWSER_USERNAME and AGENTPLANE_BROWSER_PASSWORD")
        credentials = {{"username": user, "password": password, "origin": CREDENTIAL_ORIGIN}}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_chromium(p.chromium.executable_path),
            chromium_sandbox=os.geteuid() != 0,
        )
        context = browser.new_context(http_credentials=credentials, service_workers="block")
        context.tracing.start(screenshots=True, snapshots=True)
        context.route("**/*", _guard)
        context.route_web_socket(re.compile(".*"), _guard_socket)
        try:
            yield context.new_page()
        finally:
            context.tracing.stop(path=str(tmp_path / "trace.zip"))
            context.close()
            browser.close()


def test_{name}(page: Page) -> None:
'''


def _locator(t: Target) -> str:
    if t.selector:
        return f"page.locator({t.selector!r})"
    if t.label:
        return f"page.get_by_label({t.label!r}, exact=True)"
    if t.role:
        name = f", name={t.name!r}, exact=True" if t.name is not None else ""
        return f"page.get_by_role({t.role!r}{name})"
    return f"page.get_by_text({t.name!r}, exact=True)"


MIN_CHANGED = 3
"""Shorter values (a `1`, an `on`) would strike unrelated lines from the snapshot."""


def changed_data(run: BrowserRun) -> set[str]:
    """Values the run itself changes: what its fills and selects replaced, and what they
    typed. After the approved request lands the page shows the new ones, so an exported
    test that asserted either would fail right after the apply it recorded."""
    out: set[str] = set()
    for step in run.steps:
        if step.action in ("fill", "select") and not step.secret:
            out |= {v for v in (step.before, step.value) if v and len(v) >= MIN_CHANGED}
    return out


def structural(snapshot: str, changed: AbstractSet[str]) -> str:
    """The aria snapshot without the elements that show changed data (each with what it
    holds): the structure and everything else the agent read stay asserted; Playwright
    matches a snapshot partially, so the left-out elements may be there or not."""
    out: list[str] = []
    skip_deeper: int | None = None
    for line in snapshot.splitlines():
        depth = len(line) - len(line.lstrip())
        if skip_deeper is not None and depth > skip_deeper:
            continue
        skip_deeper = None
        if any(value in line for value in changed):
            skip_deeper = depth
            continue
        out.append(line)
    return "\n".join(out)


def _step_lines(
    step: Step, gate_step: int | None, changed: AbstractSet[str] = frozenset()
) -> list[str]:
    out = [f"    # step {step.n}: {step.describe()}"]
    if step.n == gate_step and step.target is not None:
        return [
            *out,
            "    # The approval gate: the agent's request here needed a human; the test stops.",
            f"    expect({_locator(step.target)}).to_be_visible()",
        ]
    if step.status != "ok":
        return [*out, "    # (not replayed: it did not run in the recorded session)"]
    if step.action == "goto":
        out.append(f"    page.goto({step.value!r})")
    elif step.action == "click" and step.target is not None:
        out.append(f"    {_locator(step.target)}.click()")
    elif step.action == "fill" and step.target is not None:
        out.append(f"    {_locator(step.target)}.fill({step.value!r})")
    elif step.action == "select" and step.target is not None:
        out.append(f"    {_locator(step.target)}.select_option({step.value!r})")
    elif step.action == "read" and step.read_text is not None:
        shown = structural(step.read_text, changed)
        if shown.strip():
            out.append(f'    expect(page.locator("body")).to_match_aria_snapshot({shown!r})')
    if step.action in ("goto", "click", "read") and step.url_after:
        out.append(f"    expect(page).to_have_url({step.url_after!r})")
    return out


def export_test(run: BrowserRun, run_id: str, filename: str, origin: str | None = None) -> str:
    """The test file's text. origin: where the credential applies (default: the first goto's)."""
    name = "".join(c if c.isalnum() else "_" for c in run_id).strip("_").lower() or "run"
    if origin is None and run.credential:
        first = next((s.value for s in run.steps if s.action == "goto" and s.value), "")
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(first)) if first else None
    gate = run.pending.step if run.pending else None
    changed = changed_data(run)
    body: list[str] = []
    for step in run.steps:
        if gate is not None and step.n > gate:
            break
        if step.action == "screenshot":
            continue
        body += _step_lines(step, gate, changed)
    head = HEADER.format(
        run_id=run_id,
        filename=filename,
        cred_note=f" (the run used credential {run.credential!r})" if run.credential else "",
        domains=list(run.domains),
        origin=origin if run.credential else None,
        name=name,
    )
    return head + "\n".join(body or ["    pass"]) + "\n"
