"""Every gate decision in one place: requirements over plain data that return a reason.

As in Atlantis's apply requirements, a requirement is data: the rule it comes from and a
test of the facts. Evaluating a list of them returns one Check (ok, the reason, the rule
that decided), and the first requirement that is not met is the answer, so a person reads
the reason that matters most (the author's own approval is "authors cannot approve", not
"not an approver"). Three gates live here:

- does one person's decision count for a run (`approval`), and which of the run's gates
  its counted approvals still leave open (`pending`);
- does a review approve a change to policy (`policy_owner_approval`);
- may a comment command run (`command`).

Pure: the engine and the doors hand over the facts (record, policy, directory, identity,
door, timing) and act on the Check. Nothing here reads git, the clock or the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

from bot.core.errors import ApprovalNotCounted, StaleApproval
from bot.core.identity import Directory
from bot.core.plan import GatePlan
from bot.core.policy import Policy
from bot.core.record import RunRecord

F = TypeVar("F")

COUNTED = "counted"


@dataclass(frozen=True)
class Check:
    """One evaluation: ok, why, and the rule that decided (`file#path`, or `gate#...` for
    the rules agentplane holds whatever policy says)."""

    ok: bool
    reason: str
    rule: str


@dataclass(frozen=True)
class Condition(Generic[F]):
    """A requirement as data: rule, and `unmet(facts)`, why the facts fail it (None: met)."""

    rule: str
    unmet: Callable[[F], str | None]


def evaluate(conditions: Sequence[Condition[F]], facts: F, met: str) -> Check:
    """The first unmet condition, or ok with `met` as the reason."""
    for c in conditions:
        why = c.unmet(facts)
        if why is not None:
            return Check(False, why, c.rule)
    return Check(True, met, conditions[-1].rule if conditions else "")


# -- approvals of a run -------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewTiming:
    """GitHub's own times, to the second: when the review was submitted, and when the
    evidence comment first showed this proposal awaiting approval (None: unknown). A review
    can reach the bot long after it was given (a queued, retried or reconciled delivery), so
    only these two times say which came first."""

    submitted_at: datetime | None
    evidence_at: datetime | None


@dataclass(frozen=True)
class ApprovalFacts:
    """One person's decision on one run, as the door saw it."""

    policy: Policy
    directory: Directory
    approver: str
    """The decider's identity key (bot.core.identity)."""
    requester: str
    door: str
    gates: tuple[GatePlan, ...]
    """The gates the run's proposal opens (bot.core.gate.open_gates)."""
    commit: str
    """The commit the run's evidence is for."""
    reviewed_commit: str
    proposal_digest: str
    reviewed_digest: str | None = None
    """The proposal digest the evidence the decider saw showed, where the door knows it."""
    timing: ReviewTiming | None = None
    """Where the door can tell (a PR review), when the decision was made."""
    unsigned: str | None = None
    """Why this host cannot sign an approval from this door as policy asks (the engine
    looks its own key up in policy's signers), or None."""


def may_decide(
    policy: Policy, gates: Iterable[GatePlan], who: str, directory: Directory | None = None
) -> bool:
    """Is who named by any of these gates' approvers?"""
    d = directory or policy.directory()
    return any(policy.matches(p, who, d) for g in gates for p in g.approvers.principals())


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timing_problem(timing: ReviewTiming) -> str | None:
    """Why a review cannot be shown to come after the evidence it approves; a tie fails
    closed, since it cannot tell which came first."""
    submitted, posted = timing.submitted_at, timing.evidence_at
    if posted is None:
        return "no evidence for this proposal is known to have been posted yet"
    if submitted is None:
        return "GitHub gave the review no submission time"
    if submitted < posted:
        return (
            f"the review was submitted at {stamp(submitted)}, before the evidence for this "
            f"proposal was posted at {stamp(posted)}: review the evidence, then approve again"
        )
    if submitted == posted:
        return (
            f"the review was submitted at {stamp(submitted)}, the same second the evidence "
            "was posted, so it cannot be shown to come after it: approve again"
        )
    return None


def _not_author(f: ApprovalFacts) -> str | None:
    if f.directory.same(f.approver, f.requester):
        return "authors cannot approve their own run"
    return None


