"""The pure parts: domain decisions, gate decisions, evidence and export text."""

from __future__ import annotations

import pytest

from bot.adapters.sandbox.egress import Allowlist
from bot.core.job import GatedElement
from bot.families.browser.allowlist import check_url
from bot.families.browser.driver import find_chromium, proxy_rules
from bot.families.browser.errors import BrowserUnavailable
from bot.families.browser.evidence import render_browser_evidence
from bot.families.browser.gate import element_gate, gated_seen, normal_name, request_gate
from bot.families.browser.model import BrowserRun, ElementInfo, Step

DOMAINS = ["admin.internal.example.com", "*.cdn.example.com", "127.0.0.1:8123"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://admin.internal.example.com/users", True),
        ("https://ADMIN.internal.example.com:8443/x", True),
        ("https://a.cdn.example.com/app.js", True),
        ("https://cdn.example.com/app.js", False),  # a wildcard never covers the apex
        ("https://admin.internal.example.com.evil.net/", False),
        ("https://evil.net/?next=admin.internal.example.com", False),
        ("https://admin.internal.example.com@evil.net/", False),  # userinfo trick
        ("http://127.0.0.1:8123/", True),
        ("http://127.0.0.1:9999/", False),  # a port in the entry pins it
        ("file:///etc/passwd", False),
        ("chrome://settings", False),
        ("data:text/html,hi", True),  # never leaves the browser
        ("about:blank", True),
        ("wss://admin.internal.example.com/live", True),
    ],
)
def test_allowlist(url: str, allowed: bool) -> None:
    assert check_url(url, DOMAINS).allowed is allowed


def test_nothing_allowed_by_default() -> None:
    v = check_url("https://example.com/", [])
    assert not v.allowed and "(none)" in v.reason


def el(role: str, name: str, submits: bool = False) -> ElementInfo:
    return ElementInfo(role=role, name=name, tag="button", submits_form=submits, form_method="POST")


def test_job_marked_elements_are_gated_by_role_and_name() -> None:
    gated = [GatedElement(action="delete", role="button", name="delete")]
    hit = element_gate(el("button", "Delete bob"), gated, "jobs/x.yaml")
    assert hit is not None and hit.action == "delete"
    assert hit.rule == "jobs/x.yaml#scope.browser.gated[0]"
    assert element_gate(el("link", "Delete bob"), gated) is None  # role must match too
    assert element_gate(el("button", "Edit bob"), gated) is None


def test_form_submits_are_gated_whatever_the_job_says() -> None:
    hit = element_gate(el("button", "Save", submits=True), [])
    assert hit is not None and (hit.action, hit.rule) == ("submit", "browser#form-submit")


def test_non_get_requests_are_gated_and_gets_are_free() -> None:
    assert request_gate("GET", True, None) is None
    assert request_gate("HEAD", False, None) is None
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        hit = request_gate(method, False, None)
        assert hit is not None and hit.rule == "browser#method"
    armed = element_gate(el("button", "Save", submits=True), [])
    assert request_gate("GET", True, armed) == armed  # a GET form submit is still held
    assert request_gate("GET", False, armed) is None  # its page's images are not


def test_chromium_discovery_order(tmp_path: object) -> None:
    with pytest.raises(BrowserUnavailable, match="AGENTPLANE_CHROMIUM"):
        find_chromium({"AGENTPLANE_CHROMIUM": "/nonexistent/chrome"}, None)
    assert find_chromium({"AGENTPLANE_CHROMIUM": "/bin/sh"}, None)[0] == "/bin/sh"
    assert find_chromium({}, "/bin/sh")[1] == "Playwright's own Chromium"


def test_domains_become_proxy_rules_any_port_unless_given() -> None:
    rules = proxy_rules(["127.0.0.1", "admin.example.com:8443", "*.cdn.example.com", "[::1]"])
    assert rules == ("127.0.0.1:*", "admin.example.com:8443", "*.cdn.example.com:*", "[::1]:*")
    Allowlist(rules)  # every one is a valid egress rule


def test_gated_names_match_after_unicode_normalisation() -> None:
    # Django's delete confirmation, as its accessible name reads: typographic apostrophe.
    gated = [GatedElement(action="delete", role="button", name="Yes, I'm sure")]
    for shown in ("Yes, I\u2019m sure", "YES,\u00a0I\u2019m  sure", "Yes, I\u2019m\u200b sure"):
        hit = element_gate(el("button", shown, submits=True), gated, "jobs/x.yaml")
        assert hit is not None and hit.action == "delete", shown
    assert normal_name(" \u201cQuoted\u201d\tName ") == '"quoted" name'
    assert element_gate(el("button", "No, take me back"), gated) is None


SNAPSHOT = """- heading "Are you sure?" [level=1]
- paragraph: All of the following related items will be deleted
- list:
  - listitem:
    - link "bob":
      - /url: /admin/auth/user/2/change/
- button "Yes, I\u2019m sure"
- link "No, take me back":
  - /url: "#"
"""


def test_gated_rules_seen_on_a_page_and_warned_when_never_seen() -> None:
    gated = [
        GatedElement(action="delete", role="button", name="Yes, I'm sure"),
        GatedElement(action="purchase", role="button", name="Buy now"),
        GatedElement(action="delete", name='"bob"'),
    ]
    assert gated_seen(gated, SNAPSHOT) == {0}
    run = BrowserRun(
        domains=["127.0.0.1"],
        gated=gated,
        steps=[Step(n=1, action="goto", value="http://127.0.0.1/x")],
        gated_seen=[0],
        pages_seen=["http://127.0.0.1/x"],
    )
    text = render_browser_evidence(run, "r1")
    assert "gated[0]" not in text
    assert (
        "Warning: gated[1] (purchase: button 'Buy now') matched no element on the 1 page(s)" in text
    )
    assert "Warning: gated[2] (delete: element '\"bob\"')" in text
    # A record from before tracking (None) warns of nothing.
    assert "Warning" not in render_browser_evidence(
        run.model_copy(update={"gated_seen": None}), "r"
    )
