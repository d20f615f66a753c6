"""The one path every front door takes: plan -> propose -> evidence -> gate -> apply -> record.

This module is the lifecycle only: which step follows which, and the gates between
them. The steps live beside it: inputs (policy, config, job, plan), propose (the
agent in its sandbox), apply (what was approved, part by part) and storage (the
audit branch). Doors build a RunRequest and collect approvals their own way. Each
state change is appended to the audit branch, so a run interrupted anywhere resumes
from its last record with nothing lost.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.adapters.audit.log import AuditLog
from bot.adapters.git import GitRepo
from bot.adapters.model.turn import litellm_client, script_from_transcript
from bot.adapters.sandbox import SandboxBackend
from bot.core.errors import CancelRefused, NotAwaitingApproval, RunError
from bot.core.gate import approval_facts, open_gates
from bot.core.gates import (
    STALE_RULES,
    Outcome,
    OutcomeKind,
    ReviewTiming,
    RunParty,
    approval,
    may_answer,
    pending,
)
from bot.core.identity import Directory, Resolver, normalise
from bot.core.job import BUILTIN_TOOLS, Job
from bot.core.plan import GatePlan, Plan
from bot.core.policy import Policy, RepoConfig
from bot.core.record import (
    PATCH,
    Approval,
    Clarification,
    DoorRef,
    Proposal,
    ReplayModel,
    RunRecord,
    State,
)
from bot.core.render import Section
from bot.core.request import Door, RunRequest
from bot.families.ask.tools import answer_text
from bot.families.interface import EvidenceContext, ToolFamily, implied_actions
from bot.families.registry import default_families, tool_names
from bot.run import killpoints
from bot.run.agent import Model
from bot.run.apply import Applier
from bot.run.inputs import Inputs, job_path
from bot.run.propose import Proposer, Resume
from bot.run.redact import Redactor
from bot.run.rollback import Rollbacks
from bot.run.storage import RunStore

CANCELLABLE = frozenset({"awaiting_approval", "needs_clarification"})
"""States that wait on people, so a person may end them; a run in flight is its process's."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Engine:
    def __init__(
        self,
        repo: GitRepo,
        backend: SandboxBackend,
        model_factory: Callable[[dict[str, Any]], Model] = litellm_client,
        now: Callable[[], str] = utc_now,
        families: Sequence[ToolFamily] | None = None,
    ) -> None:
        self.repo = repo
        self.families: tuple[ToolFamily, ...] = tuple(
            default_families() if families is None else families
        )
        """Tool families, in order (bot.families.registry); a test may add its own."""
        self.now = now
        self.audit = AuditLog(repo.root)
        self.store = RunStore(self.audit, Redactor.for_host(os.environ), now)
        names = tuple(dict.fromkeys([*BUILTIN_TOOLS, *tool_names(self.families)]))
        self.inputs = Inputs(repo, self.store, names, implied_actions(self.families))
        self.proposer = Proposer(
            repo, backend, model_factory, self.families, self.inputs, self.store
        )
        self.applier = Applier(repo, self.families, self.inputs, self.store)
        self.rollbacks = Rollbacks(repo, self.families, self.inputs, self.store, self.proposer)

    @property
    def redactor(self) -> Redactor:
        """The one redactor for records, evidence, commit messages; doors widen it with
        their own secrets (redactor.with_secrets), policy() with what routing names."""
        return self.store.redactor

    @redactor.setter
    def redactor(self, redactor: Redactor) -> None:
        self.store.redactor = redactor

    @property
    def resolve_login(self) -> Resolver | None:
        return self.inputs.resolve_login

    @resolve_login.setter
    def resolve_login(self, resolve: Resolver | None) -> None:
        self.inputs.resolve_login = resolve

    # -- inputs (bot.run.inputs) -----------------------------------------------------------

    def policy(self) -> Policy:
        return self.inputs.policy()

    def directory(self, policy: Policy) -> Directory:
        return self.inputs.directory(policy)

    def config(self, commit: str) -> RepoConfig | None:
        return self.inputs.config(commit)

    def load_job(self, name_or_path: str, commit: str) -> tuple[str, Job]:
        return self.inputs.load_job(name_or_path, commit)

    def request(
        self,
        job: str,
        *,
        prompt: str | None = None,
        door: Door = "cli",
        requester: str | None = None,
        requester_name: str = "",
        commit: str | None = None,
    ) -> RunRequest:
        return self.inputs.request(
            job,
            prompt=prompt,
            door=door,
            requester=requester,
            requester_name=requester_name,
            commit=commit,
        )

    def plan(self, req: RunRequest) -> Plan:
        return self.inputs.plan(req)

    # -- the path -------------------------------------------------------------------------

    def start(
        self,
        req: RunRequest,
        door_ref: DoorRef | None = None,
        model_override: dict[str, Any] | None = None,
        answers: Sequence[str] = (),
        plan_only: bool = False,
    ) -> RunRecord:
        """Plan and propose. model_override replaces the routed model and answers are the
        ask tool's recorded answers (replays only). plan_only (drift) runs the job the
        same way but ends completed with what it would change: nothing to approve."""
        policy = self.policy()  # read from git once per run step, not per use
        p = self.inputs.plan(req, policy)
        rec = RunRecord(
            door_ref=door_ref,
            run_id=f"{req.job.name}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}",
            job_name=req.job.name,
            job_path=req.job_path,
            job_digest=p.job_digest,
            repo=req.repo,
            commit=req.commit,
            door=req.door,
            requester=req.requester,
            requester_name=req.requester_name,
            prompt=p.prompt,
            plan_only=plan_only,
            plan=p,
            tools_granted=p.granted("tool"),
            model=p.model,
        )
        self._advance(rec, "planned", f"planned with policy from {self.repo.default_branch()}")
        killpoints.reached("plan")
        if not p.allowed.granted:
            return self._advance(rec, "denied", f"{p.allowed.rule}: {p.allowed.reason}")
        if p.clarification is not None:
            return self._advance(rec, "needs_clarification", p.clarification)
        if model_override is not None:
            rec.model_override = ReplayModel.model_validate(model_override)
        return self.proposer.propose(rec, p, policy, answers=answers)

    def replay(self, run_id: str, script_dir: Path | None = None) -> RunRecord:
        """Re-run a recorded run against its recorded model turns (never a live model).

        A replay is a check, not a change: it runs plan-only, so it ends `completed` with
        its proposal to compare and never waits for approval. Its script goes to script_dir
        if given, else to a temporary directory that is gone when the replay ends (nothing
        is left in the user's repository)."""
        old = self.load(run_id)
        ref = old.artifact("transcript.json")
        if ref is None:
            raise RunError(f"run {run_id} has no transcript to replay")
        script = script_from_transcript(json.loads(self.audit.artifact(ref.sha256)))
        if script_dir is None:
            with tempfile.TemporaryDirectory(prefix="agentplane-replay-") as tmp:
                return self._replay(old, script, Path(tmp))
        return self._replay(old, script, script_dir)

    def _replay(self, old: RunRecord, script: dict[str, Any], script_dir: Path) -> RunRecord:
        name = f"replay-{old.run_id}"
        (script_dir / f"{name}.yaml").write_text(yaml.safe_dump(script, sort_keys=False))
        req = self.request(old.job_path, prompt=old.prompt, commit=old.commit)
        override = {"model": f"scripted/{name}", "api_base": str(script_dir.resolve())}
        answers = [answer_text(c.by, c.answer) for c in old.clarifications]
        return self.start(req, model_override=override, answers=answers, plan_only=True)

    def rollback(
        self,
        run_id: str,
        requester: str | None = None,
        onto: str | None = None,
        door: Door = "cli",
        door_ref: DoorRef | None = None,
    ) -> RunRecord:
        """A new run whose proposal undoes what run_id applied (bot.run.rollback); it is
        gated and applied like any other, through decide()."""
        return self.rollbacks.start(self.load(run_id), requester, onto, door, door_ref)

    def answer(self, run_id: str, who: str, text: str) -> RunRecord:
        """Answer the run's open question and resume it where it stopped."""
        rec = self.load(run_id)
        who = normalise(who)
        if rec.state != "needs_clarification" or rec.question is None:
            raise RunError(f"run {run_id} is {rec.state}; it has no open question")
        policy = self.policy()
        directory = self.directory(policy)
        if not may_answer(policy, directory, who, RunParty(rec.requester, tuple(open_gates(rec)))):
            raise RunError(f"{who} may not answer for run {run_id}: ask its requester")
        transcript = rec.artifact("transcript.json")
        messages = json.loads(self.audit.artifact(transcript.sha256)) if transcript else []
        messages.append(
            {
                "role": "tool",
                "tool_call_id": rec.question.call_id,
                "content": answer_text(who, text),
            }
        )
        rec.clarifications.append(
            Clarification(question=rec.question.text, answer=text, by=who, at=self.now())
        )
        rec.question = None
        self._advance(rec, "planned", f"{who} answered")
        p = rec.plan
        return self.proposer.propose(rec, p, policy, Resume(messages, rec.proposal))

    def decide(
        self,
        run_id: str,
        approver: str,
        decision: Literal["approve", "deny"],
        *,
        reviewed_commit: str | None = None,
        live_head: Callable[[], str] | None = None,
        door: str = "cli",
        name: str = "",
        reviewed_digest: str | None = None,
        timing: ReviewTiming | None = None,
    ) -> Outcome:
        """Record one person's decision; apply once every gate on the proposal is satisfied.

        A decision that does not count is a normal outcome (a PR review from someone who is
        not an approver), returned, not raised; NotAwaitingApproval is the one error.
        reviewed_commit is the commit the reviewer saw (a PR review's commit_id); live_head
        re-reads the branch head at the moment of apply, so a push after approval wins.
        approver is an identity key (bot.core.identity); name is how the door shows that person.
        timing is when the door says the decision was made against when its evidence was
        shown (a PR review): a decision that cannot be shown to come after does not count.
        """
        approver = normalise(approver)
        rec = self._awaiting(run_id)
        proposal = self.applier.verified(rec)
        gates = open_gates(rec)
        policy = self.policy()
        directory = self.directory(policy)
        check = approval(
            approval_facts(
                rec,
                approver,
                reviewed_commit or rec.commit,
                gates,
                policy,
                directory,
                door,
                reviewed_digest,
                timing,
                self.inputs.signed_problem(policy, door),
            )
        )
        assert rec.proposal is not None  # _awaiting: a run waiting for approval has one
        rec.approvals.append(
            Approval(
                approver=approver,
                name=name,
                door=door,
                decision=decision,
                commit=reviewed_commit or rec.commit,
                job_digest=rec.job_digest,
                proposal_digest=rec.proposal.digest,
                at=self.now(),
                counted=check.ok,
                reason=_counted(directory) if check.ok else check.reason,
            )
        )
        if not check.ok:
            rec = self._advance(
                rec, "awaiting_approval", f"{decision} by {approver} not counted: {check.reason}"
            )
            kind: OutcomeKind = "stale" if check.rule in STALE_RULES else "not_counted"
            return Outcome(kind, rec, check.reason, check.rule)
        if decision == "deny":
            return Outcome("rejected", self._advance(rec, "rejected", f"denied by {approver}"), "")
        return self._settle(rec, proposal, gates, policy, directory, live_head)

    def apply_approved(self, run_id: str, live_head: Callable[[], str] | None = None) -> Outcome:
        """Apply a run whose counted approvals already meet every gate (a door's `apply`
        command, e.g. after policy on the default branch lowered a gate); records nothing
        when a gate is still open, and says which in the outcome (`pending`)."""
        rec = self._awaiting(run_id)
        proposal = self.applier.verified(rec)
        gates = open_gates(rec)
        policy = self.policy()
        directory = self.directory(policy)
        open_now = pending(gates, _approvers(rec), rec.requester, policy, directory)
        if open_now:
            return Outcome("pending", rec, "; ".join(c.reason for c in open_now), "", open_now)
        return self._settle(rec, proposal, gates, policy, directory, live_head)

    def _awaiting(self, run_id: str) -> RunRecord:
        rec = self.load(run_id)
        if rec.state != "awaiting_approval" or rec.proposal is None:
            raise NotAwaitingApproval(f"run {run_id} is {rec.state}, not awaiting approval")
        return rec

    def _settle(
        self,
        rec: RunRecord,
        proposal: Proposal,
        gates: list[GatePlan],
        policy: Policy,
        directory: Directory,
        live_head: Callable[[], str] | None,
    ) -> Outcome:
        """After a counted approval: wait for the open gates, or apply on the live head."""
        approvers = _approvers(rec)
        open_now = pending(gates, approvers, rec.requester, policy, directory)
        if open_now:
            reason = "; ".join(c.reason for c in open_now)
            return Outcome(
                "pending", self._advance(rec, "awaiting_approval", reason), reason, "", open_now
            )
        if live_head is not None and (head := live_head()) != rec.commit:
            reason = f"stale: the head moved to {head[:12]} after approval"
            return Outcome("cancelled", self._advance(rec, "cancelled", reason), reason)
        self._advance(rec, "approved", f"approved by {', '.join(approvers)}")
        killpoints.reached("approval-seen")  # the approval is recorded, nothing applied
        done = self.applier.apply(rec, proposal)
        kind: OutcomeKind = "applied" if done.state == "applied" else "failed"
        return Outcome(kind, done, done.transitions[-1].reason)

    def withdraw(self, run_id: str, approver: str, reason: str) -> RunRecord:
        """A dismissed review: that person's approvals stop counting."""
        rec = self.load(run_id)
        if rec.state != "awaiting_approval":
            return rec
        approver = normalise(approver)
        for a in rec.approvals:
            if a.approver == approver and a.counted:
                a.counted, a.reason = False, reason
        return self._advance(rec, "awaiting_approval", f"{approver}: {reason}")

    def cancel(self, run_id: str, reason: str) -> RunRecord:
        rec = self.load(run_id)
        if rec.state in CANCELLABLE:
            return self._advance(rec, "cancelled", reason)
        return rec

    def cancel_by(self, run_id: str, who: str, note: str = "") -> RunRecord:
        """A person ends a run that waits on people: its requester withdraws it, one of its
        approvers cancels it (recorded as `withdrawn by` or `cancelled by`, and why).
        CancelRefused for anyone else, or for a run that has ended or is in flight."""
        rec = self.load(run_id)
        who = normalise(who)
        if rec.state not in CANCELLABLE:
            raise CancelRefused(
                f"run {run_id} is {rec.state}: only a run awaiting approval or an answer "
                "can be cancelled"
            )
        policy = self.policy()
        directory = self.directory(policy)
        party = RunParty(rec.requester, tuple(open_gates(rec)))
        if not may_answer(policy, directory, who, party):
            raise CancelRefused(f"{who} may not cancel run {run_id}: ask its requester")
        verb = "withdrawn" if directory.same(who, rec.requester) else "cancelled"
        return self._advance(rec, "cancelled", f"{verb} by {who}" + (f": {note}" if note else ""))

    def is_requester(self, run_id: str, who: str) -> bool:
        """Whether who asked for the run, by the one identity rule (bot.core.identity)."""
        rec = self.load(run_id)
        return self.directory(self.policy()).same(normalise(who), rec.requester)

    def recover(self) -> list[RunRecord]:
        """Resolve the runs whose process died in flight (killed, crashed, host rebooted).

        An approved code proposal is applied: apply is deterministic and never asks the model.
        A held browser request may or may not have left: at most once, so the run fails as
        "outcome unknown" and a human checks the site. Anything else fails with the reason.
        """
        resolved = []
        for rec in self.stale_runs():
            died = f"the process carrying it ({rec.owner or 'before owners were recorded'}) died"
            if rec.state == "approved" and (unsafe := self.applier.unsafe_to_repeat(rec)):
                rec = self._advance(rec, "failed", f"outcome unknown: {died} {unsafe}")
            elif rec.state == "approved":
                self._advance(rec, "approved", f"{died}; applying again (deterministic)")
                rec = self.applier.apply(rec, self.applier.verified(rec))
            else:
                models, tools = self.store.fold_journal(rec)
                kept = f" (kept from its journal: {models} model calls, {tools} tool calls)"
                reason = f"{died} while {rec.state}; run it again"
                rec.failure = "crashed"
                rec = self._advance(rec, "failed", reason + (kept if models or tools else ""))
            resolved.append(rec)
        return resolved

    # -- records (bot.run.storage) --------------------------------------------------------

    def stale_runs(self) -> list[RunRecord]:
        """Runs in flight whose process died (read only: `audit verify` reports them)."""
        self._ensure_trusted()
        return self.store.stale()

    def load(self, run_id: str) -> RunRecord:
        """The run's newest record, verified first: chain, signatures by policy's signers,
        and the local anchor (AuditError otherwise); nothing acts on an unverified record."""
        self._ensure_trusted()
        return self.store.load(run_id)

    def patch(self, rec: RunRecord) -> str:
        """The proposal's file patch (its parts of kind "patch"), or ""."""
        if rec.proposal is None:
            return ""
        return "".join(self.audit.artifact(p.digest).decode() for p in rec.proposal.of_kind(PATCH))

    def evidence(self, rec: RunRecord, links: Mapping[str, str] | None = None) -> list[Section]:
        """Each family's evidence sections, in family order, from the record and artifacts."""
        ctx = EvidenceContext(
            record=rec,
            artifact_named=lambda name: self.store.named(rec, name),
            artifacts=[
                (a.name, functools.partial(self.audit.artifact, a.sha256)) for a in rec.artifacts
            ],
            links=dict(links or {}),
        )
        return [section for f in self.families for section in f.evidence(ctx)]

    def evidence_sections(
        self, rec: RunRecord, links: Mapping[str, str] | None = None
    ) -> list[str]:
        """The families' sections as terminal text (for renderers that take strings)."""
        return [s.body_text for s in self.evidence(rec, links)]

    def _ensure_trusted(self) -> None:
        if not self.store.trusted:
            self.policy()

    def _advance(
        self,
        rec: RunRecord,
        state: State,
        reason: str,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> RunRecord:
        return self.store.advance(rec, state, reason, artifacts)


def _approvers(rec: RunRecord) -> list[str]:
    """Who approved the run's current proposal, of the decisions that counted."""
    digest = rec.proposal.digest if rec.proposal else None
    return [
        a.approver
        for a in rec.approvals
        if a.counted and a.decision == "approve" and a.proposal_digest == digest
    ]


def _counted(directory: Directory) -> str:
    """ "counted", and which policy logins were resolved to which GitHub ids on the way."""
    resolved = ", ".join(f"{login} = {key}" for login, key in sorted(directory.resolved.items()))
    return f"counted (resolved {resolved})" if resolved else "counted"


__all__ = ["Engine", "job_path"]
