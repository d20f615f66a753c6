"""Gates that silently do not match (#14 §5), on the real console in Chromium: the
session notes which gated rules matched an element on the pages it visited, and the
evidence warns of one that never did."""

from __future__ import annotations

import json

from bot.core.job import BrowserScope, GatedElement
from bot.demo.console import AdminSite
from bot.families.browser.driver import BrowserCredential
from bot.families.browser.evidence import render_browser_evidence
from bot.families.browser.tools import BrowserTools
from bot.run.broker import Broker
from tests.families.browser.conftest import needs_chromium
from tests.support.jobs import browser_plan

pytestmark = needs_chromium


def test_a_gated_rule_that_never_matched_is_warned_of(
    site: AdminSite, credential: BrowserCredential
) -> None:
    p = browser_plan()
    scope = BrowserScope(
        gated=[
            GatedElement(action="delete", role="button", name="DELETE\u00a0bob"),
            GatedElement(action="delete", role="button", name="Yes, I'm sure"),
        ]
    )
    tools = BrowserTools.from_plan(p, scope, "jobs/x.yaml", credential)
    broker = Broker(p, tools.specs(), lambda c: None, tools.redact)
    try:
        out = broker.call("goto", json.dumps({"url": f"{site.url}/users"}))
        assert out.startswith("goto ok"), out
    finally:
        tools.close()
    assert tools.run.gated_seen == [0] and tools.run.pages_seen == [f"{site.url}/users"]
    text = render_browser_evidence(tools.run, "r1")
    assert 'Warning: gated[1] (delete: button "Yes, I\'m sure") matched no element' in text
    assert "gated[0]" not in text
