"""Browser jobs through the Engine: plan, propose, hold, approve, replay, release.

The same path as every other job: the broker holds the submit, the record keeps the
pending request and the gate screenshot, and apply replays and releases it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.record import RunRecord
from bot.core.render import render_applied, render_evidence, render_pr_comment
from bot.demo.code import MAINTAINER
from bot.demo.console import AdminSite
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.browser.conftest import EDIT_PASSWORD, hold_edit, needs_chromium

pytestmark = [needs_chromium]

PASSWORD = EDIT_PASSWORD


@pytest.fixture
def site() -> Iterator[AdminSite]:
    with AdminSite() as s:
        yield s


@pytest.fixture
def held(
    demo_repo: Path, scripted_job: Scripted, site: AdminSite, monkeypatch: pytest.MonkeyPatch
) -> tuple[Engine, RunRecord]:
    e, rec = hold_edit(demo_repo, scripted_job, site, monkeypatch)
    assert not site.state.writes  # held: nothing reached the server
    return e, rec


def test_submit_is_held_with_evidence_then_applies_once(
    held: tuple[Engine, RunRecord], site: AdminSite
) -> None:
    e, rec = held
    assert rec.proposal is not None and (part := rec.proposal.part("browser")) is not None
    assert (part.detail["action"], part.detail["method"]) == ("submit", "POST")
    assert {"trace.zip", "browser.har", "gate.png", "browser-run.json"} <= {
        a.name for a in rec.artifacts
    }
    held_call = next(c for c in rec.tool_calls if c.decision == "needs_approval")
    assert held_call.tool == "click" and held_call.rule.endswith("#default_approvers")
    (section,) = e.evidence_sections(rec)
    assert "playwright show-trace" in section and f"POST {site.url}/users/2" in section
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied" and [a.details for a in done.applied or []] == [
        {"request": f"POST {site.url}/users/2", "status": "303"}
    ]
    # Lands once. Chromium may first try without the Basic credentials (a 401
    # challenge, no effect) when the form posts outside the auth cache's path.
    assert site.state.applied == {"POST /users/2": 1}
    assert site.state.users[2].email == "b@x.io"
    # What apply did, as the terminal and the PR comment say it: a request, no commit.
    released = f"released POST {site.url}/users/2 (HTTP 303)"
    assert render_applied(done.applied) == [released]
    assert f"Applied: {released}." in render_pr_comment(done, "plan", "", None)
    shown = render_evidence(rec, "")
    assert "the held browser request above, no files" in shown
    assert f"Network allowed: 127.0.0.1:{site.port} [chromium]" in shown
    assert "the held browser request above." in render_pr_comment(rec, "plan", "", None)
    assert PASSWORD not in done.model_dump_json()
    # Chromium's connections, in both phases, are in the record with the rules that let
    # them through: the domain from the plan, the private address from policy.
    port = int(site.url.rsplit(":", 1)[1])
    to_site = [x for x in done.egress if (x.host, x.port) == ("127.0.0.1", port)]
    assert {x.phase for x in to_site} == {"propose", "apply"}
    for x in to_site:
        assert x.decision == "allow" and x.address == "127.0.0.1"
        assert x.rule == "policies/default.yaml#job_types.browser.scope.browser.domains"
        assert x.network_rule == "policies/default.yaml#job_types.browser.private_networks"


def test_a_denied_submit_never_reaches_the_server(
    held: tuple[Engine, RunRecord], site: AdminSite
) -> None:
    e, rec = held
    assert e.decide(rec.run_id, MAINTAINER[1], "deny").record.state == "rejected"
    assert not site.state.writes and site.state.users[2].email == "bob@example.com"


def test_a_page_changed_after_approval_stops_the_apply(
    held: tuple[Engine, RunRecord], site: AdminSite
) -> None:
    e, rec = held
    site.state.form_version = 2  # the form now posts elsewhere
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "failed" and "differs" in done.transitions[-1].reason
    assert not site.state.applied and site.state.users[2].email == "bob@example.com"


def test_a_console_down_at_apply_fails_the_run_and_sends_nothing(
    held: tuple[Engine, RunRecord], site: AdminSite
) -> None:
    e, rec = held
    site.server.shutdown()
    site.server.server_close()  # nothing listens on the port any more
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    reason = done.transitions[-1].reason
    assert done.state == "failed" and "nothing was sent" in reason
    assert f"step 1 (goto {site.url}/users/2/edit) answered HTTP 502; approved HTTP 200" in reason
    down = [x for x in done.egress if x.phase == "apply" and x.port == site.port]
    assert down and {x.decision for x in down} == {"unreachable"}
    assert {x.rule for x in down} == {
        "policies/default.yaml#job_types.browser.scope.browser.domains"
    }
    assert not site.state.writes and done.applied is None


def test_a_credential_gone_at_apply_fails_the_run_with_how_to_fix_it(
    held: tuple[Engine, RunRecord], site: AdminSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    e, rec = held
    monkeypatch.delenv("AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE")
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "failed"
    assert "$AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE is not set" in done.transitions[-1].reason
    assert not site.state.writes
