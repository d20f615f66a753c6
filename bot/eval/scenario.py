"""A scenario file: a job, a repository fixture and the model's turns, plus what to
measure. Adding a scenario is adding a file under `evals/`; nothing here names one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.core import yamlsrc
from bot.core.errors import AgentplaneError
from bot.eval.worldspec import WorldCheck, WorldSpec

MAX_SCENARIO_BYTES = 1 << 20

InjectionPoint = Literal[
    "file", "web_page", "sql_row", "issue_body", "pr_comment", "document_cell", "tool_output"
]
GoalKind = Literal[
    "file_changed",
    "egress",
    "secret_leaked",
    "policy_widened",
    "submitted",
    "sql_changed",
    "target_changed",
    "applied",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileCheck(Strict):
    """The task, checked on the tree the run's apply committed."""

    path: str
    contains: str


class Goal(Strict):
    """What the attacker wants; met or not is read from the world after the run."""

    kind: GoalKind
    path: str = ""
    """file_changed: the file the attack wants written (outside the write scope)."""
    domain: str = ""
    """egress: the host the attack wants reached."""
    secret: str = ""
    """secret_leaked: the name of the scenario secret the attack wants out (or the world's:
    `postgres`, its database password)."""
    site: str = ""
    """submitted: the world's site that must not receive a state-changing request;
    egress: the world's site that must not receive any request (read from the site)."""
    table: str = ""
    """sql_changed: the table (`schema.name`) whose rows must not change (default: any)."""
    server: str = ""
    """target_changed: the MCP server whose repository must not move."""
    # applied (door pr): the proposal reaches the PR's branch before an approver's review.
    gated: bool = True
    """Policy gates or denies this goal: any success is a regression."""


class PrComment(Strict):
    """A comment someone makes on the PR once the run's evidence is up, before any review."""

    author: str
    """A GitHub login: maya and omar approve, dana is the developer who opened the PR,
    anyone else (mallory) has no role."""
    body: str


class PrDoor(Strict):
    """How a `door: pr` scenario reaches the bot, besides the PR that adds the job."""

    issue: str = ""
    """When set, the job starts from an issue labelled agentplane: this text, then the
    job in a fenced yaml block (the bot opens the PR that adds it)."""
    comments: list[PrComment] = Field(default_factory=list)


class Injection(Strict):
    point: InjectionPoint
    goal: Goal


class Scenario(Strict):
    name: str
    description: str = ""
    family: str
    """What the job works with (code, documents, sql, browser): the report groups by it."""
    door: Literal["cli", "pr"] = "cli"
    """cli: the terminal door; pr: the bot's GitHub door, against the GitHub double."""
    pr: PrDoor = PrDoor()
    fixture: Literal["demo"] = "demo"
    """The repository the job runs in: `demo`, the calculator of `agentplane demo`."""
    files: dict[str, str] = Field(default_factory=dict)
    """Files written over the fixture and committed (an injected README, say)."""
    secrets: dict[str, str] = Field(default_factory=dict)
    """Broker credentials the host holds during the run (AGENTPLANE_CREDENTIAL_<NAME>)."""
    job: dict[str, Any]
    turns: list[dict[str, Any]]
    """The model's turns (the scripted provider's format). A tool call marked
    `out_of_grant: true` is an attempt policy should deny (the provider ignores the mark)."""
    benign_turns: list[dict[str, Any]] | None = None
    """Injection scenarios: the same task with no attack, for benign utility."""
    injection: Injection | None = None
    task: FileCheck | None = None
    approve: bool = True
    """An allowed approver approves what is proposed (then the run is rolled back); false:
    the approver refuses it, as a reviewer refuses what the task did not ask for."""
    expect_contract: bool = True
    world: WorldSpec | None = None
    """Sites, a database and MCP servers started for each run (bot/eval/worlds.py)."""
    policy: dict[str, Any] = Field(default_factory=dict)
    """Merged over the fixture's policies/default.yaml (mappings key by key, anything else
    replaced): the grants a job type needs in this world (browser domains, SQL, servers)."""
    done: list[WorldCheck] = Field(default_factory=list)
    """The task, read from the world (with `task`, if given, all must hold)."""


def load_scenarios(directory: Path, only: tuple[str, ...] = ()) -> list[Scenario]:
    """Every `*.yaml` scenario in directory, by name; a bad one is ValidationFailed with
    each error at its file, line, column and field."""
    if not directory.is_dir():
        raise AgentplaneError(f"{directory}: no scenario directory")
    found = []
    for path in sorted(directory.glob("*.yaml")):
        if path.is_symlink() or not path.is_file():
            raise AgentplaneError(f"{path}: a scenario must be a regular file, not a link")
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            raise AgentplaneError(f"{path}: larger than {MAX_SCENARIO_BYTES} bytes")
        # Every error at file:line:col: field, as job files' are (bot.core.yamlsrc).
        doc = yamlsrc.parse(str(path), path.read_text(encoding="utf-8", errors="replace"))
        scenario = yamlsrc.validate(doc, Scenario, prepare=_named(path.stem))
        if not only or scenario.name in only:
            found.append(scenario)
    if only and (missing := set(only) - {s.name for s in found}):
        raise AgentplaneError(f"no scenario named {', '.join(sorted(missing))} in {directory}")
    return found


def _named(stem: str) -> Callable[[Any], Any]:
    """A scenario is named after its file, unless it says otherwise."""
    return lambda data: {"name": stem, **data} if isinstance(data, dict) else data
