"""The boundary between the run engine and a tool family.

A tool family is one kind of work (files, shell, SQL, a browser...). The engine,
the toolbox, the gate and the renderer know families only through this module:

- `ToolFamily.name` and `capabilities`: the family, and the job-file tool names it serves;
- `open(ctx)`: its tools for one run, as a `FamilySession` (tools, redaction, and at the
  end `finish()`: the artifacts, egress, proposal parts and notes it staged);
- `restore(part, ctx)`: put a paused run's staged part back into a fresh workspace;
- `apply(part, ctx)`: apply one approved part, deterministically, never asking the
  model; refusals are `ApplyRefused`;
- `unsafe_to_repeat(part)`: why applying the part again after a crash could act twice;
- `inverse(part, ctx)`: the parts that undo an applied part (a rollback's proposal), or
  why it cannot be undone;
- `evidence(ctx)`: its sections of the evidence, from the record and its artifacts;
- `gate_actions`: the actions its parts can raise, which gates are written against.

Families may use the adapters (git, sandbox) but never the run layer: whatever the control
plane must decide itself (vetting a patch before it is stored) comes in through a context.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from bot.adapters.git import GitRepo
from bot.adapters.sandbox import Sandbox
from bot.adapters.sandbox.spec import EgressEvent
from bot.core.errors import AgentplaneError
from bot.core.job import Job
from bot.core.plan import Plan
from bot.core.policy import Policy
from bot.core.record import AppliedPart, Decision, ProposalPart, RunRecord
from bot.core.render import Section, fenced
from bot.families.base import ToolSpec

__all__ = [
    "AppliedPart",
    "ApplyContext",
    "ApplyRefused",
    "Artifact",
    "Egress",
    "EvidenceContext",
    "FamilyError",
    "FamilySession",
    "Inverse",
    "InverseContext",
    "Note",
    "ProposalPart",
    "RestoreContext",
    "RunContext",
    "Section",
    "Staged",
    "ToolFamily",
    "UnknownFamily",
    "text_section",
]


class FamilyError(AgentplaneError):
    """A tool family could not do what the run asked; the message says what to do."""


class ApplyRefused(FamilyError):
    """Apply refused an approved part and changed nothing for it; the message is the whole
    reason the run failed (e.g. how the page differs from what was approved)."""


class UnknownFamily(FamilyError):
    """A proposal part names a family this engine does not run."""

    def __init__(self, family: str, known: Sequence[str]) -> None:
        self.family = family
        super().__init__(
            f"the proposal has a {family!r} part, but this engine runs only the families "
            f"{', '.join(known) or '(none)'}: apply it with an agentplane that has that family"
        )


Redaction = Literal["all", "known", "none"]


@dataclass(frozen=True)
class Artifact:
    """A file a family keeps with the run (stored by sha256 in the audit branch)."""

    name: str
    data: bytes
    media_type: str
    redaction: Redaction = "all"
    """Before it is stored: "all" redacts every secret shape (text media types only);
    "known" only the control plane's own secrets, for an artifact whose digests bind what
    apply replays; "none" for content the control plane already vetted and that apply
    uses byte for byte (a patch)."""


@dataclass(frozen=True)
class Egress:
    """One connection through the egress proxy, and who made it when not the run's sandbox."""

    event: EgressEvent
    by: str = ""


@dataclass(frozen=True)
class Note:
    """A line for the record's tool calls that no tool call made: a path left out of the
    proposal, a token-shaped line flagged in it. Recorded once, however often a resumed
    run stages the same thing."""

    tool: str
    arguments: dict[str, Any]
    decision: Decision
    rule: str
    reason: str
    ok: bool


