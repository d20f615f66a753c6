"""serve's run pages in Debian's Chromium: a person opens a run page, is sent through
GitHub's sign-in (the double's authorize page) and back, approves from the page, and the
bot's worker takes the decision through the gates; someone else finds no way in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from bot.families.browser.driver import DEBIAN_REAL
from tests.doors.web.serve_world import OTHER, THIRD, Serve
from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=DEBIAN_REAL, chromium_sandbox=False)
        yield b
        b.close()


def test_sign_in_with_github_then_approve_from_the_run_page(serve: Serve, browser: Browser) -> None:
    gh, run_id = serve.github, serve.runs[THIRD]
    run_page = f"{serve.public}/repos/{THIRD}/runs/{run_id}"

    before = len(gh.oauth.requests)
    maya = browser.new_context().new_page()
    maya.goto(f"{gh.oauth.web_url}/session?login=maya")  # signed in on "github.com"
    maya.goto(run_page)  # -> /login -> GitHub's authorize -> /login/callback -> back here
    expect(maya.locator("h1")).to_contain_text(run_id)
    assert maya.url == run_page
    expect(maya.locator("nav")).to_contain_text("signed in as maya")
    flow = [p for _, p, _ in gh.oauth.requests[before:] if p.startswith("/login/oauth/")]
    assert flow == [
        "/login/oauth/authorize",
        "/login/oauth/access_token",
    ]
    maya.get_by_role("button", name="Approve as maya").click()
    expect(maya.get_by_role("status")).to_contain_text("queue")
    (done,) = serve.work()
    assert done.endswith("applied"), done
    maya.goto(run_page)
    expect(maya.locator(".state").first).to_have_text("applied")
    expect(maya.get_by_role("table", name="Approvals")).to_contain_text("web")

    # eve can read only octo/other: this repository's pages and API stay closed.
    eve = browser.new_context().new_page()
    eve.goto(f"{gh.oauth.web_url}/session?login=eve")
    eve.goto(f"{serve.public}/repos")
    expect(eve.locator("#repos")).to_contain_text(OTHER)
    expect(eve.locator("#repos")).not_to_contain_text(THIRD)
    response = eve.goto(run_page)
    assert response is not None and response.status == 403
    assert run_id not in eve.content()
    api = eve.goto(f"{serve.public}/repos/{THIRD}/api/runs")
    assert api is not None and api.status == 403 and run_id not in eve.content()
