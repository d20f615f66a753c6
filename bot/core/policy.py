"""Policy: who may run what, with which tools and scopes, who approves, budgets, models.

Policy files live in `policies/*.yaml` and are read from the default branch only.
`.agentplane/config.yaml` (RepoConfig) may narrow policy, never widen it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from bot.core.approvers import Requirement
from bot.core.contracts import BUILTIN, ContractItem
from bot.core.errors import SourceError, ValidationFailed
from bot.core.identity import Directory, Person, Resolver
from bot.core.job import Action, Budget, JobType, Scope, Strict, Tool, check_zone
from bot.core.routing import Routing
from bot.core.yamlsrc import parse, validate


class JobTypePolicy(Strict):
    run_by: list[str] = Field(description="Principals who may run this job type; '*' is anyone")
    tools: list[Tool] = Field(default_factory=list)
    scope: Scope = Field(default_factory=Scope)
    credentials: list[str] = Field(default_factory=list)
    backend: Literal["bwrap", "docker"] | None = Field(
        default=None,
        description="Sandbox backend this job type must run in (e.g. docker for browser); "
        "unset: the host's default",
    )
    private_networks: list[str] = Field(
        default_factory=list,
        description="Non-public networks (CIDR, e.g. 10.20.0.0/16 for an internal admin "
        "console) this job type's egress and browser may reach; a job file can never open one",
    )
    approve_failed_verification: bool = Field(
        default=False,
        description="Whether a proposal whose verify commands failed may still be approved "
        "(it waits for approval with the failure shown); by default such a run ends "
        "verify_failed",
    )
    runs_on: Literal["bot", "actions"] = Field(
        default="bot",
        description="Where the bot runs this job type's pull request runs: on its own host, "
        "or dispatched to an Actions runner (policy's actions.workflow), whose signed records "
        "come back on the audit branch",
    )
    mcp_servers: list[str] = Field(
        default_factory=list,
        description="MCP servers (names under mcp_servers) this job type's `mcp` tool may "
        "use; a job file can never add one",
    )

    @field_validator("private_networks")
    @classmethod
    def _cidrs(cls, networks: list[str]) -> list[str]:
        return cidrs(networks)


def cidrs(networks: list[str]) -> list[str]:
    for net in networks:
        try:
            ipaddress.ip_network(net)
        except ValueError as exc:
            raise ValueError(f"{net!r} is not a network in CIDR form: {exc}") from None
    return networks


class GatePolicy(Strict):
    id: str
    actions: list[Action]
    approvers: Requirement
    job_types: list[JobType] = Field(default_factory=list, description="Empty: every job type")
    paths: list[str] = Field(default_factory=list, description="Empty: any path")


class Budgets(Strict):
    default: Budget = Field(default_factory=Budget)
    max: Budget = Field(default_factory=Budget)


GITHUB_MAX_BLOB = 100 * 1000 * 1000
"""GitHub refuses a push holding a blob over 100 MB: no quota may let one reach a commit."""
_MB = 1000 * 1000


class Quotas(Strict):
    """Per-run limits on what a proposal may carry; a run over one stops with the reason.

    Sizes are what the proposal adds, measured on its patch; the defaults keep every audit
    commit under GitHub's limits, and no policy can raise them past those."""

    bytes_written: int = Field(
        default=50 * _MB, ge=1, lt=GITHUB_MAX_BLOB, description="Bytes added, all files together"
    )
    files_changed: int = Field(default=1000, ge=1, description="Files added, changed or deleted")
    largest_file_bytes: int = Field(
        default=50 * _MB,
        ge=1,
        lt=GITHUB_MAX_BLOB,
        description="Bytes added to one file; the sandbox's RLIMIT_FSIZE follows it",
    )
    proposal_bytes: int = Field(
        default=50 * _MB, ge=1, lt=GITHUB_MAX_BLOB, description="Size of the stored patch"
    )


class Clarify(Strict):
    """When the control plane must ask before running, instead of letting the agent assume."""

    min_confidence: float = Field(
        default=0.5, ge=0, le=1, description="Ask when the job type was guessed less surely"
    )
    mutating_needs_acceptance: bool = Field(
        default=True,
        description="Ask when a job that can change things has no acceptance "
        "criteria in its prompt",
    )
    acceptance_markers: list[str] = Field(
        default_factory=lambda: [
            "done when",
            "acceptance",
            "expected",
            "must",
            "should",
            "so that",
            "passes",
        ]
    )


