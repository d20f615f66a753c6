"""Browser test fixtures: the local admin console, a browser plan, a broker over BrowserTools."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.job import BrowserScope, GatedElement
from bot.core.record import RunRecord, ToolCall
from bot.demo.browser import POLICY, point_at_console
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.families.browser.driver import DEBIAN_CHROMIUM, ENV_CHROMIUM, BrowserCredential, Chromium
from bot.families.browser.tools import BrowserTools, chromium_for
from bot.run.broker import Broker
from bot.run.engine import Engine
from tests.adapters.sandbox.conftest import backend_or_skip
from tests.conftest import Scripted
from tests.support.jobs import browser_plan

EDIT_PASSWORD = "s3cret-admin-pw"
"""The admin console's password, as the broker holds it for the edit job below."""


def have_chromium() -> bool:
    path = os.environ.get(ENV_CHROMIUM) or DEBIAN_CHROMIUM
    return os.access(path, os.X_OK) or shutil.which("chromium") is not None


needs_chromium = pytest.mark.skipif(
    not have_chromium(), reason="no Chromium: apt-get install chromium (scripts/host-deps)"
)


@dataclass
class Driven:
    """BrowserTools behind the real broker, as a run would use them."""

    tools: BrowserTools
    broker: Broker
    calls: list[ToolCall] = field(default_factory=list)

    def call(self, tool: str, /, **args: Any) -> str:
        return self.broker.call(tool, json.dumps(args))


@pytest.fixture
def site() -> Iterator[AdminSite]:
    with AdminSite() as s:
        yield s


def hold_edit(
    demo_repo: Path,
    scripted_job: Scripted,
    site: AdminSite,
    monkeypatch: pytest.MonkeyPatch,
    inverse: list[dict[str, Any]] | None = None,
) -> tuple[Engine, RunRecord]:
    """The shipped browser job type, pointed at the console stand-in on loopback: a run
    that changes bob's email, held at the submit gate (inverse: the job's undo steps)."""
    policy = demo_repo / POLICY
    policy.write_text(point_at_console({POLICY: policy.read_text()}, site.url)[POLICY])
    monkeypatch.setenv("AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"admin:{EDIT_PASSWORD}@{site.url}")
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "goto", "arguments": {"url": f"{site.url}/users/2/edit"}}]},
        {"tool_calls": [{"name": "fill", "arguments": {"label": "Email", "text": "b@x.io"}}]},
        {"tool_calls": [{"name": "click", "arguments": {"role": "button", "name": "Save"}}]},
        {"content": "held"},
    ]
    browser: dict[str, Any] = {"domains": ["127.0.0.1"]}
    if inverse is not None:
        browser["inverse"] = inverse
    job = scripted_job(
        "admin-edit",
        turns,
        job_type="browser",
        tools=["browser"],
        prompt="Change bob's email to b@x.io; done when the list shows it",
        scope={"browser": browser},
        credentials=["admin-console"],
        approval_required_for=["submit"],
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions
    return e, rec


@pytest.fixture
def credential(site: AdminSite) -> BrowserCredential:
    return BrowserCredential("admin-console", USERNAME, PASSWORD, site.url)


def make_driven(credential: BrowserCredential, volatile_fields: Sequence[str] = ()) -> Driven:
    p = browser_plan()
    scope = BrowserScope(
        gated=[GatedElement(action="delete", role="button", name="Delete")],
        volatile_fields=list(volatile_fields),
    )
    tools = BrowserTools.from_plan(p, scope, ".agentplane/jobs/admin-edit.yaml", credential)
    calls: list[ToolCall] = []
    broker = Broker(p, tools.specs(), calls.append, tools.redact)
    return Driven(tools, broker, calls)


@pytest.fixture
def driven(credential: BrowserCredential) -> Iterator[Driven]:
    d = make_driven(credential)
    yield d
    d.tools.close()


def apply_chromium() -> Chromium:
    """Chromium for an apply, as the engine makes it: from the plan the run was started with."""
    p = browser_plan()
    return chromium_for(p, p.granted("browser_domain"))


@pytest.fixture(params=["bwrap", "docker"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each sandbox backend in turn, its browser image built for Docker."""
    name = str(request.param)
    backend_or_skip(name)  # skips (or fails, where CI requires it) when the host lacks it
    if name == "docker":
        from bot.adapters.sandbox.image import ensure_browser_image

        ensure_browser_image()
    return name
