"""The Job: one declared agent task, as written in `.agentplane/jobs/*.yaml`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from bot.core.canonical import digest_of
from bot.core.errors import ValidationFailed
from bot.core.yamlsrc import Located, parse, validate

JobType = Literal["code", "sql", "browser", "doc"]
BUILTIN_TOOLS: tuple[str, ...] = (
    "filesystem",
    "shell",
    "browser",
    "sql",
    "documents",
    "ask",
    "mcp",
)
"""The tool names of the shipped families:
what a job or policy file may name when whoever reads it runs no engine (`agentplane
validate`, the PR door's check). An engine validates against the families it runs."""

_known_tools: ContextVar[tuple[str, ...]] = ContextVar("known_tools", default=BUILTIN_TOOLS)


@contextmanager
def known_tools(names: Iterable[str]) -> Iterator[None]:
    """Validate tool names against `names` inside this block. A context variable, because
    the validators run deep inside pydantic, reached through yamlsrc and merge_policy,
    which pass no context of their own; it is reset on the way out."""
    token = _known_tools.set(tuple(dict.fromkeys(names)))
    try:
        yield
    finally:
        _known_tools.reset(token)


def _one_of(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _known_tool(name: str) -> str:
    known = _known_tools.get()
    if name not in known:
        raise ValueError(f"Input should be {_one_of(known)}")
    return name


Tool = Annotated[str, AfterValidator(_known_tool)]
"""A job-file tool name: one a known family serves (see known_tools)."""
Action = Literal["write", "submit", "delete", "purchase", "merge", "schedule", "deploy", "commit"]
ContractName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""An artifact contract's name: a built-in (bot.core.contracts) or one policy defines."""

# Names people already use (the vision document's example among them) map onto ours.
JOB_TYPE_ALIASES = {
    "browser_automation": "browser",
    "coding": "code",
    "sql_analysis": "sql",
    "document": "doc",
    "docs": "doc",
}
TOOL_ALIASES = {
    "playwright": "browser",
    "fs": "filesystem",
    "files": "filesystem",
    "docs": "documents",
}

_CRON_FIELD = r"(\*|\d+|\d+-\d+)(/\d+)?(,(\*|\d+|\d+-\d+)(/\d+)?)*"
_CRON = re.compile(rf"^{_CRON_FIELD}( +{_CRON_FIELD}){{4}}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilesystemScope(Strict):
    read: list[str] = Field(default_factory=lambda: ["**"], description="Globs the job may read")
    write: list[str] = Field(default_factory=list, description="Globs the job may write")

    @field_validator("read", "write")
    @classmethod
    def _relative(cls, globs: list[str]) -> list[str]:
        for g in globs:
            if g.startswith("/") or ".." in g.split("/") or not g.strip():
                raise ValueError(f"{g!r} must be a non-empty path glob relative to the repo root")
        return globs


class NetworkScope(Strict):
    allow: list[str] = Field(default_factory=list, description="host or *.domain, optional :port")


class GatedElement(Strict):
    """An element whose click needs approval, e.g. `{role: button, name: Delete, action: delete}`.

    `name` matches the accessible name case-insensitively as a substring, so a rule
    gates more rather than less; form submits and non-GET requests are gated anyway.
    """

    action: Literal["submit", "delete", "purchase"]
    role: str | None = Field(None, description="ARIA role, e.g. button or link")
    name: str | None = Field(None, description="Part of the accessible name, any case")

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("name must not be blank (it would match every element)")
        return v


class BrowserStep(Strict):
    """One step of a declared inverse: a browser tool and its arguments, as a model would
    call it (goto {url}; fill {label|role+name|selector, text}; select {..., option};
    click {label|role+name|selector})."""

    tool: Literal["goto", "fill", "select", "click"]
    arguments: dict[str, str] = Field(default_factory=dict)


class BrowserScope(Strict):
    domains: list[str] = Field(default_factory=list)
    gated: list[GatedElement] = Field(
        default_factory=list, description="Elements whose clicks need approval (role and/or name)"
    )
    volatile_fields: list[str] = Field(
        default_factory=list,
        description="Form fields the site issues anew on every page load (e.g. a CSRF token): "
        "apply matches them by name and place, every other field by value",
    )
    inverse: list[BrowserStep] = Field(
        default_factory=list,
        description="How to undo a submit of this job on the site: browser steps (goto, "
        "fill, select, click) ending on the submit that undoes it. A rollback replays them "
        "without a model and holds that submit at the same gate as any; without them a "
        "submitted request is reported as irreversible",
    )


class SqlScope(Strict):
    connection: str | None = Field(None, description="A connection named in policy, never a DSN")

    @field_validator("connection")
    @classmethod
    def _not_a_dsn(cls, v: str | None) -> str | None:
        if v is not None and ("://" in v or "=" in v):
            raise ValueError("name a connection from policy; DSNs never go in job files")
        return v


class Scope(Strict):
    filesystem: FilesystemScope = Field(default_factory=FilesystemScope)
    network: NetworkScope = Field(default_factory=NetworkScope)
    browser: BrowserScope = Field(default_factory=BrowserScope)
    sql: SqlScope = Field(default_factory=lambda: SqlScope(connection=None))


class Budget(Strict):
    usd: Annotated[float, Field(ge=0)] | None = None
    minutes: Annotated[float, Field(gt=0)] | None = None
    tool_calls: Annotated[int, Field(ge=1)] | None = None
    tokens: Annotated[int, Field(ge=1)] | None = None


def _check_cron(v: str) -> str:
    if not _CRON.match(v.strip()):
        raise ValueError("expected five cron fields, e.g. '0 6 * * 1-5'")
    try:
        croniter(v.strip())
    except (CroniterBadCronError, ValueError) as exc:
        raise ValueError(f"not a valid cron expression: {exc}") from None
    return v


def check_zone(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {v!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None
    return v


class Schedule(Strict):
    """When a job runs by itself (bot.doors.schedule): `schedule: '0 6 * * 1-5'` is short
    for `schedule: {cron: '0 6 * * 1-5'}`."""

    cron: Annotated[str, AfterValidator(_check_cron)] = Field(
        description="Five-field cron expression"
    )
    timezone: Annotated[str | None, AfterValidator(check_zone)] = Field(
        None,
        description="IANA time zone the cron is read in (e.g. Europe/Berlin), so 06:00 stays "
        "06:00 across DST; unset: UTC",
    )
    mode: Literal["propose", "drift"] = Field(
        "propose",
        description="`propose`: a due run proposes its change for approval as any run does; "
        "`drift`: plan-only, the run reports what the job would change now and proposes "
        "nothing",
    )

    @model_serializer(mode="wrap")
    def _short(self, handler: SerializerFunctionWrapHandler) -> Any:
        # The short form dumps as it was written, so a job's digest does not change with it.
        if self.timezone is None and self.mode == "propose":
            return self.cron
        return handler(self)


def _schedule_schema(schema: dict[str, Any]) -> None:
    """Editors accept the short form too: a cron string, read in UTC."""
    short = {"type": "string", "description": "Five-field cron expression, read in UTC"}
    schema["anyOf"] = [short, *schema.get("anyOf", [])]


class Job(Strict):
    """A job file. Unknown fields are errors, so a typo never silently widens nothing."""

    name: str = Field(description="Defaults to the file name without .yaml")
    job_type: JobType | None = Field(None, description="Classified from the prompt when omitted")
    repo: str | None = None
    prompt: str | None = Field(None, description="May come from the PR, issue or command instead")
    tools: list[Tool] = Field(default_factory=list)
    scope: Scope = Field(default_factory=Scope)
    credentials: list[str] = Field(default_factory=list, description="Names of broker credentials")
    approval_required_for: list[Action] = Field(default_factory=list)
    artifact_contract: list[ContractName] = Field(
        default_factory=list,
        description="What the run must leave for review (`diff`, `trace`, `screenshots`, "
        "`query_evidence`, `document`, `diff_plus_trace`, `report`, or one policy defines), "
        "checked when the agent stops: without it the run ends contract_unmet",
    )
    verify: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list,
        max_length=10,
        description="Commands the control plane itself runs (not the agent) on the base "
        "commit plus the proposal, in a fresh read-only sandbox, e.g. `python -m pytest -q`; "
        "a failing one ends the run verify_failed",
    )
    budget: Budget = Field(default_factory=Budget)
    schedule: Schedule | None = Field(
        None,
        description="Five-field cron expression, or {cron, timezone, mode}",
        json_schema_extra=_schedule_schema,
    )
    model: str = Field("auto", description="`auto` (routed by policy) or a model group from policy")
    data_sensitivity: Literal["public", "internal", "customer", "restricted"] = Field(
        "internal", description="Routing may keep customer or restricted data on some models"
    )
    latency: Literal["interactive", "batch"] = "batch"

    @field_validator("artifact_contract", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lowercase letters, digits, '.', '_' or '-' (at most 64)")
        return v

    @field_validator("job_type", mode="before")
    @classmethod
    def _job_type_alias(cls, v: Any) -> Any:
        return JOB_TYPE_ALIASES.get(v, v) if isinstance(v, str) else v

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_aliases(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[Any] = []
        for t in v:
            t = TOOL_ALIASES.get(t, t) if isinstance(t, str) else t
            if t not in out:
                out.append(t)
        return out

    @field_validator("schedule", mode="before")
    @classmethod
    def _cron(cls, v: Any) -> Any:
        # The short form is checked here, so its errors are located at `schedule` itself.
        return {"cron": _check_cron(v)} if isinstance(v, str) else v

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))


def job_schema(tools: Sequence[str] = BUILTIN_TOOLS) -> dict[str, Any]:
    schema = Job.model_json_schema()
    # The names are checked by a validator, not the type: editors get them as an enum.
    schema["properties"]["tools"]["items"] = {"enum": list(tools), "type": "string"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentplane job"
    # Editors should not demand `name`: it defaults to the file name.
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]
    return schema


def parse_job(path: str, text: str, tools: Sequence[str] | None = None) -> Job:
    """Parse and validate a job file; raises ValidationFailed with located errors.

    tools: the tool names the caller's families serve (default: as known_tools says)."""
    if tools is not None:
        with known_tools(tools):
            return parse_job(path, text)
    doc: Located = parse(path, text)
    if doc.data == {}:
        raise ValidationFailed(
            [doc.error((), "not a job: the mapping is empty (see `agentplane schema`)")]
        )
    default_name = PurePosixPath(path).name.removesuffix(".yaml").removesuffix(".yml").lower()

    def with_name(data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data:
            return {**data, "name": default_name}
        return data

    return validate(doc, Job, prepare=with_name)
