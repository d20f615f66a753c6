"""serve's web door and trace viewer in Debian's Chromium: maya signs in with GitHub (the
double's OAuth model), starts the browser job from its page, the bot's worker runs it,
she finds the run in the list and its Playwright trace in the viewer, framed from the
viewer's own origin; eve, who cannot read the repository, finds neither."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pygit2
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from bot.demo.browser import JOB, POLICY, SCRIPT, point_at_console
from bot.demo.code import PROJECT
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.doors.web.site import User
from bot.families.browser.driver import DEBIAN_REAL
from tests.doors.web.serve_world import WEB, Serve
from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=DEBIAN_REAL, chromium_sandbox=False)
        yield b
        b.close()


@pytest.fixture
def console(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> Iterator[AdminSite]:
    """The admin console, and octo/web's default branch holding the shipped browser job
    pointed at it (policy too), as the bot's clone sees it."""
    gh = serve.github
    main = gh.repo(WEB).git().revparse_single("refs/heads/main").peel(pygit2.Commit)
    policy = main.tree[POLICY].data.decode()
    with AdminSite() as admin:
        monkeypatch.setenv(
            "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"{USERNAME}:{PASSWORD}@{admin.url}"
        )
        shipped = {JOB: (PROJECT / JOB).read_text(), SCRIPT: (PROJECT / SCRIPT).read_text()}
        gh.commit(WEB, "main", point_at_console({**shipped, POLICY: policy}, admin.url))
        serve.sync(WEB)
        yield admin


def test_start_from_the_job_page_see_it_listed_and_open_its_trace(
    serve: Serve, console: AdminSite, browser: Browser
) -> None:
    gh, viewer = serve.github, serve.viewer
    assert viewer is not None and serve.hub is not None
    maya = browser.new_context().new_page()
    maya.goto(f"{gh.oauth.web_url}/session?login=maya")
    maya.goto(f"{serve.public}/repos/{WEB}/jobs/admin-edit")  # via GitHub's sign-in
    expect(maya.locator("h1")).to_have_text("Job admin-edit")
    maya.get_by_role("button", name="Start run as maya").click()
    expect(maya.get_by_role("status")).to_contain_text("queue")
    (done,) = serve.work()
    assert done.startswith("web start by maya: admin-edit-"), done
    assert done.endswith("awaiting_approval"), done
    run_id = done.split()[4]

    maya.goto(f"{serve.public}/repos/{WEB}/runs?door=web&job=admin-edit")
    expect(maya.locator("tr.run")).to_have_count(1)
    maya.get_by_role("link", name=run_id).click()
    expect(maya.locator(".facts")).to_contain_text("web")
    frame = maya.locator("iframe.trace")
    src = frame.get_attribute("src") or ""
    assert src.startswith(f"{viewer}/index.html?trace="), src
    trace_url = parse_qs(urlsplit(src).query)["trace"][0]
    assert trace_url.startswith(f"{viewer}/t/") and trace_url.endswith("/trace.zip")
    # The viewer, on its own origin, loaded the trace: the recorded actions are listed.
    viewed = maya.frame_locator("iframe.trace")
    expect(viewed.get_by_text("Fill", exact=False).first).to_be_visible(timeout=20_000)

    # eve cannot read octo/web: no run list, no run page, and no trace through the viewer.
    eve = browser.new_context().new_page()
    eve.goto(f"{gh.oauth.web_url}/session?login=eve")
    for path in (f"/repos/{WEB}/runs", f"/repos/{WEB}/runs/{run_id}", f"/repos/{WEB}/api/runs"):
        response = eve.goto(f"{serve.public}{path}")
        assert response is not None and response.status == 403, path
        assert run_id not in eve.content()
    eve.goto(f"{serve.public}/repos")
    expect(eve.locator("#repos")).not_to_contain_text(WEB)
    # A link made out to eve, for this very trace, opens nothing: GitHub gives her no read.
    link = serve.hub.trace_link(WEB)
    assert link is not None
    site = serve.hub.site_for(WEB)
    assert site is not None
    (trace,) = [a for a in site.record(run_id).artifacts if a.name.endswith(".zip")]
    own = link(User(f"github:{gh.user_id('eve')}", "eve"), trace.sha256)
    # maya's link with its signature changed is no link at all.
    body, mac = trace_url.split("/t/")[1].split("/")[0].split(".")
    forged = f"{viewer}/t/{body}.{mac[::-1]}/trace.zip"
    for url in (own, forged):
        response = eve.goto(url)
        assert response is not None and response.status == 404, url
        assert response.body()[:2] != b"PK"
    shell = eve.goto(f"{viewer}/repos/{WEB}/runs")  # nothing of the app on the viewer's origin
    assert shell is not None and shell.status == 404
