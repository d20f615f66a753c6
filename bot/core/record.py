"""The run record: everything a run did, as one pydantic model; its states and transitions.

A snapshot of it is appended to the audit branch at every state change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field, field_validator, model_validator

from bot.core.canonical import digest_of
from bot.core.contracts import ContractCheck
from bot.core.errors import RunError
from bot.core.plan import ModelRoute, Plan

SCHEMA_VERSION: Literal[2] = 2
"""Records without `schema_version` are v1 (`v: 1`): read, they are upgraded to v2 (a
proposal of parts, typed `applied`, `model_override` out of `model`), and written again
as v2. The audit entry that carries a record has its own version (bot.adapters.audit)."""

State = Literal[
    "planned",
    "needs_clarification",
    "denied",
    "running",
    "awaiting_approval",
    "approved",
    "rejected",
    "applied",
    "completed",
    "failed",
    "budget_exceeded",
    "cancelled",
    "contract_unmet",
    "verify_failed",
]
IN_FLIGHT: frozenset[str] = frozenset({"planned", "running", "approved"})
"""States a live process is carrying forward: nobody else waits on them."""
FINAL: frozenset[str] = frozenset(
    {
        "denied",
        "rejected",
        "applied",
        "completed",
        "failed",
        "budget_exceeded",
        "cancelled",
        "contract_unmet",
        "verify_failed",
    }
)
# The only legal moves; anything else is a bug or a tampered record.
TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"needs_clarification", "denied", "running", "failed"}),
    "needs_clarification": frozenset({"planned", "failed", "cancelled"}),
    "running": frozenset(
        {
            "awaiting_approval",
            "completed",
            "failed",
            "budget_exceeded",
            "needs_clarification",
            "contract_unmet",
            "verify_failed",
        }
    ),
    "awaiting_approval": frozenset(
        {"awaiting_approval", "approved", "rejected", "failed", "cancelled"}
    ),
    "approved": frozenset({"approved", "applied", "failed"}),
}

SECRET_SCAN = "secret-scan"
"""The pseudo-tool of a record's tool calls that flag a token-shaped line in a proposal."""

Decision = Literal["allow", "deny", "needs_approval"]


class ToolCall(BaseModel):
    seq: int
    tool: str
    arguments: dict[str, Any]
    decision: Decision
    rule: str
    reason: str
    ok: bool
    result: str
    duration_ms: float
    status: str = ""
    """How a command ended (`exit 1`, `timed out`); "" for tools that are not commands."""


class CommandRun(BaseModel):
    """A command the control plane ran in a sandbox of its own, and how it ended."""

    command: str
    exit_code: int | None
    """None: it timed out."""
    output: str
    """The tail of what it printed (redacted)."""
    duration_ms: float

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


class VerificationResult(CommandRun):
    """One of the job's `verify` commands, run by the control plane itself on the base
    commit plus the proposal, in a fresh sandbox: the model's claim is never the evidence."""


class SetupStep(CommandRun):
    """One setup command as it ran in the sandbox, before the agent."""


class SetupResult(BaseModel):
    """The run's setup phase: the environment the agent and verify saw read-only at /env,
    how it was keyed, and whether it was built by this run or reused."""

    key: str
    """sha256 over what setup executes and reads (commands, input files, registries, base
    image, backend, trust domain): equal keys share one environment."""
    trust_domain: str
    """`default` (a commit on the default branch), `pr-<n>`, or `commit-<sha>`: an
    environment built for one domain never serves another."""
    inputs: list[str] = Field(default_factory=list)
    """The files hashed into the key, `path sha256` each."""
    reused: bool
    steps: list[SetupStep] = Field(default_factory=list)
    """The commands this run executed (none when the environment was reused)."""
    env_digest: str = ""
    """sha256 over the environment's tree as it was mounted; "" when setup failed."""
    size_bytes: int = 0
    built_by: str = ""
    """The run that built a reused environment, when known."""
    error: str = ""
    """Why setup did not produce an environment (a failing step, a size over the cap)."""

    @property
    def ok(self) -> bool:
        return not self.error and all(s.passed for s in self.steps)