class SqlConnectionPolicy(Strict):
    """A named SQL connection. The DSN itself is never in policy or job files."""

    dsn_env: str | None = Field(
        None, description="Environment variable holding the DSN; default AGENTPLANE_SQL_<NAME>_DSN"
    )
    secrets_file: str | None = Field(
        None, description="File (on the bot's host) whose content is the DSN; used if env is unset"
    )
    allow_analyze: bool = Field(default=False, description="EXPLAIN ANALYZE executes the statement")
    require_standby: bool = Field(
        default=True, description="Refuse to run unless pg_is_in_recovery()"
    )
    statement_timeout_ms: int = Field(default=5000, ge=1)
    lock_timeout_ms: int = Field(default=1000, ge=1)
    row_cap: int = Field(default=200, ge=1, description="Rows fetched per query, at most")
    byte_cap: int = Field(
        default=65536, ge=1, description="Bytes of values kept per query, at most (64 KiB)"
    )
    allow_functions: list[str] = Field(
        default_factory=list,
        description="Functions allowed beyond the built-in read-only allowlist, spelled as "
        "PostgreSQL does (`schema.name`, lower case unless quoted); functions that run SQL "
        "text or act (ts_stat, dblink, pg_terminate_backend) stay refused",
    )


class ElementRef(Strict):
    """An element of a login page: its label, its ARIA role and name, or a CSS selector."""

    label: str | None = Field(None, description="A form field's label, e.g. Username")
    role: str | None = Field(None, description="ARIA role, e.g. button")
    name: str | None = Field(None, description="The accessible name, exactly")
    selector: str | None = Field(None, description="A CSS selector, e.g. '#id_password'")

    @model_validator(mode="after")
    def _named(self) -> ElementRef:
        if not (self.label or self.selector or (self.role and self.name)):
            raise ValueError("name the element with label, role and name, or selector")
        return self


class LoginSuccess(Strict):
    """How the page after the login shows that it worked."""

    url: str | None = Field(
        None, description="A glob the landing page's path must match, e.g. '/admin/*'"
    )
    text: str | None = Field(None, description="Text the landing page must show")

    @model_validator(mode="after")
    def _some(self) -> LoginSuccess:
        if not (self.url or self.text):
            raise ValueError("say how success shows: url (a path glob), text, or both")
        return self


class FormLogin(Strict):
    """A login form on the credential's own origin, filled and submitted by the broker."""

    url: str = Field(description="The login page: a path on the credential's origin")
    username: ElementRef
    password: ElementRef = Field(description="Must be an <input type=password>")
    submit: ElementRef
    success: LoginSuccess

    @field_validator("url")
    @classmethod
    def _path(cls, url: str) -> str:
        # A path, never a URL: the form is always on the origin the host bound the secret to.
        if not url.startswith("/") or url.startswith("//"):
            raise ValueError(
                "a path on the credential's origin, starting with / (e.g. /admin/login/); "
                "the origin comes from $AGENTPLANE_CREDENTIAL_<NAME>"
            )
        return url


class CredentialPolicy(Strict):
    """How a broker credential logs in to its origin. Without `form`: HTTP auth."""

    form: FormLogin | None = Field(
        None, description="The login form the broker fills in; unset: HTTP Basic/Digest auth"
    )


McpDecision = Literal["allow", "deny", "needs_approval"]
McpAction = Literal["submit", "delete", "commit"]


class McpToolPolicy(Strict):
    """What the broker does with one MCP tool; a tool policy does not list is denied."""

    decision: McpDecision
    action: McpAction = Field(
        default="submit", description="The gate action a held call raises (gates name it)"
    )


class McpHeader(Strict):
    """A request header a remote MCP server needs, its value from a broker credential."""

    credential: str = Field(
        min_length=1,
        description="Broker credential name (the host's AGENTPLANE_CREDENTIAL_<NAME>); "
        "masked in everything recorded",
    )
    prefix: str = Field(default="", description='Before the value, e.g. "Bearer "')


LOCAL_ONLY = ("command", "env", "credentials", "mounts", "workdir", "network", "private_networks")