@dataclass(frozen=True)
class Staged:
    """What one family's session leaves when the agent is done."""

    artifacts: tuple[Artifact, ...] = ()
    egress: tuple[Egress, ...] = ()
    parts: tuple[ProposalPart, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()


Vet = Callable[[str], Sequence[Note]]
"""The control plane's checks on a patch before it is stored: notes for lines that look
like tokens; raises (an AgentplaneError) for a known secret or a patch over a quota."""


@dataclass(frozen=True)
class RunContext:
    """Everything a family may use to serve one run."""

    plan: Plan
    policy: Policy
    job: Job
    job_path: str
    commit: str
    repo: GitRepo
    workspace: Path
    sandbox: Sandbox
    vet: Vet
    check_workspace: Callable[[], None]
    """The control plane's workspace quotas: raises (an AgentplaneError) when the sandbox
    wrote past them. Called before diffing, so git never copies an oversized tree."""
    environ: Mapping[str, str]
    answers: Sequence[str] = ()
    """The ask tool's recorded answers (replays only)."""


@dataclass(frozen=True)
class RestoreContext:
    """A fresh workspace for a paused run, before its sandbox starts."""

    repo: GitRepo
    workspace: Path
    artifact: Callable[[str], bytes]
    """Stored content by sha256, as the audit branch holds it."""


@dataclass(frozen=True)
class ApplyContext:
    """What apply may use: the approved record and the policy as it stands now."""

    record: RunRecord
    plan: Plan
    policy: Policy
    """Read from the default branch at apply, not at propose: protections added since count."""
    repo: GitRepo
    environ: Mapping[str, str]
    artifact: Callable[[str], bytes]
    """Stored content by sha256."""
    artifact_named: Callable[[str], bytes | None]
    """The run's artifact of that name, or None."""
    message: str
    """The commit message for what apply commits, already redacted."""
    identity: tuple[str, str]
    at: str
    keep: Callable[[Artifact], None]
    """Store an artifact apply produced (kept even when apply then refuses)."""
    log_egress: Callable[[Egress], None]


@dataclass(frozen=True)
class InverseContext:
    """What a family may use to undo one part an applied run applied."""

    record: RunRecord
    """The applied run being rolled back."""
    applied: AppliedPart | None
    """What apply recorded for this part (its commit, the request it released), if any."""
    onto: str
    """The commit the undoing proposal will be applied on."""
    repo: GitRepo
    job: Job
    """The job as it stands at `onto` (an inverse step it declares, for one)."""
    artifact: Callable[[str], bytes]
    plan: Plan | None = None
    """The rollback run's own plan (what policy grants it now: domains, backend)."""
    policy: Policy | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    """The host's environment, for a credential an inverse step logs in with."""


@dataclass(frozen=True)
class Inverse:
    """How one applied part is undone: parts staged like any proposal's (with their
    artifacts), or, with no parts, `irreversible` says why it cannot be."""

    parts: tuple[ProposalPart, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    irreversible: str = ""
    egress: tuple[Egress, ...] = ()
    """Connections the family made to compute the parts (a browser inverse's page loads)."""


@dataclass(frozen=True)
class EvidenceContext:
    record: RunRecord
    artifact_named: Callable[[str], bytes | None]
    artifacts: Sequence[tuple[str, Callable[[], bytes]]] = ()
    """(name, reader) of every artifact the run kept, in record order."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Artifact name -> URL where the door uploaded it (gate.png, trace.zip)."""


def text_section(title: str, text: str, collapsed: bool = False) -> Section:
    """A section that reads the same everywhere: the text in a terminal, and in Markdown a
    fenced block the text cannot close (pages and query results are untrusted text)."""
    return Section(title, text, fenced(text), collapsed)


class FamilySession(ABC):
    """One family's tools for one run; closed with the run whatever happens."""

    @abstractmethod
    def tools(self) -> Sequence[ToolSpec]:
        """Registered with the broker, which decides each call against the plan."""

    def redact(self, text: str) -> str:
        """Secrets only this session holds (a DSN's password), out of tool results."""
        return text

    def finish(self) -> Staged:
        """Called once after the agent stopped and its sandbox is gone."""
        return Staged()

    def close(self) -> None:
        """Release what the session holds; called even after a failure, and after finish."""
        return None


class NotGranted(FamilySession):
    """The session of a family the plan did not grant: no tools at all, so the broker
    answers "no tool named ..." and nothing (a connection, a browser) is opened."""

    def tools(self) -> Sequence[ToolSpec]:
        return []


class ToolFamily(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[tuple[str, ...]]
    """The job-file tool names this family serves (`tools: [...]` in a job)."""
    gate_actions: ClassVar[tuple[str, ...]] = ()
    """The actions its proposal parts can raise (gates are written against them)."""
    implied_actions: ClassVar[tuple[str, ...]] = ()
    """Actions its tools perform whatever the job lists: policy's gates on them are
    planned for every job granted one of its capabilities."""

    @abstractmethod
    def open(self, ctx: RunContext) -> FamilySession: ...

    def restore(self, part: ProposalPart, ctx: RestoreContext) -> None:
        """Put a paused run's staged part back; by default it is staged again from scratch."""
        return None

    def apply(self, part: ProposalPart, ctx: ApplyContext) -> AppliedPart:
        raise ApplyRefused(f"the {self.name} family stages nothing that can be applied")

    def unsafe_to_repeat(self, part: ProposalPart) -> str | None:
        """Why this part must not be applied again after a process died while applying it
        (it may have acted already); None when applying is deterministic and idempotent."""
        return None

    def inverse(self, part: ProposalPart, ctx: InverseContext) -> Inverse:
        """The parts that undo an applied part; by default it cannot be undone."""
        return Inverse(
            irreversible=f"{self.name}: a {part.kind} part ({part.summary}) cannot be undone"
        )

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        return []


def family_named(families: Sequence[ToolFamily], name: str) -> ToolFamily:
    """The family a proposal part names; UnknownFamily when this engine does not run it."""
    family = next((f for f in families if f.name == name), None)
    if family is None:
        raise UnknownFamily(name, [f.name for f in families])
    return family


def implied_actions(families: Sequence[ToolFamily]) -> dict[str, tuple[str, ...]]:
    """Capability -> the actions its family's tools perform, for the plan's gates."""
    return {c: f.implied_actions for f in families for c in f.capabilities if f.implied_actions}