class ModelCall(BaseModel):
    seq: int
    model: str
    """The deployment that answered."""
    model_class: str
    """The routed group."""
    group: str = ""
    """The group that answered: another one when a fallback served the call."""
    fallbacks: int = 0
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    """None: the cost cannot be known (a self-hosted model policy gives no price for)."""
    cost_source: Literal["litellm", "policy", "unknown"] = "litellm"
    tokens_estimated: bool = False
    """The server sent no usage: the tokens are litellm's tokenizer count."""
    deployment: str = ""
    """The deployment that answered (its model_info.id)."""
    api_base: str = ""
    retries: int = 0
    """Attempts beyond the first (retries and fallbacks together)."""
    max_tokens: int | None = None
    """The cap sent with the call."""
    latency_ms: float
    finish: str


class ArtifactRef(BaseModel):
    name: str
    sha256: str
    size: int
    media_type: str


class Approval(BaseModel):
    approver: str
    """The approver's identity key (bot.core.identity): a GitHub id or a case-folded email."""
    name: str = ""
    """How the door shows that person (a GitHub login); never compared."""
    door: str = "cli"
    decision: Literal["approve", "deny"]
    commit: str
    job_digest: str
    proposal_digest: str
    at: str
    counted: bool
    reason: str


Detail = dict[str, str | int | bool | list[str] | None]
"""A part's family-specific facts (a diffstat, a held request's method and URL): plain JSON
values, so any reader of the audit branch can show them without the family's code."""


class ProposalPart(BaseModel):
    """One family's share of a proposal: what apply will do, and what binds it.

    `digest` names the staged content (a patch's sha256, a held request's digest); the
    family's apply step checks what it applies against it. `actions` and `paths` are what
    the gates read."""

    family: str
    kind: str
    digest: str
    actions: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    summary: str = ""
    """One line for the evidence, e.g. "the held browser request above"."""
    detail: Detail = Field(default_factory=dict)

    def bound(self) -> dict[str, Any]:
        """What the proposal digest covers: everything apply and the gates act on. The
        summary and the detail are display, and are redacted in the stored record, so a
        digest over them could not be recomputed from it."""
        return {
            "family": self.family,
            "kind": self.kind,
            "digest": self.digest,
            "actions": self.actions,
            "paths": self.paths,
        }


PATCH = "patch"
"""The part kind of a unified diff of the workspace (digest: the patch's sha256)."""

# v1 records knew two fixed parts; their digests were taken over these names.
_V1_PATCH_FAMILY, _V1_REQUEST_FAMILY = "filesystem", "browser"