class McpServerPolicy(Strict):
    """An MCP server a job type may use: local (`command`, stdio, run in a sandbox of its
    own) or remote (`url`, streamable HTTP, reached by the broker on the host only)."""

    command: list[str] = Field(
        default_factory=list,
        description="Local: argv as seen inside the sandbox, e.g. [python3, -m, pkg]",
    )
    url: str | None = Field(
        None,
        description="Remote: the server's streamable HTTP endpoint (http or https); the "
        "broker connects from the host, the job's sandbox never reaches it",
    )
    headers: dict[str, McpHeader] = Field(
        default_factory=dict,
        description="Remote: header name -> the broker credential its value comes from "
        "(e.g. Authorization: {credential: tickets, prefix: 'Bearer '})",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Literal environment")
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variable -> broker credential name (the host's "
        "AGENTPLANE_CREDENTIAL_<NAME>); masked in everything recorded",
    )
    tools: dict[str, McpDecision | McpToolPolicy] = Field(
        default_factory=dict, description="The allowlist: tool name -> decision"
    )
    mounts: list[str] = Field(
        default_factory=list,
        description="Host directories bound read-only at the same path (the server's install)",
    )
    workdir: str | None = Field(
        None,
        description="Host directory mounted at /workspace: read-only while the job runs, "
        "writable only while apply makes an approved call; unset: an empty directory",
    )
    network: list[str] = Field(
        default_factory=list,
        description="Domains the server may reach through the egress proxy; empty: no network",
    )
    private_networks: list[str] = Field(
        default_factory=list,
        description="Non-public networks (CIDR) the server's allowed domains may resolve "
        "into, e.g. [10.20.0.0/16] for an internal service; empty: public addresses only",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Per request")
    max_result_bytes: int = Field(
        default=65536, ge=1, le=4 << 20, description="Result text kept per call, at most"
    )
    max_message_bytes: int = Field(
        default=16 << 20,
        ge=64 << 10,
        le=256 << 20,
        description="One message (line) the server writes, at most; a server that writes a "
        "longer one is stopped and the call fails",
    )

    @field_validator("private_networks")
    @classmethod
    def _cidrs(cls, networks: list[str]) -> list[str]:
        return cidrs(networks)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme, sep, rest = url.partition("://")
        host = rest.split("/", 1)[0].rpartition("@")[2]
        if not sep or scheme.lower() not in ("http", "https") or not host:
            raise ValueError(f"{url!r} is not an http(s) URL of an MCP endpoint")
        if "@" in rest.split("/", 1)[0]:
            raise ValueError("put a remote server's credentials in `headers`, not in its URL")
        return url

    @model_validator(mode="after")
    def _local_or_remote(self) -> McpServerPolicy:
        if self.url is None:
            if not self.command:
                raise ValueError("an MCP server needs a `command` (local) or a `url` (remote)")
            if self.headers:
                raise ValueError("`headers` are for a remote server (`url`)")
            return self
        given = [f for f in LOCAL_ONLY if getattr(self, f)]
        if given:
            raise ValueError(
                f"a remote MCP server (`url`) takes no {', '.join(given)}: those are for a "
                "local server the sandbox runs"
            )
        return self

    @property
    def remote(self) -> bool:
        return self.url is not None

    def rule_for(self, tool: str) -> McpToolPolicy | None:
        rule = self.tools.get(tool)
        return McpToolPolicy(decision=rule) if isinstance(rule, str) else rule


PROTECTED_PATHS = (".github/**", ".agentplane/**", "policies/**")
"""What governs the bot itself (workflows, jobs, policy): changed by people through review,
never by an applied proposal."""

DOORS = ("cli", "pull_request", "issue", "comment", "schedule", "web", "mcp")


class ApprovalsPolicy(Strict):
    """Which doors' approvals count: one setting every door (terminal, PR, web) reads."""

    doors: list[str] = Field(
        default_factory=lambda: list(DOORS),
        description="Doors whose approvals count, e.g. [pull_request] for 'approvals on GitHub "
        "only'; an approval from another door is recorded as not counted",
    )
    signed: list[str] = Field(
        default_factory=list,
        description="Doors whose approvals count only when the approving control plane's "
        "signing key is one policy lists under audit.signers (e.g. [cli])",
    )

    @field_validator("doors", "signed")
    @classmethod
    def _known(cls, doors: list[str]) -> list[str]:
        unknown = sorted(set(doors) - set(DOORS))
        if unknown:
            raise ValueError(f"unknown door(s) {unknown}; doors are {', '.join(DOORS)}")
        return doors


class SignerPolicy(Strict):
    """A writer whose audit entries are trusted: the terminal, the bot, a runner."""

    name: str = Field(min_length=1, max_length=200, description="Who holds the key")
    key: str = Field(description="Its Ed25519 public key: ed25519:<base64 of the 32-byte key>")
    revoked_at: AwareDatetime | None = Field(
        None,
        description="From this time (ISO 8601 with a zone) on, entries signed by the key fail "
        "verify; earlier ones are reported as signed by a key revoked later",
    )

    @field_validator("key")
    @classmethod
    def _ed25519(cls, key: str) -> str:
        raw = None
        if key.startswith("ed25519:"):
            try:
                raw = base64.b64decode(key.removeprefix("ed25519:"), validate=True)
            except (binascii.Error, ValueError):
                raw = None
        if raw is None or len(raw) != 32:
            raise ValueError(
                "want ed25519:<base64 of 32 bytes>, as `agentplane audit key` prints it"
            )
        return key


class AuditPolicy(Strict):
    """Whose signatures on the audit branch count (rotating or revoking a key is a policy
    change, reviewed like any other)."""

    signers: list[SignerPolicy] = Field(default_factory=list)
    require_signatures_from: int | None = Field(
        default=None,
        ge=0,
        description="From this audit seq on, unsigned (v1) entries fail verify; null: only "
        "after the first signed entry",
    )


class SetupPolicy(Strict):
    """The setup phase: commands a repository declares (`.agentplane/config.yaml#setup`),
    run in the sandbox before the agent to install the project's dependencies. Policy says
    which registries it may reach, for which job types, and how much it may take."""

    registries: list[str] = Field(
        default_factory=list,
        description="Package registries setup may reach through the egress proxy (`pypi.org`, "
        "`files.pythonhosted.org`, `*.example.com`, `host:port`); nothing else, and the agent "
        "phase never gets them",
    )
    private_networks: list[str] = Field(
        default_factory=list,
        description="Non-public networks (CIDR) a registry mirror lives in, e.g. 10.20.0.0/16",
    )
    job_types: list[JobType] = Field(
        default_factory=lambda: list[JobType](["code"]),
        description="Job types whose runs may run setup",
    )
    minutes: float = Field(default=10, gt=0, le=120, description="Wall time for all commands")
    max_commands: int = Field(default=20, ge=1, le=100)
    max_env_bytes: int = Field(
        default=2 << 30, ge=1, description="Largest environment setup may leave (bytes)"
    )
    cache_bytes: int = Field(
        default=5 << 30,
        ge=1,
        description="Size cap of the environment cache; least recently used ones go first",
    )

    @field_validator("private_networks")
    @classmethod
    def _cidrs(cls, networks: list[str]) -> list[str]:
        for net in networks:
            try:
                ipaddress.ip_network(net)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a network in CIDR form: {exc}") from None
        return networks


class SchedulePolicy(Strict):
    timezone: Annotated[str, AfterValidator(check_zone)] = Field(
        default="UTC",
        description="IANA time zone a job's schedule is read in when the job names none",
    )


class ActionsPolicy(Strict):
    workflow: str = Field(
        default="agentplane-dispatch.yml",
        pattern=r"^[A-Za-z0-9._-]+\.ya?ml$",
        description="The workflow (in .github/workflows/) runs are dispatched to",
    )


class PolicyFile(Strict):
    """One file of policies/; the files are merged, and a name defined twice is an error."""

    groups: dict[str, list[str]] = Field(default_factory=dict)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    people: dict[str, Person] = Field(
        default_factory=dict,
        description="One person's GitHub logins, ids and emails, named person:<name> in "
        "groups and roles, so that one person counts once across doors",
    )
    approvals: ApprovalsPolicy | None = None
    job_types: dict[JobType, JobTypePolicy] = Field(default_factory=dict)
    gates: list[GatePolicy] = Field(default_factory=list)
    default_approvers: Requirement | None = None
    owners: list[str] = Field(default_factory=list, description="Who approves policy changes")
    protected_paths: list[str] | None = Field(
        None,
        description="Globs no proposal may change, whatever a job's write scope says; "
        f"default {list(PROTECTED_PATHS)}",
    )
    budgets: Budgets | None = None
    models: Routing | None = None
    clarify: Clarify | None = None
    sql_connections: dict[str, SqlConnectionPolicy] = Field(default_factory=dict)
    credentials: dict[str, CredentialPolicy] = Field(
        default_factory=dict,
        description="Broker credentials (values in the host's AGENTPLANE_CREDENTIAL_<NAME>): "
        "how each logs in; one not listed logs in with HTTP auth",
    )
    mcp_servers: dict[str, McpServerPolicy] = Field(
        default_factory=dict, description="MCP servers (local or remote) job types may be granted"
    )
    artifact_contracts: dict[str, list[ContractItem]] = Field(
        default_factory=dict,
        description="Contracts jobs may name in artifact_contract, over the built-ins "
        f"({', '.join(BUILTIN)}); a built-in defined here is replaced",
    )
    audit: AuditPolicy | None = None
    quotas: Quotas | None = None
    schedule: SchedulePolicy | None = None
    actions: ActionsPolicy | None = None
    setup: SetupPolicy | None = None


class Policy(BaseModel):
    """The merged policy, with where each rule came from (`file#path`)."""

    model_config = ConfigDict(frozen=True)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    people: dict[str, Person] = Field(default_factory=dict)
    approvals: ApprovalsPolicy = Field(default_factory=ApprovalsPolicy)
    job_types: dict[str, JobTypePolicy] = Field(default_factory=dict)
    gates: list[GatePolicy] = Field(default_factory=list)
    default_approvers: Requirement | None = None
    owners: list[str] = Field(default_factory=list)
    protected_paths: list[str] = Field(default_factory=lambda: list(PROTECTED_PATHS))
    budgets: Budgets = Field(default_factory=Budgets)
    models: Routing = Field(default_factory=Routing)
    clarify: Clarify = Field(default_factory=Clarify)
    sql_connections: dict[str, SqlConnectionPolicy] = Field(default_factory=dict)
    credentials: dict[str, CredentialPolicy] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServerPolicy] = Field(default_factory=dict)
    artifact_contracts: dict[str, list[ContractItem]] = Field(default_factory=dict)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)
    quotas: Quotas = Field(default_factory=Quotas)
    schedule: SchedulePolicy = Field(default_factory=SchedulePolicy)
    actions: ActionsPolicy = Field(default_factory=ActionsPolicy)
    setup: SetupPolicy | None = None
    """None: no repository may run a setup phase."""
    origins: dict[str, str] = Field(default_factory=dict)
    """section key (e.g. `job_types.code`) -> `policies/x.yaml#job_types.code`."""

    def rule(self, key: str) -> str:
        section = ".".join(key.split(".")[:2])
        base = self.origins.get(section) or self.origins.get(key.split(".")[0], "policy")
        return f"{base.split('#')[0]}#{key}"

    def directory(self, resolve_login: Resolver | None = None) -> Directory:
        """Who is who under this policy; a door that knows GitHub passes its login resolver."""
        return Directory(self.people, resolve_login)

    def matches(self, principal: str, identity: str, directory: Directory | None = None) -> bool:
        """Does identity (a key from bot.core.identity) belong to principal?"""
        return self._matches(principal, identity, directory or self.directory(), frozenset())

    def people_in(
        self, principal: str, directory: Directory, seen: frozenset[str] = frozenset()
    ) -> set[str] | None:
        """Everyone principal names, one name per person; None when it has no bound (`*`)."""
        if principal == "*":
            return None
        if principal in seen:
            return set()
        for prefix, table in (("group:", self.groups), ("role:", self.roles)):
            if principal.startswith(prefix):
                people: set[str] = set()
                for member in table.get(principal.removeprefix(prefix), []):
                    found = self.people_in(member, directory, seen | {principal})
                    if found is None:
                        return None
                    people |= found
                return people
        return {directory.person(principal)}

    def _matches(
        self, principal: str, identity: str, directory: Directory, seen: frozenset[str]
    ) -> bool:
        if principal in seen:
            return False  # a cycle of groups/roles grants nothing
        if principal == "*":
            return True
        for prefix, table in (("group:", self.groups), ("role:", self.roles)):
            if principal.startswith(prefix):
                members = table.get(principal.removeprefix(prefix), [])
                return any(
                    self._matches(m, identity, directory, seen | {principal}) for m in members
                )
        return directory.member(principal, identity)

    def roles_of(self, identity: str, directory: Directory | None = None) -> list[str]:
        return sorted(r for r in self.roles if self.matches(f"role:{r}", identity, directory))


