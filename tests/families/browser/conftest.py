"""Browser test fixtures: the local admin console, a browser plan, a broker over BrowserTools."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.core.job import BrowserScope, GatedElement, parse_job
from bot.core.plan import Plan, plan
from bot.core.policy import merge_policy
from bot.core.record import ToolCall
from bot.core.request import RunRequest
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.families.browser.driver import DEBIAN_CHROMIUM, ENV_CHROMIUM, BrowserCredential, Chromium
from bot.families.browser.tools import BrowserTools, chromium_for
from bot.run.broker import Broker
from tests.adapters.sandbox.conftest import backend_or_skip

POLICY = """
groups: {platform: [maya@example.com]}
roles: {maintainer: [group:platform], developer: ["*"]}
job_types:
  browser:
    run_by: [role:developer]
    tools: [browser]
    scope:
      browser: {domains: ["127.0.0.1", "admin.internal.example.com"]}
    credentials: [admin-console]
    private_networks: [127.0.0.0/8]  # the console stand-in listens on loopback
gates:
  - {id: browser-submit, actions: [submit], approvers: {any_of: [role:maintainer]}}
  - {id: irreversible, actions: [delete, purchase], approvers: {count: 2, of: [role:maintainer]}}
models:
  classes: {recorded: {model: scripted/admin-edit, api_base: .agentplane/scripts}}
  default: recorded
"""
JOB = """
job_type: browser
prompt: Change bob's email to bob@new.example.com in the admin console.
tools: [browser]
scope:
  browser:
    domains: ["127.0.0.1"]
    gated:
      - {role: button, name: Delete, action: delete}
credentials: [admin-console]
approval_required_for: [submit, delete]
"""


def have_chromium() -> bool:
    path = os.environ.get(ENV_CHROMIUM) or DEBIAN_CHROMIUM
    return os.access(path, os.X_OK) or shutil.which("chromium") is not None


needs_chromium = pytest.mark.skipif(
    not have_chromium(), reason="no Chromium: apt-get install chromium (scripts/host-deps)"
)


def browser_plan(job_text: str = JOB) -> Plan:
    job = parse_job(".agentplane/jobs/admin-edit.yaml", job_text)
    req = RunRequest(
        job=job,
        job_path=".agentplane/jobs/admin-edit.yaml",
        requester="dana@example.com",
        repo="demo",
        commit="0" * 40,
    )
    return plan(req, merge_policy([("policies/default.yaml", POLICY)]))


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