def _after_evidence(f: ApprovalFacts) -> str | None:
    return None if f.timing is None else timing_problem(f.timing)


def _door_counts(f: ApprovalFacts) -> str | None:
    doors = f.policy.approvals.doors
    if f.door in doors:
        return None
    return (
        f"approvals from the {f.door} door do not count here "
        f"({f.policy.rule('approvals.doors')}: {', '.join(doors) or 'none'})"
    )


def _reviewed_this_proposal(f: ApprovalFacts) -> str | None:
    if f.reviewed_digest is None or f.reviewed_digest == f.proposal_digest:
        return None
    return (
        f"the evidence reviewed showed proposal {f.reviewed_digest[:19]}, "
        f"the run's proposal is {f.proposal_digest[:19]}"
    )


def _reviewed_this_commit(f: ApprovalFacts) -> str | None:
    if f.reviewed_commit == f.commit:
        return None
    return f"stale: the review is on {f.reviewed_commit[:12]}, the evidence on {f.commit[:12]}"


def _named_approver(f: ApprovalFacts) -> str | None:
    if may_decide(f.policy, f.gates, f.approver, f.directory):
        return None
    return f"{f.approver} is not an approver for this gate"


def _signed(f: ApprovalFacts) -> str | None:
    return f.unsigned


# The order is the order of what a person most needs to hear. Timing comes before the rest:
# an early review says nothing about the proposal the evidence now shows.
APPROVAL: tuple[Condition[ApprovalFacts], ...] = (
    Condition("gate#after-evidence", _after_evidence),
    Condition("gate#not-the-author", _not_author),
    Condition("approvals.doors", _door_counts),
    Condition("gate#reviewed-proposal", _reviewed_this_proposal),
    Condition("gate#reviewed-commit", _reviewed_this_commit),
    Condition("gate#approvers", _named_approver),
    Condition("approvals.signed", _signed),
)
STALE_RULES = frozenset({"gate#reviewed-proposal", "gate#reviewed-commit"})
"""Rules whose failure means the decision was about something other than what the run
now shows: the review is stale, not wrong."""


def approval(facts: ApprovalFacts) -> Check:
    """Does this decision count? The reason is recorded with it whatever the answer."""
    check = evaluate(APPROVAL, facts, COUNTED)
    if check.ok or check.rule.startswith("gate#"):
        return check
    # Rules policy holds are named where policy says them (`policies/x.yaml#approvals.doors`).
    return Check(check.ok, check.reason, facts.policy.rule(check.rule))


def pending(
    gates: Iterable[GatePlan],
    approvers: Iterable[str],
    requester: str,
    policy: Policy,
    directory: Directory,
) -> tuple[Check, ...]:
    """The gates the counted approvals do not yet satisfy, each with its reason and rule."""
    people = list(approvers)
    return tuple(
        Check(False, v.reason, g.rule)
        for g in gates
        if not (
            v := g.approvers.evaluate(
                people,
                requester,
                lambda pr, who: policy.matches(pr, who, directory),
                directory.person,
            )
        ).ok
    )


# -- the policy-owner review of a change to policy ----------------------------------------


@dataclass(frozen=True)
class PolicyReviewFacts:
    """An approving review on a pull request that changes what governs the bot."""

    policy: Policy
    """Policy from the default branch: the PR's own policy never approves itself."""
    directory: Directory
    reviewer: str
    reviewer_name: str
    author: str
    reviewed_commit: str | None
    head: str


def _not_policy_author(f: PolicyReviewFacts) -> str | None:
    if f.directory.same(f.reviewer, f.author):
        return "authors cannot approve their own policy change"
    return None


def _on_head(f: PolicyReviewFacts) -> str | None:
    return None if f.reviewed_commit == f.head else "stale: the review is not on the head"


def _policy_owner(f: PolicyReviewFacts) -> str | None:
    owners = f.policy.owners
    if any(f.policy.matches(p, f.reviewer, f.directory) for p in owners):
        return None
    return f"{f.reviewer_name} is not a policy owner ({', '.join(owners) or 'none'})"


POLICY_REVIEW: tuple[Condition[PolicyReviewFacts], ...] = (
    Condition("gate#not-the-author", _not_policy_author),
    Condition("gate#reviewed-commit", _on_head),
    Condition("owners", _policy_owner),
)


