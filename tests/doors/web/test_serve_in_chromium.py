"""serve's run pages in Debian's Chromium: a person opens a run page, is sent through
GitHub's sign-in (the double's authorize page) and back, approves from the page, and the
bot's worker takes the decision through the gates; someone else finds no way in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, expect, sync_playwright

from bot.doors.web.serve import free_port
from bot.families.browser.driver import DEBIAN_REAL
from tests.doors.web.serve_world import OTHER, Serve, serve_world
from tests.families.browser.conftest import needs_chromium
from tests.support.github.door import REPO

pytestmark = [needs_chromium]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    port = free_port()
    for world in serve_world(tmp_path, public=f"http://127.0.0.1:{port}"):
        config = uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            assert thread.is_alive(), "serve did not start"
            threading.Event().wait(0.02)
        try:
            yield world
        finally:
            server.should_exit = True
            thread.join(5)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=DEBIAN_REAL, chromium_sandbox=False)
        yield b
        b.close()


def test_sign_in_with_github_then_approve_from_the_run_page(
    served: Serve, browser: Browser
) -> None:
    gh, run_id = served.github, served.runs[REPO]
    run_page = f"{served.public}/repos/{REPO}/runs/{run_id}"

    maya = browser.new_context().new_page()
    maya.goto(f"{gh.oauth.web_url}/session?login=maya")  # signed in on "github.com"
    maya.goto(run_page)  # -> /login -> GitHub's authorize -> /login/callback -> back here
    expect(maya.locator("h1")).to_contain_text(run_id)
    assert maya.url == run_page
    expect(maya.locator("nav")).to_contain_text("signed in as maya")
    assert [p for _, p, _ in gh.oauth.requests if p.startswith("/login/oauth/")] == [
        "/login/oauth/authorize",
        "/login/oauth/access_token",
    ]
    maya.get_by_role("button", name="Approve as maya").click()
    expect(maya.get_by_role("status")).to_contain_text("queue")
    (done,) = served.work()
    assert done.endswith("applied"), done
    maya.goto(run_page)
    expect(maya.locator(".state").first).to_have_text("applied")
    expect(maya.get_by_role("table", name="Approvals")).to_contain_text("web")

    # eve can read only the other repository: this one's pages and API stay closed.
    eve = browser.new_context().new_page()
    eve.goto(f"{gh.oauth.web_url}/session?login=eve")
    eve.goto(f"{served.public}/repos")
    expect(eve.locator("#repos")).to_contain_text(OTHER)
    expect(eve.locator("#repos")).not_to_contain_text(REPO)
    response = eve.goto(run_page)
    assert response is not None and response.status == 403
    assert run_id not in eve.content()
    api = eve.goto(f"{served.public}/repos/{REPO}/api/runs")
    assert api is not None and api.status == 403 and run_id not in eve.content()