def merge_policy(files: list[tuple[str, str]], source: str = "the default branch") -> Policy:
    """Merge policy files given as (path, text); every error is located. source names
    where they were read (the ref), for the error when there are none."""
    merged: dict[str, Any] = {
        "groups": {},
        "roles": {},
        "people": {},
        "job_types": {},
        "gates": [],
        "sql_connections": {},
        "credentials": {},
        "mcp_servers": {},
        "artifact_contracts": {},
    }
    origins: dict[str, str] = {}
    errors: list[SourceError] = []
    for path, text in sorted(files):
        try:
            doc = parse(path, text)
            part = validate(doc, PolicyFile)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            continue
        for section in (
            "groups",
            "roles",
            "people",
            "job_types",
            "sql_connections",
            "credentials",
            "mcp_servers",
            "artifact_contracts",
        ):
            for key, value in getattr(part, section).items():
                if key in merged[section]:
                    errors.append(
                        doc.error(
                            (section, key),
                            f"already defined in {origins[f'{section}.{key}'].split('#')[0]}",
                        )
                    )
                    continue
                merged[section][key] = value
                origins[f"{section}.{key}"] = f"{path}#{section}.{key}"
        for i, gate in enumerate(part.gates):
            if f"gates.{gate.id}" in origins:
                errors.append(doc.error(("gates", i, "id"), f"gate id {gate.id!r} is not unique"))
                continue
            merged["gates"].append(gate)
            origins[f"gates.{gate.id}"] = f"{path}#gates.{gate.id}"
        for single in (
            "default_approvers",
            "owners",
            "protected_paths",
            "budgets",
            "models",
            "clarify",
            "approvals",
            "audit",
            "quotas",
            "schedule",
            "actions",
            "setup",
        ):
            value = getattr(part, single)
            if not value:
                continue
            if single in origins:
                errors.append(
                    doc.error((single,), f"already defined in {origins[single].split('#')[0]}")
                )
                continue
            merged[single] = value
            origins[single] = f"{path}#{single}"
    if errors:
        raise ValidationFailed(errors)
    if not files:
        raise ValidationFailed(
            [SourceError("policies/", 1, 1, "", f"no policy files found on {source}")]
        )
    return Policy(**merged, origins=origins)


