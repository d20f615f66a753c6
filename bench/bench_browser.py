"""A 5-step browser job through agentplane, against the same steps as a bare Playwright script.

Both drive the same Chromium against the local admin console with the same HTTP
credentials: goto /users, read, click "Edit bob", fill Email, screenshot (no
submit, so nothing is held). Each iteration includes launching Chromium, the
context, and teardown; for agentplane that is BrowserTools behind the real
broker, and close() writing trace.zip and the HAR.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

from playwright.sync_api import sync_playwright

from bot.core.job import BrowserScope, GatedElement
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.families.browser.driver import (
    QUIET_ARGS,
    BrowserCredential,
    chromium_sandbox,
    find_chromium,
)
from bot.families.browser.tools import BrowserTools
from bot.run.broker import Broker
from tests.support.jobs import browser_plan

ITERATIONS = 5
BACKENDS = ("docker", "bwrap")


def _median_s(run: Callable[[], None], n: int) -> float:
    run()  # warm-up: Chromium binary and profile in the page cache
    times = []
    for _ in range(n):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _agentplane(url: str, backend: str) -> None:
    plan = browser_plan().model_copy(update={"backend": backend})
    scope = BrowserScope(gated=[GatedElement(action="delete", role="button", name="Delete")])
    credential = BrowserCredential("admin-console", USERNAME, PASSWORD, url)
    tools = BrowserTools.from_plan(plan, scope, ".agentplane/jobs/admin-edit.yaml", credential)
    broker = Broker(plan, tools.specs(), lambda call: None, tools.redact)

    def call(tool: str, **args: str) -> str:
        return broker.call(tool, json.dumps(args))

    try:
        assert call("goto", url=f"{url}/users").startswith("goto ok")
        assert "Edit bob" in call("read")
        assert call("click", role="link", name="Edit bob").startswith("click ok")
        assert call("fill", label="Email", text="bob@new.example.com").startswith("fill ok")
        assert call("screenshot").startswith("saved ")
    finally:
        names = {a.name for a in tools.close()}
    assert {"trace.zip", "browser.har"} <= names, names


def _bare(url: str) -> None:
    with sync_playwright() as pw:
        path, _ = find_chromium(os.environ, pw.chromium.executable_path)
        browser = pw.chromium.launch(
            executable_path=path, chromium_sandbox=chromium_sandbox(os.environ), args=QUIET_ARGS
        )
        context = browser.new_context(
            http_credentials={"username": USERNAME, "password": PASSWORD, "origin": url}
        )
        page = context.new_page()
        page.goto(f"{url}/users", wait_until="load")
        assert "Edit bob" in page.locator("body").aria_snapshot()
        page.get_by_role("link", name="Edit bob", exact=True).click()
        page.wait_for_load_state("load")
        page.get_by_label("Email", exact=True).fill("bob@new.example.com")
        assert page.screenshot(full_page=True)
        context.close()
        browser.close()


def main() -> None:
    with AdminSite() as site:
        bare = _median_s(lambda: _bare(site.url), ITERATIONS)
        ours = {
            name: _median_s(lambda name=name: _agentplane(site.url, name), ITERATIONS)
            for name in BACKENDS
        }
        assert not site.state.applied, site.state.applied  # read-only: nothing was submitted
    for name, seconds in ours.items():
        print(
            f"browser 5-step job: agentplane in {name} {seconds:.2f} s median (sandbox, egress"
            f" proxy, trace, HAR, routing, broker); bare Playwright {bare:.2f} s;"
            f" ratio {seconds / bare:.1f}x"
        )


if __name__ == "__main__":
    main()
