"""Every tool a run can call, assembled for one run, and closed with it.

All tools are registered whatever the plan grants: the broker decides, so an
ungranted call is denied with the rule that withheld it, not "unknown tool".
Families that hold connections (SQL) open only what the plan grants.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.adapters.sandbox import Sandbox
from bot.adapters.sandbox.spec import EgressEvent
from bot.core.globs import match_any
from bot.core.job import BrowserScope
from bot.core.plan import Plan
from bot.core.policy import Policy
from bot.families.ask.tools import ask_tool
from bot.families.base import ToolSpec
from bot.families.browser.tools import Artifact, BrowserTools
from bot.families.filesystem.tools import filesystem_tools
from bot.families.shell.tools import shell_tool
from bot.families.sql.connections import resolve_all
from bot.families.sql.evidence import SqlEvidence
from bot.families.sql.tools import SqlTools
from bot.run.credentials import browser_credential


@dataclass
class Toolbox:
    tools: list[ToolSpec]
    redact: Callable[[str], str]
    sql_evidence: list[SqlEvidence] = field(default_factory=list)
    browser: BrowserTools | None = None
    browser_artifacts: list[Artifact] = field(default_factory=list)
    browser_egress: list[EgressEvent] = field(default_factory=list)


@contextmanager
def toolbox(
    plan: Plan,
    policy: Policy,
    workspace: Path,
    sandbox: Sandbox,
    browser_scope: BrowserScope | None = None,
    job_path: str = "job",
    environ: Mapping[str, str] = os.environ,
    answers: Sequence[str] = (),
) -> Iterator[Toolbox]:
    tools = filesystem_tools(workspace, lambda rel: match_any(rel, plan.granted("read")))
    tools += [shell_tool(sandbox), ask_tool(answers)]
    box = Toolbox(tools, lambda s: s)
    sql: SqlTools | None = None
    if "sql" in plan.granted("tool"):
        connections = resolve_all(
            plan.granted("sql_connection"), policy.sql_connections, policy.rule, environ
        )
        sql = SqlTools(connections, box.sql_evidence.append)
        box.tools += sql.specs()
        box.redact = sql.redact
    if "browser" in plan.granted("tool"):
        names = plan.granted("credential")
        credential = browser_credential(names[0], environ) if names else None
        scope = browser_scope or BrowserScope()
        box.browser = BrowserTools.from_plan(plan, scope, job_path, credential)
        box.tools += box.browser.specs()
        redactors = [box.redact, box.browser.redact]
        box.redact = lambda s: functools.reduce(lambda acc, r: r(acc), redactors, s)
    try:
        yield box
    finally:
        if sql is not None:
            sql.close()
        if box.browser is not None:
            box.browser_artifacts = box.browser.close()
            box.browser_egress = box.browser.egress
