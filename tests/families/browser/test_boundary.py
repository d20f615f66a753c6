"""The browser gate at the network boundary, counted from the witness server's side.

Every page of the witness tries a way past Playwright's routing. Whatever the page
does, the server must see no state-changing request in propose and exactly the
approved one in apply, on both sandbox backends, over HTTP and HTTPS (the proxy
reads HTTPS through the run's own CA).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.families.browser.driver import Chromium
from bot.families.browser.errors import ReleaseRedirected
from bot.families.browser.evidence import render_browser_evidence
from bot.families.browser.model import Target
from bot.families.browser.replay import release
from bot.families.browser.session import BrowserSession
from tests.families.browser.conftest import needs_chromium
from tests.support.witness import Witness

pytestmark = needs_chromium
LOOPBACK = ("127.0.0.0/8",)
SAVE = Target(role="button", name="Save")


@pytest.fixture(params=["http", "https"])
def witness(request: pytest.FixtureRequest) -> Iterator[Witness]:
    with Witness(tls=request.param == "https") as w:
        yield w


def chromium(w: Witness, backend: str | None) -> Chromium:
    return Chromium(
        ["127.0.0.1"], backend=backend, private_networks=LOOPBACK, upstream_cafile=w.cafile
    )


def session(w: Witness, backend: str | None) -> BrowserSession:
    return BrowserSession(["127.0.0.1"], chromium=chromium(w, backend))


def test_nothing_leaves_past_routing_and_a_redirected_release_stops(
    backend_name: str, witness: Witness
) -> None:
    """fetchLater (timer and page-hide), beacon and keepalive on pagehide and
    visibilitychange, a SharedWorker's POST: none reaches the site, in propose or apply.
    The released POST /save is answered 307 (then 308): apply stops, nothing follows it."""
    s = session(witness, backend_name)
    try:
        for page in ("fetchlater", "unload", "shared", "plain"):
            s.goto(f"{witness.url}/{page}")
            if page in ("fetchlater", "shared"):  # Chromium's own switches turn them off
                assert "refused: ReferenceError" in s.read()
        s.click(SAVE)
    finally:
        s.close()
    p = s.run.pending
    assert p is not None and (p.method, p.url) == ("POST", f"{witness.url}/save")
    assert witness.changes("propose") == []
    assert {e.url.rsplit("/", 1)[1] for e in s.run.gate_events} >= {
        "beacon-pagehide",
        "keepalive-pagehide",
    }  # refused at the proxy, and in the record
    assert all(e.decision == "refused" for e in s.run.gate_events)
    assert "Refused at the network gate" in render_browser_evidence(s.run, "run-1")

    witness.phase, witness.redirect = "apply", True
    with pytest.raises(ReleaseRedirected, match=r"answered 307 \(to /moved-1\).*did not follow"):
        release(s.run, p.digest(), chromium=chromium(witness, backend_name))
    assert witness.changes("apply") == ["POST /save"]  # once; no leak, no /moved-1 or -2


def test_a_page_s_own_post_during_the_click_is_held_under_its_own_name(
    backend_name: str, witness: Witness
) -> None:
    """The page's timer POSTs /other as Save is clicked. Whichever request is held, the
    reason the reviewer reads names that request, never the form's.

    The other one waits, unanswered, until the hold is recorded: when the fetch was held
    first, refusing the form's navigation at once swapped Chromium's error page in under
    the gate screenshot, which then never came (the click timed out after 90 s)."""
    s = session(witness, backend_name)
    try:
        s.goto(f"{witness.url}/timer")
        s.click(SAVE)
    finally:
        s.close()
    p = s.run.pending
    assert p is not None
    assert f"{p.method} {p.url}" in p.reason, (p.method, p.url, p.reason)
    if p.url.endswith("/other"):
        assert p.rule == "browser#not-the-form" and "POST /save" not in p.reason
    # The gate shows the page as it was, not an error page left by the refused request.
    assert p.page_url == f"{witness.url}/timer" and s.images["gate.png"]
    assert witness.changes("propose") == []


def test_an_approved_request_lands_once_on_a_keep_alive_server(witness: Witness) -> None:
    """The whole gate on the preferred backend: held in propose, released exactly once at
    apply, while the page's unload beacons are refused at the proxy in both phases."""
    s = session(witness, None)
    try:
        s.goto(f"{witness.url}/unload")
        s.click(SAVE)
    finally:
        s.close()
    p = s.run.pending
    assert p is not None and witness.changes() == []
    witness.phase = "apply"
    done = release(s.run, p.digest(), chromium=chromium(witness, None))
    assert done.status == 303 and done.page_url == f"{witness.url}/plain"
    assert witness.changes("apply") == ["POST /save"]
    assert [e.decision for e in done.gate_events][:1] == ["released"]
    # One client connection carried several requests: the server kept it alive.
    connections = [h.connection for h in witness.hits]
    assert len(set(connections)) < len(connections)