def policy_owner_approval(facts: PolicyReviewFacts) -> Check:
    check = evaluate(POLICY_REVIEW, facts, f"{facts.reviewer_name} is a policy owner")
    rule = check.rule if check.rule.startswith("gate#") else facts.policy.rule(check.rule)
    return Check(check.ok, check.reason, rule)


# -- comment commands ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunParty:
    """Who a run answers to: its requester and the gates its plan holds."""

    requester: str
    gates: tuple[GatePlan, ...]


@dataclass(frozen=True)
class CommandFacts:
    """A newly created comment command: who wrote it, and the pull request's runs."""

    policy: Policy
    directory: Directory
    verb: str
    commenter: str
    runs: tuple[RunParty, ...] = field(default_factory=tuple)


STARTS_RUNS = frozenset({"rerun", "rollback"})
"""Verbs that start agent runs: they need a role that may run jobs."""
READS_PLANS = frozenset({"plan"})
"""Verbs that only show what policy decides: the same role as running, since a plan shows
what the job would be granted."""


def _may_run_jobs(f: CommandFacts) -> str | None:
    if f.verb not in STARTS_RUNS | READS_PLANS:
        return None
    if any(
        f.policy.matches(p, f.commenter, f.directory)
        for jt in f.policy.job_types.values()
        for p in jt.run_by
    ):
        return None
    return f"`{f.verb}` needs a role that may run jobs; you have none"


def _requester_or_approver(f: CommandFacts) -> str | None:
    if f.verb in STARTS_RUNS | READS_PLANS:
        return None
    if any(f.directory.same(f.commenter, r.requester) for r in f.runs):
        return None
    if may_decide(f.policy, (g for r in f.runs for g in r.gates), f.commenter, f.directory):
        return None
    return f"`{f.verb}` is for the run's requester or its approvers"


COMMAND: tuple[Condition[CommandFacts], ...] = (
    Condition("job_types.run_by", _may_run_jobs),
    Condition("gate#requester-or-approver", _requester_or_approver),
)


def command(facts: CommandFacts) -> Check:
    """By the commenter's role in policy, never by the mere ability to comment."""
    check = evaluate(COMMAND, facts, f"`{facts.verb}` allowed")
    if check.rule != "job_types.run_by":
        return check
    # Whoever may run any job type may ask for these: the rule is every job type's run_by.
    policy = facts.policy
    rule = ", ".join(policy.rule(f"job_types.{name}.run_by") for name in sorted(policy.job_types))
    return Check(check.ok, check.reason, rule or policy.rule("job_types"))


def may_answer(policy: Policy, directory: Directory, who: str, run: RunParty) -> bool:
    """A run's question is answered by its requester or one of its approvers."""
    return command(CommandFacts(policy, directory, "answer", who, (run,))).ok


# -- what a decision came to --------------------------------------------------------------

OutcomeKind = Literal[
    "not_counted", "stale", "pending", "rejected", "applied", "failed", "cancelled"
]


@dataclass(frozen=True)
class Outcome:
    """What Engine.decide came to, typed, so no caller reads an error message to tell.

    - not_counted: recorded, does not count (reason, rule); the run still waits
    - stale: not counted, because it was about another commit or proposal
    - pending: counted; the gates in `pending` are still open
    - rejected: a counted denial
    - applied / failed: every gate met, and apply ran (failed: reason says why)
    - cancelled: every gate met, but the head moved after the approval
    """

    kind: OutcomeKind
    record: RunRecord
    reason: str
    rule: str = ""
    pending: tuple[Check, ...] = ()

    @property
    def counted(self) -> bool:
        return self.kind not in ("not_counted", "stale")

    def not_counted_error(self) -> ApprovalNotCounted | None:
        """For a door that reports a decision that does not count as an error (the CLI)."""
        if self.counted:
            return None
        last = self.record.approvals[-1] if self.record.approvals else None
        who = last.approver if last else "this decision"
        message = f"{who} cannot decide run {self.record.run_id}: {self.reason}"
        kind = StaleApproval if self.kind == "stale" else ApprovalNotCounted
        return kind(message, self.reason, self.rule)
