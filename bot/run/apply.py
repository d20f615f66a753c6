"""Apply: carry out exactly the proposal that was approved, part by part.

Deterministic: the model is never asked again, and each family applies its own part
from the record and its artifacts. Parts go in the engine's family order
(bot.families.registry says why).
"""

from __future__ import annotations

import os

from bot.adapters.git import GitRepo
from bot.core.errors import AgentplaneError, RunError
from bot.core.record import AppliedPart, Proposal, ProposalPart, RunRecord
from bot.families.interface import (
    ApplyContext,
    ApplyRefused,
    Artifact,
    ToolFamily,
    family_named,
)
from bot.run import killpoints
from bot.run.inputs import Inputs
from bot.run.propose import egress_entry
from bot.run.storage import RunStore

BOT_IDENTITY = ("agentplane", "agentplane@localhost")


class Applier:
    def __init__(
        self, repo: GitRepo, families: tuple[ToolFamily, ...], inputs: Inputs, store: RunStore
    ) -> None:
        self.repo = repo
        self.families = families
        self.inputs = inputs
        self.store = store

    def verified(self, rec: RunRecord) -> Proposal:
        """The stored proposal, checked against its digest, every part's family known."""
        assert rec.proposal is not None
        proposal = rec.proposal
        # The approval binds to this digest: whatever is applied must be what was reviewed.
        if proposal.expected_digest() != proposal.digest:
            raise RunError(f"run {rec.run_id}: the stored proposal does not match its digest")
        for part in proposal.parts:
            family_named(self.families, part.family)
        return proposal

    def apply(self, rec: RunRecord, proposal: Proposal) -> RunRecord:
        """Apply each part; the first refusal ends the run as failed with its reason."""
        artifacts: dict[str, bytes] = {}
        p = rec.plan
        approvers = ", ".join(a.approver for a in rec.approvals if a.counted)
        message = (
            f"agentplane: {rec.job_name} ({rec.run_id})\n\n{rec.final_message or ''}\n\n"
            f"Agentplane-Run: {rec.run_id}\n"
            f"Agentplane-Proposal: {proposal.digest}\n"
            f"Approved-by: {approvers}\n"
        )

        def keep(a: Artifact) -> None:
            self.store.keep(rec, a, artifacts)

        ctx = ApplyContext(
            record=rec,
            plan=p,
            policy=self.inputs.policy(),  # as it stands now: protections added since count
            repo=self.repo,
            environ=os.environ,
            artifact=self.store.artifact,
            artifact_named=lambda name: self.store.named(rec, name),
            message=self.store.redactor(message),  # the model's final message is hostile text
            identity=BOT_IDENTITY,
            at=rec.approvals[-1].at,
            keep=keep,
            log_egress=lambda e: rec.egress.append(
                egress_entry(e.event, p, by=e.by or "", phase="apply")
            ),
        )
        done: list[AppliedPart] = []
        for part in self._ordered(proposal):
            try:
                applied = family_named(self.families, part.family).apply(part, ctx)
            except ApplyRefused as exc:
                return self.store.advance(rec, "failed", str(exc), artifacts)
            except AgentplaneError as exc:
                return self.store.advance(rec, "failed", f"apply failed: {exc}", artifacts)
            done.append(applied)
            rec.applied = list(done)
            killpoints.reached("apply")  # applied, not yet recorded
        return self.store.advance(rec, "applied", "; ".join(a.summary for a in done), artifacts)

    def unsafe_to_repeat(self, rec: RunRecord) -> str | None:
        """Why applying this run again after a crash could act twice, or None."""
        for part in rec.proposal.parts if rec.proposal else []:
            family = next((f for f in self.families if f.name == part.family), None)
            if family is None:
                return f"while applying a {part.family!r} part this engine does not know"
            if why := family.unsafe_to_repeat(part):
                return why
        return None

    def _ordered(self, proposal: Proposal) -> list[ProposalPart]:
        rank = {f.name: i for i, f in enumerate(self.families)}
        return sorted(proposal.parts, key=lambda part: rank.get(part.family, len(rank)))
