"""The run record: everything a run did, as one pydantic model; its states and transitions.

A snapshot of it is appended to the audit branch at every state change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.core.canonical import digest_of
from bot.core.errors import RunError

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
]
IN_FLIGHT: frozenset[str] = frozenset({"planned", "running", "approved"})
"""States a live process is carrying forward: nobody else waits on them."""
FINAL: frozenset[str] = frozenset(
    {"denied", "rejected", "applied", "completed", "failed", "budget_exceeded", "cancelled"}
)
# The only legal moves; anything else is a bug or a tampered record.
TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"needs_clarification", "denied", "running", "failed"}),
    "needs_clarification": frozenset({"planned", "failed", "cancelled"}),
    "running": frozenset(
        {"awaiting_approval", "completed", "failed", "budget_exceeded", "needs_clarification"}
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
    cost_usd: float
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


class BrowserPending(BaseModel):
    """The browser request held at the gate: exactly what an approval releases."""

    action: str
    method: str
    url: str
    body_sha256: str | None
    step: int
    pending_digest: str


class Proposal(BaseModel):
    digest: str
    """What an approval binds to: the patch's sha256 and the held browser request."""
    patch_sha256: str | None = None
    changed: list[str] = Field(default_factory=list)
    additions: int = 0
    deletions: int = 0
    out_of_scope: list[str] = Field(default_factory=list)
    browser: BrowserPending | None = None

    @property
    def request_only(self) -> bool:
        """A held browser request and no file changes: nothing to show as a diff."""
        return self.browser is not None and not self.changed

    def expected_digest(self) -> str:
        return digest_of(
            {
                "patch": self.patch_sha256,
                "browser": self.browser.pending_digest if self.browser else None,
            }
        )


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


class Transition(BaseModel):
    state: State
    at: str
    reason: str


class RunRecord(BaseModel):
    v: int = 1
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
    plan: dict[str, Any]
    tools_granted: list[str]
    model: dict[str, Any] | None
    state: State = "planned"
    transitions: list[Transition] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    model_calls: list[ModelCall] = Field(default_factory=list)
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    proposal: Proposal | None = None
    approvals: list[Approval] = Field(default_factory=list)
    applied: dict[str, str] | None = None
    question: Question | None = None
    clarifications: list[Clarification] = Field(default_factory=list)
    egress: list[dict[str, Any]] = Field(default_factory=list)
    """Every connection the sandbox tried through the egress proxy, allowed or denied."""
    final_message: str | None = None
    owner: str | None = None
    """While IN_FLIGHT: the process carrying the run (bot.run.owner), so a dead one is found."""
    cost_usd: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)

    def advance(self, state: State, at: str, reason: str) -> None:
        if self.transitions and state not in TRANSITIONS.get(self.state, frozenset()):
            raise RunError(f"run {self.run_id} is {self.state}; it cannot become {state}")
        self.state = state
        self.transitions.append(Transition(state=state, at=at, reason=reason))

    def artifact(self, name: str) -> ArtifactRef | None:
        return next((a for a in self.artifacts if a.name == name), None)