DEFAULT_SCRATCH = (".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis")
"""Where test tools write their caches in the workspace: writable, never proposed."""


class SetupConfig(Strict):
    """The repository's setup phase: what installs its dependencies into /env."""

    commands: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        min_length=1,
        description="Run in order in the sandbox (cwd /workspace, a throwaway copy of the "
        "commit), e.g. `python3 -m venv /env` and `/env/bin/pip install -r requirements.txt`; "
        "the first that fails stops the run",
    )
    inputs: list[str] = Field(
        default_factory=lambda: ["**"],
        description="Globs of the files setup reads (lockfiles, pyproject.toml, setup.py, "
        "requirements*.txt): the environment is reused while they and the commands are "
        "unchanged. Default: every file of the commit, so nothing setup reads is missed",
    )
    registries: list[str] | None = Field(
        None, description="Narrows policy's setup.registries; unset: all of them"
    )

    @field_validator("inputs")
    @classmethod
    def _relative(cls, globs: list[str]) -> list[str]:
        for g in globs:
            if g.startswith("/") or ".." in g.split("/") or not g.strip():
                raise ValueError(f"{g!r} must be a non-empty path glob relative to the repo root")
        return globs


class RepoConfig(Strict):
    """`.agentplane/config.yaml`: narrows policy for this repo; it can never widen it."""

    tools: list[Tool] | None = Field(None, description="Allowed tools (a subset of policy's)")
    scope: Scope | None = None
    budget: Budget = Field(default_factory=Budget)
    approval_required_for: list[Action] = Field(default_factory=list)
    setup: SetupConfig | None = Field(
        None, description="Commands that install the project's dependencies before the agent"
    )
    scratch: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCRATCH),
        description="Workspace directories tools may write although the write scope does "
        "not cover them (test caches); never part of the proposal",
    )

    @field_validator("scratch")
    @classmethod
    def _plain_dirs(cls, dirs: list[str]) -> list[str]:
        for d in dirs:
            parts = [p for p in d.split("/") if p not in ("", ".")]
            if d.startswith("/") or ".." in parts or not parts or set("*?[") & set(d):
                raise ValueError(f"{d!r} must be a plain directory path inside the repository")
        return dirs


def parse_config(path: str, text: str) -> RepoConfig:
    return validate(parse(path, text), RepoConfig)