class Proposal(BaseModel):
    """What an approval binds to: a list of parts, one per family, and one digest over all.

    `scheme` 2 digests every part's bound fields. Records written before parts existed
    (scheme 1: `patch_sha256`, `changed`, `browser`) load as parts and keep their own
    digest formula, so a run awaiting approval across the upgrade still verifies."""

    scheme: int = 2
    digest: str
    parts: list[ProposalPart] = Field(default_factory=list)
    out_of_scope: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_v1(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "parts" in data:
            return data
        return _upgrade_v1(data)

    def part(self, family: str) -> ProposalPart | None:
        return next((p for p in self.parts if p.family == family), None)

    def of_kind(self, kind: str) -> list[ProposalPart]:
        return [p for p in self.parts if p.kind == kind]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def changed(self) -> list[str]:
        """The files its patches change: kept in the stored form, as v1 records had it,
        for whoever reads an audit branch without knowing parts."""
        return [path for p in self.of_kind(PATCH) for path in p.paths]

    @property
    def paths(self) -> list[str]:
        """Every path the parts change, in part order, each once."""
        return list(dict.fromkeys(path for p in self.parts for path in p.paths))

    @property
    def actions(self) -> list[str]:
        return list(dict.fromkeys(a for p in self.parts for a in p.actions))

    @property
    def additions(self) -> int:
        return sum(_count(p.detail.get("additions")) for p in self.of_kind(PATCH))

    @property
    def deletions(self) -> int:
        return sum(_count(p.detail.get("deletions")) for p in self.of_kind(PATCH))

    def expected_digest(self) -> str:
        if self.scheme == 1:
            patch = next((p.digest for p in self.parts if p.family == _V1_PATCH_FAMILY), None)
            held = next((p.digest for p in self.parts if p.family == _V1_REQUEST_FAMILY), None)
            return digest_of({"patch": patch, "browser": held})
        return digest_of({"parts": [p.bound() for p in self.parts]})

    @classmethod
    def of(cls, parts: list[ProposalPart], out_of_scope: list[str]) -> Proposal:
        proposal = cls(digest="", parts=parts, out_of_scope=out_of_scope)
        return proposal.model_copy(update={"digest": proposal.expected_digest()})


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A v1 proposal as parts: the patch (write, commit on its changed files) and the held
    browser request (its action), with the digest and formula it was approved under."""
    parts: list[dict[str, Any]] = []
    if data.get("patch_sha256"):
        parts.append(
            {
                "family": _V1_PATCH_FAMILY,
                "kind": PATCH,
                "digest": data["patch_sha256"],
                "actions": ["write", "commit"],
                "paths": list(data.get("changed") or []),
                "detail": {
                    "additions": data.get("additions", 0),
                    "deletions": data.get("deletions", 0),
                },
            }
        )
    held = data.get("browser")
    if isinstance(held, dict):
        parts.append(
            {
                "family": _V1_REQUEST_FAMILY,
                "kind": "held_request",
                "digest": held.get("pending_digest", ""),
                "actions": [held.get("action", "")],
                "summary": "the held browser request above",
                "detail": {k: v for k, v in held.items() if k != "pending_digest"},
            }
        )
    return {
        "scheme": 1,
        "digest": data.get("digest", ""),
        "parts": parts,
        "out_of_scope": data.get("out_of_scope") or [],
    }


class AppliedPart(BaseModel):
    """What apply did for one part: a released request, a commit on a branch."""

    family: str
    summary: str
    """As the evidence says it, e.g. "committed 0123456789ab on branch agentplane/run/x"."""
    details: dict[str, str] = Field(default_factory=dict)
    """Plain facts a door acts on: `commit` and `branch` for a commit it pushes."""


def upgrade_applied(data: Any) -> Any:
    """v1's `applied` dict (`request`/`status`, `branch`/`commit`) as AppliedParts."""
    if not isinstance(data, dict):
        return data
    parts: list[dict[str, Any]] = []
    if "request" in data:
        parts.append(
            {
                "family": _V1_REQUEST_FAMILY,
                "summary": f"released {data['request']} (HTTP {data.get('status', '?')})",
                "details": {k: data[k] for k in ("request", "status") if k in data},
            }
        )
    if "commit" in data:
        parts.append(
            {
                "family": _V1_PATCH_FAMILY,
                "summary": f"committed {data['commit'][:12]} on branch {data.get('branch', '')}",
                "details": {k: data[k] for k in ("branch", "commit") if k in data},
            }
        )
    return parts


class Question(BaseModel):
    text: str
    call_id: str
    asked_at: str


class Clarification(BaseModel):
    question: str
    answer: str
    by: str
    at: str


class DoorRef(BaseModel):
    """Where the run came from, so its door can find it again (e.g. a pull request)."""

    repo: str
    number: int | None = None
    client: str | None = None
    """The MCP client that asked (its clientInfo, `name/version`), for runs from the MCP door."""
    token: str | None = None
    """The name of the bearer token the MCP door accepted over HTTP (never the token)."""
    workflow_run_id: int | None = None
    """The GitHub Actions workflow run that carried the run (its GITHUB_RUN_ID)."""
    workflow_run_url: str | None = None
    actor: str | None = None
    """Who triggered that workflow run (GITHUB_TRIGGERING_ACTOR): recorded, never the
    requester of a scheduled run, which is the schedule itself."""
    branch: str | None = None
    """The branch a proposal is pushed to for review (the Actions door's pull request)."""
    window: str | None = None
    """The schedule window a scheduled run serves (UTC, ISO 8601): the scheduler's mark."""
    start: str | None = None
    """The queued delivery a web start came as: a start delivered again after a crash
    finds its run by it instead of starting another."""
    dispatch: str | None = None
    """The bot's id for a run it dispatched to an Actions runner (bot.doors.github.dispatch):
    how the records that come back are matched to the request it sent."""


class Transition(BaseModel):
    state: State
    at: str
    reason: str


class EgressEntry(BaseModel):
    """One request the egress proxy judged (bot.adapters.sandbox.spec.EgressEvent), with
    the policy rule that granted or withheld its destination."""

    host: str
    port: int
    decision: str
    """`allow`, `deny`, or `unreachable` (allowed, but the connection failed)."""
    rule: str
    """The policy rule: the grant that matched, or `policy#network (not granted ...)`."""
    proxy_rule: str = ""
    """The proxy's own rule: the allow_domains entry that matched, or why it refused."""
    network_rule: str = ""
    """For an allowed private address: the rule that let the job reach private networks."""
    address: str = ""
    bytes_up: int = 0
    bytes_down: int = 0
    duration_ms: float = 0.0
    method: str = ""
    url: str = ""
    reason: str = ""
    by: str = ""
    """Who connected, where not the sandbox itself (e.g. `browser`)."""
    phase: Literal["setup", "propose", "apply"] = "propose"


class ReplayModel(BaseModel):
    """The model a replay runs against instead of the routed one: recorded turns only."""

    model: str
    api_base: str


class RunRecord(BaseModel):
    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str
    job_name: str
    job_path: str
    job_digest: str
    repo: str
    commit: str
    door: str
    door_ref: DoorRef | None = None
    requester: str
    requester_name: str = ""
    prompt: str | None
    plan: Plan
    tools_granted: list[str]
    model: ModelRoute | None
    model_override: ReplayModel | None = None
    state: State = "planned"
    transitions: list[Transition] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    model_calls: list[ModelCall] = Field(default_factory=list)
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    proposal: Proposal | None = None
    approvals: list[Approval] = Field(default_factory=list)
    applied: list[AppliedPart] | None = None
    """What apply did, part by part; None until something was applied."""
    question: Question | None = None
    clarifications: list[Clarification] = Field(default_factory=list)
    verification: list[VerificationResult] = Field(default_factory=list)
    """The job's verify commands as the control plane ran them on the proposal."""
    setup: SetupResult | None = None
    """The setup phase (the repo config's commands, before the agent); None: there was none."""
    contract: list[ContractCheck] = Field(default_factory=list)
    """The plan's contract, item by item, as checked when the agent stopped."""
    egress: list[EgressEntry] = Field(default_factory=list)
    """Every connection the sandbox tried through the egress proxy, allowed or denied."""
    final_message: str | None = None
    """What the model itself last said (never agentplane's reason for stopping it)."""
    plan_only: bool = False
    """A plan-only (drift) run: its proposal is what the job would change now, recorded and
    never offered for approval (the run ends completed)."""
    failure: Literal["", "model", "crashed"] = ""
    """"model": the model failed the run (unreachable, or a cut, empty or malformed answer).
    A door does not retry such a run by itself: it would fail again, and pay again.
    "crashed": the process carrying it died before its proposal was recorded; nothing was
    staged for anyone, so the door that asked for it may start it again."""
    owner: str | None = None
    """While IN_FLIGHT: the process carrying the run (bot.run.owner), so a dead one is found."""
    rollback_of: str | None = None
    """The applied run this run undoes (`agentplane rollback`): its proposal is that run's
    applied parts inverted, planned, gated and applied like any other proposal."""
    irreversible: list[str] = Field(default_factory=list)
    """What this rollback cannot undo, each with why (a released browser submit)."""
    cost_usd: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)

    def advance(self, state: State, at: str, reason: str) -> None:
        if self.transitions and state not in TRANSITIONS.get(self.state, frozenset()):
            raise RunError(f"run {self.run_id} is {self.state}; it cannot become {state}")
        self.state = state
        self.transitions.append(Transition(state=state, at=at, reason=reason))

    def artifact(self, name: str) -> ArtifactRef | None:
        return next((a for a in self.artifacts if a.name == name), None)

    @field_validator("applied", mode="before")
    @classmethod
    def _applied_v1(cls, v: Any) -> Any:
        return upgrade_applied(v)

    @model_validator(mode="before")
    @classmethod
    def _record_v1(cls, data: Any) -> Any:
        """v1 kept a replay's model in `model.override`; v2 has a field of its own."""
        if not isinstance(data, dict) or "schema_version" in data:
            return data
        data = {k: v for k, v in data.items() if k != "v"}
        model = data.get("model")
        if isinstance(model, dict) and "override" in model:
            data["model"] = {k: v for k, v in model.items() if k != "override"}
            data["model_override"] = model["override"]
        return data

    def applied_commit(self) -> tuple[str, str] | None:
        """(commit, branch) of the commit apply made, for a door that pushes it; or None."""
        for part in self.applied or []:
            if "commit" in part.details and "branch" in part.details:
                return part.details["commit"], part.details["branch"]
        return None
