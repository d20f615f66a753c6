"""Rollback: undo an applied run as a new run of its own, through the one path.

The rollback run is planned with policy from the default branch like any run of its job
(the requester must be allowed to run it), its proposal is what each family says undoes
the parts the old run applied (a revert patch for files and documents), the job's verify
commands run on it (shown to the approver, not blocking: the state before the run may
have failed them), the same gates open on it, and apply commits it like any proposal.
No model is asked: what undoes an applied part is computed, never generated. What
cannot be undone (a request a site already received) is recorded as irreversible.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

from bot.adapters.git import GitRepo
from bot.core.errors import AgentplaneError, RunError
from bot.core.gate import open_gates
from bot.core.record import AppliedPart, DoorRef, Proposal, ProposalPart, RunRecord
from bot.core.request import Door
from bot.families.interface import InverseContext, ToolFamily, family_named
from bot.run.inputs import Inputs
from bot.run.propose import Proposer, egress_entry
from bot.run.storage import RunStore

UNDOABLE = ("applied", "completed")
"""States of a run a rollback can start from: it applied something, or it ended having
changed nothing (a read-only SQL run), which the rollback records as nothing to undo."""


def default_onto(repo: GitRepo, old: RunRecord) -> str:
    """Where the undo goes: the current HEAD when it holds what the run committed (the
    change was merged), else the run's own applied commit (or, with none, its commit)."""
    applied = old.applied_commit()
    head = repo.head_commit()
    if applied is None:
        return head
    return head if repo.is_ancestor(applied[0], head) else applied[0]


class Rollbacks:
    def __init__(
        self,
        repo: GitRepo,
        families: tuple[ToolFamily, ...],
        inputs: Inputs,
        store: RunStore,
        proposer: Proposer,
    ) -> None:
        self.repo = repo
        self.families = families
        self.inputs = inputs
        self.store = store
        self.proposer = proposer

    def start(
        self,
        old: RunRecord,
        requester: str | None = None,
        onto: str | None = None,
        door: Door = "cli",
        door_ref: DoorRef | None = None,
    ) -> RunRecord:
        """A new run that undoes `old` (a verified record); it waits for approval like any
        proposal, or ends completed when there is nothing it can undo."""
        if old.state not in UNDOABLE or old.plan_only:
            raise RunError(
                f"run {old.run_id} is {old.state}{' (plan only)' if old.plan_only else ''}: "
                "only a run that was applied, or completed, can be rolled back"
            )
        base = onto or default_onto(self.repo, old)
        commit = self.repo.resolve(base)
        if commit is None:
            raise RunError(f"--onto {base!r} names no commit in {self.repo.root}")
        prompt = f"Roll back run {old.run_id}: undo what it applied."
        req = self.inputs.request(
            old.job_path, prompt=prompt, door=door, requester=requester, commit=commit
        )
        policy = self.inputs.policy()
        p = self.inputs.plan(req, policy)
        stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        rec = RunRecord(
            run_id=f"{old.job_name}-rollback-{stamp}",
            job_name=old.job_name,
            job_path=req.job_path,
            job_digest=p.job_digest,
            repo=req.repo,
            commit=commit,
            door=req.door,
            requester=req.requester,
            requester_name=req.requester_name,
            prompt=prompt,
            plan=p,
            tools_granted=p.granted("tool"),
            model=None,  # nothing asks a model: the undo is computed from the record
            rollback_of=old.run_id,
            door_ref=door_ref,
        )
        advance = self.store.advance
        advance(rec, "planned", f"rollback of {old.run_id}, planned with policy from "
                f"{self.repo.default_branch()}")  # fmt: skip
        if not p.allowed.granted:
            return advance(rec, "denied", f"{p.allowed.rule}: {p.allowed.reason}")
        # The plan's clarify rules are about a prompt a model would read; none reads this one.
        advance(rec, "running", f"inverting what {old.run_id} applied onto {commit[:12]}")
        artifacts: dict[str, bytes] = {}
        parts: list[ProposalPart] = []
        try:
            for part, applied in _applied_parts(old):
                family = family_named(self.families, part.family)
                ctx = InverseContext(
                    record=old,
                    applied=applied,
                    onto=commit,
                    repo=self.repo,
                    job=req.job,
                    artifact=self.store.artifact,
                    plan=p,
                    policy=policy,
                    environ=os.environ,
                )
                inverse = family.inverse(part, ctx)
                if inverse.irreversible:
                    rec.irreversible.append(inverse.irreversible)
                parts += inverse.parts
                rec.egress += [egress_entry(e.event, p, by=e.by) for e in inverse.egress]
                for a in inverse.artifacts:
                    self.store.keep(rec, a, artifacts)
        except AgentplaneError as exc:
            return advance(rec, "failed", f"cannot roll back {old.run_id}: {exc}", artifacts)
        rec.proposal = Proposal.of(parts, []) if parts else None
        rec.final_message = _message(old, rec)
        if rec.proposal is None:
            return advance(rec, "completed", _nothing(old, rec), artifacts)
        notes = []
        if p.verify:
            # Shown, never blocking: the job's checks accept its change, and the state
            # before that change may well have failed them (the demo's failing test).
            try:
                rec.verification = self.proposer.verify(rec, p, artifacts)
            except AgentplaneError as exc:
                return advance(rec, "failed", f"verification: {exc}", artifacts)
            if failed := [v.command for v in rec.verification if not v.passed]:
                notes.append(f"the job's checks fail on the undone tree: {', '.join(failed)}")
        notes += [f"irreversible: {why}" for why in rec.irreversible]
        gates = "; ".join(
            f"{g.action}: {g.approvers.describe()} ({g.rule})" for g in open_gates(rec)
        )
        reason = "; ".join([gates or "no gate opens", *notes])
        return advance(rec, "awaiting_approval", reason, artifacts)


def _applied_parts(old: RunRecord) -> list[tuple[ProposalPart, AppliedPart | None]]:
    """Each part the run applied, with what apply recorded for it (parts of one family
    are applied in order, one AppliedPart each)."""
    if old.proposal is None or old.state != "applied":
        return []
    pending: dict[str, list[AppliedPart]] = {}
    for a in old.applied or []:
        pending.setdefault(a.family, []).append(a)
    out = []
    for part in old.proposal.parts:
        queue = pending.get(part.family, [])
        out.append((part, queue.pop(0) if queue else None))
    return out


def _message(old: RunRecord, rec: RunRecord) -> str:
    reverts = [
        str(p.detail["reverts"]) for p in (rec.proposal.parts if rec.proposal else [])
        if "reverts" in p.detail
    ]  # fmt: skip
    lines = [f"Roll back agentplane run {old.run_id}."]
    lines += [f"This reverts commit {c}." for c in reverts]
    lines += [f"Not undone: {why}" for why in rec.irreversible]
    return "\n".join(lines)


def _nothing(old: RunRecord, rec: RunRecord) -> str:
    if rec.irreversible:
        return f"nothing could be undone: {'; '.join(rec.irreversible)}"
    if old.state == "completed":
        tools = sorted({c.tool for c in old.tool_calls})
        used = f" (its tool calls: {', '.join(tools)})" if tools else ""
        return (
            f"nothing to undo: run {old.run_id} changed nothing; it only read{used} and "
            "proposed no change"
        )
    return f"nothing to undo: what run {old.run_id} applied changed no file"
