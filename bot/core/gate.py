"""The gate: which approvals a run's proposal needs, and whether a decision can count.

Pure functions over the run record and policy, requirements as data that return
a reason (after Atlantis): the engine records the reason whatever the outcome.
"""

from __future__ import annotations

from bot.core.globs import match_any
from bot.core.identity import Directory
from bot.core.plan import GatePlan, Plan
from bot.core.policy import Policy
from bot.core.record import RunRecord


def open_gates(rec: RunRecord) -> list[GatePlan]:
    """The plan's gates that the staged proposal actually triggers: a gate opens when some
    part raises its action and, for a path-scoped gate, changes one of its paths. The parts
    say which actions and paths they carry, so no family is named here."""
    proposal = rec.proposal
    if proposal is None:
        return []
    return [
        g
        for g in Plan.model_validate(rec.plan).gates
        if any(
            g.action in part.actions
            and (not g.paths or any(match_any(path, g.paths) for path in part.paths))
            for part in proposal.parts
        )
    ]


def may_decide(
    policy: Policy, gates: list[GatePlan], who: str, directory: Directory | None = None
) -> bool:
    d = directory or policy.directory()
    return any(policy.matches(p, who, d) for g in gates for p in g.approvers.principals())


def approval_problem(
    rec: RunRecord,
    approver: str,
    reviewed_commit: str,
    gates: list[GatePlan],
    policy: Policy,
    directory: Directory | None = None,
    door: str = "cli",
    reviewed_digest: str | None = None,
) -> str | None:
    """Why this person's decision cannot count for this run, or None when it can.

    reviewed_digest is the proposal digest the evidence the approver saw showed, where the
    door knows it (the PR comment prints it): an approval binds to what was reviewed."""
    d = directory or policy.directory()
    if d.same(approver, rec.requester):
        return "authors cannot approve their own run"
    if door not in policy.approvals.doors:
        return (
            f"approvals from the {door} door do not count here "
            f"({policy.rule('approvals.doors')}: {', '.join(policy.approvals.doors) or 'none'})"
        )
    if reviewed_digest is not None and rec.proposal and reviewed_digest != rec.proposal.digest:
        return (
            f"the evidence reviewed showed proposal {reviewed_digest[:19]}, "
            f"the run's proposal is {rec.proposal.digest[:19]}"
        )
    if reviewed_commit != rec.commit:
        return f"stale: the review is on {reviewed_commit[:12]}, the evidence on {rec.commit[:12]}"
    if not may_decide(policy, gates, approver, d):
        return f"{approver} is not an approver for this gate"
    return None
