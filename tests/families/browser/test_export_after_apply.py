"""`agentplane browser export`'s test still passes after the apply it recorded.

It asserts the page's structure and what the agent read, never the values the run
itself changed: right after the approved edit lands, the console shows the new email
where the agent read the old one, and the exported test must not call that a regression.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.browser import POLICY, point_at_console
from bot.demo.code import MAINTAINER
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.families.browser.export import export_test
from bot.families.browser.model import BrowserRun
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]


def test_the_exported_test_passes_against_the_site_after_the_apply(
    demo_repo: Path,
    scripted_job: Scripted,
    site: AdminSite,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    policy = demo_repo / POLICY
    policy.write_text(point_at_console({POLICY: policy.read_text()}, site.url)[POLICY])
    monkeypatch.setenv("AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"{USERNAME}:{PASSWORD}@{site.url}")
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "goto", "arguments": {"url": f"{site.url}/users/2/edit"}}]},
        {"tool_calls": [{"name": "read", "arguments": {}}]},
        {"tool_calls": [{"name": "fill", "arguments": {"label": "Email", "text": "b@x.io"}}]},
        {"tool_calls": [{"name": "click", "arguments": {"role": "button", "name": "Save"}}]},
        {"content": "held"},
    ]
    job = scripted_job(
        "admin-export",
        turns,
        job_type="browser",
        tools=["browser"],
        prompt="Change bob's email to b@x.io; done when the list shows it",
        scope={"browser": {"domains": ["127.0.0.1"]}},
        credentials=["admin-console"],
        approval_required_for=["submit"],
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions[-1].reason
    read = next(c for c in rec.tool_calls if c.tool == "read")
    assert "bob@example.com" in read.result  # the agent read the old value
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied" and site.state.users[2].email == "b@x.io"

    stored = next(a for a in done.artifacts if a.name == "browser-run.json")
    run = BrowserRun.model_validate_json(e.audit.artifact(stored.sha256))
    assert [s.before for s in run.steps if s.action == "fill"] == ["bob@example.com"]
    path = tmp_path / "test_exported.py"
    path.write_text(export_test(run, rec.run_id, path.name))
    text = path.read_text()
    assert "to_match_aria_snapshot(" in text and 'textbox "Name": bob' in text
    assert "bob@example.com" not in text  # changed by the run: not asserted
    env = {
        **os.environ,
        "AGENTPLANE_BROWSER_USERNAME": USERNAME,
        "AGENTPLANE_BROWSER_PASSWORD": PASSWORD,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert site.state.applied == {"POST /users/2": 1}  # the exported test only looks
