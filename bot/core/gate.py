"""The gate: which approvals a run's proposal needs, and whether a decision can count.

Pure functions over the run record and policy. The requirements themselves, and their
reasons, are in bot.core.gates; this module reads a run record into their facts.
"""

from __future__ import annotations

from bot.core.gates import ApprovalFacts, ReviewTiming, may_decide
from bot.core.globs import match_any
from bot.core.identity import Directory
from bot.core.plan import GatePlan
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
        for g in rec.plan.gates
        if any(
            g.action in part.actions
            and (not g.paths or any(match_any(path, g.paths) for path in part.paths))
            for part in proposal.parts
        )
    ]


def approval_facts(
    rec: RunRecord,
    approver: str,
    reviewed_commit: str,
    gates: list[GatePlan],
    policy: Policy,
    directory: Directory | None = None,
    door: str = "cli",
    reviewed_digest: str | None = None,
    timing: ReviewTiming | None = None,
    unsigned: str | None = None,
) -> ApprovalFacts:
    """The plain facts bot.core.gates.approval decides on, from a run record."""
    return ApprovalFacts(
        policy=policy,
        directory=directory or policy.directory(),
        approver=approver,
        requester=rec.requester,
        door=door,
        gates=tuple(gates),
        commit=rec.commit,
        reviewed_commit=reviewed_commit,
        proposal_digest=rec.proposal.digest if rec.proposal else "",
        reviewed_digest=reviewed_digest if rec.proposal else None,
        timing=timing,
        unsigned=unsigned,
    )


__all__ = ["approval_facts", "may_decide", "open_gates"]
