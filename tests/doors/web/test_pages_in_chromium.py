"""The pages in Debian's Chromium over the real audit branch: filter, open a run, see
its trace in the viewer, download an artifact, start a run from the web door."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bot.doors.web.serve import running
from bot.doors.web.site import Site
from bot.families.browser.driver import DEBIAN_REAL
from tests.conftest import PROJECT
from tests.doors.web.conftest import World
from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]
SHOTS = os.environ.get("AGENTPLANE_SCREENSHOTS")
"""Set to write docs/ screenshots of both pages while the test runs."""


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=DEBIAN_REAL, chromium_sandbox=False)
        yield b
        b.close()


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(PROJECT / "docs" / name), full_page=True)


def test_filter_open_trace_download_and_start_from_the_web_door(
    browser: Browser, site: Site, world: World, tmp_path: Path
) -> None:
    with running(site) as origins:
        page = browser.new_page(accept_downloads=True, viewport={"width": 1280, "height": 900})
        page.goto(f"{origins.app}/runs")
        expect(page.locator("tr.run")).to_have_count(len(world.runs))
        _shot(page, "runs.png")

        # Filter by state, with the keyboard-reachable form's labels.
        page.get_by_label("State").select_option("denied")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tr.run")).to_have_count(1)
        expect(page.locator("#count")).to_have_text("1 run")
        page.goto(f"{origins.app}/runs?state=applied")
        page.get_by_role("link", name=world.runs["applied"]).click()
        expect(page.locator("#verified")).to_have_text("verified")
        expect(page.locator("table.diff tr.add")).to_contain_text(["return a + b"])
        _shot(page, "run.png")

        # An artifact is a download, never a page.
        with page.expect_download() as got:
            page.get_by_role("link", name="proposal.diff").click()
        saved = tmp_path / "proposal.diff"
        got.value.save_as(saved)
        assert "+    return a + b" in saved.read_text()

        if "browser" in world.runs:
            page.goto(f"{origins.app}/runs/{world.runs['browser']}")
            frame = page.frame_locator("iframe.trace")
            # The viewer (its own origin) loaded the trace: the recorded actions are listed.
            expect(frame.get_by_text("Fill", exact=False).first).to_be_visible(timeout=20_000)

        # The web door: start a run from the job's page, land on it, find it in the list.
        page.goto(f"{origins.app}/jobs/fix-failing-test")
        page.get_by_label("Prompt").fill("fix the failing test <b>please</b>")
        page.get_by_role("button", name="Start run").click()
        page.wait_for_load_state()
        assert "/runs/fix-failing-test-" in page.url, page.inner_text("main")
        run_id = page.url.rsplit("/", 1)[-1]
        world.runs["web"] = run_id
        expect(page.locator(".facts")).to_contain_text("web")
        page.goto(f"{origins.app}/runs?door=web")
        expect(page.locator("tr.run")).to_have_count(1)
        expect(page.get_by_role("link", name=run_id)).to_be_visible()
    rec = site.record(run_id)
    assert rec.door == "web" and rec.requester == "dana@example.com"
    assert rec.prompt == "fix the failing test <b>please</b>"
