"""Canaries for browser jobs: the broker's credential never leaves the host unmasked.

The console stand-in's login is a canary password, held by the broker
(`AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE`), and its notes page shows that password
back, so the page itself, its HAR entry and its trace hold it. The scripted model
reads the page and says the password. The run is held, approved and applied; then
every object of the audit branch (records, browser-run.json, the HAR, the gate
screenshot, and each member of the trace zips, unpacked), the rendered evidence, the
PR comment and the applied summary are scanned, for the password, the whole
credential, and the password as HTTP Basic sends it (base64 of `user:password`).

The trace and the HAR record every request (with its Basic header) and every page,
so they held it until the tab masked the credential in them as it writes them
(bot/families/browser/tab.py); apply's copies (apply-trace.zip, apply-browser.har)
are stored without passing the engine's redactor at all. What still holds it, as
pixels that no redactor can read: the trace's screencast frames (JPEG) of the notes
page, which shows the password. The gate screenshot is of the edit form, which does
not. A page that prints a secret is pictured in its trace; keep such pages out of a
browser job's domains, or its trace off the audit branch.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.demo.console as console
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.render import render_applied, render_evidence, render_pr_comment
from bot.demo.browser import POLICY, point_at_console
from bot.demo.code import MAINTAINER
from bot.demo.console import USERNAME, AdminSite
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.browser import scan
from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]

CANARY = "canary-browser-pw-4e02b7"
BASIC = base64.b64encode(f"{USERNAME}:{CANARY}".encode()).decode()
"""The password as Chromium sends it, in every request's Authorization header."""
FORMS = (CANARY, BASIC)


def leaks(data: str | bytes) -> list[str]:
    return scan.leaks(data, FORMS)


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[AdminSite]:
    monkeypatch.setattr(console, "PASSWORD", CANARY)  # the console checks this login
    with AdminSite() as s:
        s.state.notes = f"Break-glass login for the console: {USERNAME} / {CANARY}"
        yield s


def test_browser_job_leaks_no_canary(
    demo_repo: Path, scripted_job: Scripted, site: AdminSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = demo_repo / POLICY
    policy.write_text(point_at_console({POLICY: policy.read_text()}, site.url)[POLICY])
    monkeypatch.setenv("AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"{USERNAME}:{CANARY}@{site.url}")
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "goto", "arguments": {"url": f"{site.url}/notes"}}]},
        {"tool_calls": [{"name": "read", "arguments": {}}]},
        {
            "content": f"The notes say the password is {CANARY}.",
            "tool_calls": [{"name": "goto", "arguments": {"url": f"{site.url}/users/2/edit"}}],
        },
        {"tool_calls": [{"name": "fill", "arguments": {"label": "Email", "text": "b@x.io"}}]},
        {"tool_calls": [{"name": "click", "arguments": {"role": "button", "name": "Save"}}]},
        {"content": f"Held. (Logged in as {USERNAME}:{CANARY}, Basic {BASIC}.)"},
    ]
    job = scripted_job(
        "admin-echo",
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
    # The page really showed it (so the test can fail); the model was shown it masked.
    read = next(c for c in rec.tool_calls if c.tool == "read")
    assert "Break-glass login" in read.result and CANARY not in read.result

    evidence = render_evidence(rec, e.patch(rec), e.evidence_sections(rec), e.redactor)
    assert "POST" in evidence and leaks(evidence) == []
    comment = e.redactor(render_pr_comment(rec, "plan", e.patch(rec), None))
    assert leaks(comment) == []

    e.decide(rec.run_id, MAINTAINER[1], "approve")
    done = e.load(rec.run_id)  # the record as the audit branch holds it
    assert done.state == "applied", done.transitions[-1].reason
    assert site.state.applied == {"POST /users/2": 1}
    assert done.applied is not None
    summary = "\n".join(render_applied(done.applied))
    assert "released POST" in summary and leaks(summary) == []
    assert leaks(e.redactor(render_pr_comment(done, "plan", "", None))) == []

    blobs = scan.audit_blobs(demo_repo)
    names = {a.name for a in done.artifacts}
    assert {"browser-run.json", "browser.har", "trace.zip", "gate.png"} <= names
    assert {"apply-trace.zip", "apply-browser.har"} <= names
    stored = {a.name: e.audit.artifact(a.sha256) for a in done.artifacts}
    # The HAR and the trace did see the page and the login: masked, not missing.
    assert b"Break-glass login" in stored["browser.har"]
    found = {name: hits for name, data in {**blobs, **stored}.items() if (hits := leaks(data))}
    assert found == {}
    # Masked in place: the HAR is still JSON, the trace still a trace the viewer opens.
    assert b"[REDACTED]" in stored["apply-browser.har"]
    json.loads(stored["apply-browser.har"])
    for trace in ("trace.zip", "apply-trace.zip"):
        with zipfile.ZipFile(io.BytesIO(stored[trace])) as z:
            assert z.testzip() is None
            events = [json.loads(line) for line in z.read("trace.trace").splitlines() if line]
            assert events and any(b"[REDACTED]" in z.read(n) for n in z.namelist())
