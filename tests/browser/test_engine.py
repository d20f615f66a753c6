"""The admin-edit job through the Engine: plan, propose, hold, approve, replay, release.

Skipped until the runner has the browser hook (see the skip reason); the module-level
tests in test_browser.py cover the same behaviour on BrowserTools and release() now.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.demo import MAINTAINER
from bot.gitrepo import GitRepo
from bot.runner import Engine
from bot.sandbox.bwrap import BwrapBackend
from tests.browser.conftest import needs_chromium
from tests.browser.site import AdminSite
from tests.conftest import Scripted

pytestmark = [
    needs_chromium,
    pytest.mark.skip(
        reason="needs runner hook: toolbox() building BrowserTools.from_plan(...) with the job's "
        "scope.browser.gated and the admin-console credential, _propose storing its artifacts "
        "and a browser pending request as the proposal, and _apply calling "
        "bot.browser.replay.release()"
    ),
]


def test_admin_edit_holds_then_applies_once(
    demo_repo: Path, scripted_job: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AdminSite() as site:
        policy = demo_repo / "policies/default.yaml"
        policy.write_text(
            policy.read_text().replace(
                "job_types:\n",
                "job_types:\n  browser:\n    run_by: [role:developer]\n    tools: [browser]\n"
                "    scope: {browser: {domains: ['127.0.0.1']}}\n"
                "    credentials: [admin-console]\n",
            )
        )
        monkeypatch.setenv(
            "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"admin:s3cret-admin-pw@{site.url}"
        )
        turns = [
            {"tool_calls": [{"name": "goto", "arguments": {"url": f"{site.url}/users/2/edit"}}]},
            {"tool_calls": [{"name": "fill", "arguments": {"label": "Email", "text": "b@x.io"}}]},
            {"tool_calls": [{"name": "click", "arguments": {"role": "button", "name": "Save"}}]},
            {"content": "held"},
        ]
        job = scripted_job(
            "admin-edit",
            turns,
            job_type="browser",
            tools=["browser"],
            scope={"browser": {"domains": ["127.0.0.1"]}},
            credentials=["admin-console"],
            approval_required_for=["submit"],
        )
        e = Engine(GitRepo(demo_repo), BwrapBackend())
        rec = e.start(e.request(job))
        assert rec.state == "awaiting_approval" and not site.state.writes
        names = {a.name for a in rec.artifacts}
        assert {"trace.zip", "browser.har", "gate.png", "browser-run.json"} <= names
        done = e.decide(rec.run_id, MAINTAINER[1], "approve")
        assert done.state == "applied"
        assert site.state.writes == {"POST /users/2": 1}
