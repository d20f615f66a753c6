"""The one path every front door takes: plan -> propose -> evidence -> gate -> apply -> record.

Doors build a RunRequest and collect approvals their own way; everything else
is here, once. Each state change is appended to the audit branch, so a run
interrupted anywhere resumes from its last record with nothing lost.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from bot.adapters.audit.log import AuditLog
from bot.adapters.audit.trust import Trust
from bot.adapters.git import GitRepo
from bot.adapters.model.turn import ModelTurn, litellm_client, script_from_transcript
from bot.adapters.sandbox import Limits, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.backends import get_backend
from bot.adapters.sandbox.spec import UNREACHABLE, EgressEvent
from bot.adapters.sandbox.workspace import writable_dirs
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.errors import AgentplaneError, NotAwaitingApproval, RunError, ValidationFailed
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
from bot.core.job import BUILTIN_TOOLS, Job, known_tools, parse_job
from bot.core.plan import GatePlan, Plan, plan
from bot.core.policy import Policy, RepoConfig, merge_policy, parse_config
from bot.core.record import (
    IN_FLIGHT,
    PATCH,
    SECRET_SCAN,
    AppliedPart,
    Approval,
    ArtifactRef,
    Clarification,
    DoorRef,
    ModelCall,
    Proposal,
    ProposalPart,
    Question,
    RunRecord,
    ToolCall,
)
from bot.core.render import Section
from bot.core.request import Door, RunRequest
from bot.families.ask.tools import answer_text
from bot.families.interface import (
    ApplyContext,
    ApplyRefused,
    Artifact,
    EvidenceContext,
    Note,
    RestoreContext,
    RunContext,
    Staged,
    ToolFamily,
    UnknownFamily,
)
from bot.families.registry import default_families, tool_names
from bot.run.agent import Model, Spent, opening, run_agent
from bot.run.broker import Broker
from bot.run.owner import is_dead, this_process
from bot.run.proposal_checks import (
    check_proposal,
    tree_usage,
    workspace_problem,
)
from bot.run.redact import Redactor, host_secrets
from bot.run.toolbox import Toolbox

JOBS_DIR = ".agentplane/jobs"
CONFIG_PATH = ".agentplane/config.yaml"
BOT_IDENTITY = ("agentplane", "agentplane@localhost")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_path(name_or_path: str) -> str:
    if name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    return f"{JOBS_DIR}/{name_or_path}.yaml"


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
        # `documents` stays a valid name ahead of its family, as it was before families.
        self.tool_names = tuple(dict.fromkeys([*BUILTIN_TOOLS, *tool_names(self.families)]))
        self.audit = AuditLog(repo.root)
        self.backend = backend
        self.model_factory = model_factory
        self.now = now
        self.redactor = Redactor.for_host(os.environ)
        """The one redactor for records, evidence, commit messages; doors widen it with
        their own secrets (redactor.with_secrets), policy() with what routing names."""
        self._trusted = False
        self.resolve_login: Resolver | None = None
        """Set by a door that knows GitHub: policy's logins become numeric ids through it."""

    def directory(self, policy: Policy) -> Directory:
        return policy.directory(self.resolve_login)

    # -- inputs ---------------------------------------------------------------------------

    def policy(self) -> Policy:
        """Policy from the default branch only: a feature branch cannot grant itself more."""
        files = self.repo.read_dir(self.repo.policy_ref(), "policies", (".yaml", ".yml"))
        with known_tools(self.tool_names):  # policy may grant any tool this engine serves
            policy = merge_policy(files)
        # Model keys routing names (os.environ/NAME), DSNs policy's connections name.
        self.redactor = self.redactor.with_secrets(host_secrets(os.environ, policy))
        # Records are read only through policy's signers (plus this host's own key).
        audit = policy.audit
        self.audit.trust(Trust.from_policy(audit.signers, audit.require_signatures_from))
        self._trusted = True
        return policy

    def signed_problem(self, policy: Policy, door: str) -> str | None:
        """Why an approval from this door is not signed as policy asks, or None."""
        if door not in policy.approvals.signed:
            return None
        own = self.audit.own_key()
        listed = None if own is None else Trust.from_policy(policy.audit.signers).lookup(own[1])
        if listed is None:
            return (
                f"{door} approvals must be signed by a key policy lists "
                f"({policy.rule('approvals.signed')}); this host's key is not in audit.signers "
                "(see `agentplane audit key`)"
            )
        if listed.revoked_at is not None and listed.revoked_at <= datetime.now(UTC):
            return f"this host's signing key {listed.name!r} was revoked {listed.revoked_at}"
        return None

    def config(self, commit: str) -> RepoConfig | None:
        # Read at the run's own commit: a config can only narrow, so a branch may tighten it.
        text = self.repo.read_file(commit, CONFIG_PATH)
        if text is None:
            return None
        with known_tools(self.tool_names):
            return parse_config(CONFIG_PATH, text)

    def load_job(self, name_or_path: str, commit: str) -> tuple[str, Job]:
        path = job_path(name_or_path)
        text = self.repo.read_file(commit, path)
        if text is None:
            raise RunError(
                f"{path} is not in commit {commit[:12]}: runs are bound to a commit, "
                "so commit the job file first"
            )
        return path, parse_job(path, text, self.tool_names)

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
        commit = commit or self.repo.head_commit()
        path, parsed = self.load_job(job, commit)
        return RunRequest(
            job=parsed,
            job_path=path,
            prompt=prompt,
            door=door,
            requester=normalise(requester or self.repo.identity()),
            requester_name=requester_name,
            repo=self.repo.root.name,
            commit=commit,
        )

    def plan(self, req: RunRequest) -> Plan:
        policy = self.policy()
        return plan(req, policy, self.config(req.commit), self.directory(policy))

    # -- the path -------------------------------------------------------------------------

    def start(
        self,
        req: RunRequest,
        door_ref: DoorRef | None = None,
        model_override: dict[str, Any] | None = None,
        answers: Sequence[str] = (),
    ) -> RunRecord:
        """Plan and propose. model_override replaces the routed model and answers are the
        ask tool's recorded answers (replays only)."""
        policy = self.policy()  # read from git once per run step, not per use
        p = plan(req, policy, self.config(req.commit), self.directory(policy))
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
            plan=p.model_dump(mode="json"),
            tools_granted=p.granted("tool"),
            model=p.model.model_dump(mode="json") if p.model else None,
        )
        self._advance(rec, "planned", f"planned with policy from {self.repo.default_branch()}")
        if not p.allowed.granted:
            return self._advance(rec, "denied", f"{p.allowed.rule}: {p.allowed.reason}")
        if p.clarification is not None:
            return self._advance(rec, "needs_clarification", p.clarification)
        if model_override is not None:
            rec.model = {**(rec.model or {}), "override": model_override}
        return self._propose(rec, p, policy, answers=answers)

    def replay(self, run_id: str, script_dir: Path) -> RunRecord:
        """Re-run a recorded run against its recorded model turns (never a live model)."""
        old = self.load(run_id)
        ref = old.artifact("transcript.json")
        if ref is None:
            raise RunError(f"run {run_id} has no transcript to replay")
        script = script_from_transcript(json.loads(self.audit.artifact(ref.sha256)))
        name = f"replay-{run_id}"
        (script_dir / f"{name}.yaml").write_text(yaml.safe_dump(script, sort_keys=False))
        req = self.request(old.job_path, prompt=old.prompt, commit=old.commit)
        override = {"model": f"scripted/{name}", "api_base": str(script_dir.resolve())}
        answers = [answer_text(c.by, c.answer) for c in old.clarifications]
        return self.start(req, model_override=override, answers=answers)

    def _propose(
        self,
        rec: RunRecord,
        p: Plan,
        policy: Policy,
        resume: Resume | None = None,
        answers: Sequence[str] = (),
    ) -> RunRecord:
        """Run the agent in the sandbox and stage what it changed; resumable after a question."""
        assert p.model is not None and p.prompt is not None  # runnable plans have both
        why = f"model group {p.model.model_class} ({p.model.rule})"
        self._advance(rec, "running", "resumed with an answer" if resume else why)
        started = time.perf_counter()
        writes = p.granted("write")
        domains = tuple(p.granted("network"))
        with tempfile.TemporaryDirectory(prefix="agentplane-ws-") as tmp:
            # The mkdtemp dir itself: its parent (/tmp) is traversable by the sandbox uid.
            ws = Path(tmp)
            try:
                self.repo.export(rec.commit, ws)
                if resume is not None and resume.staged is not None:
                    self._restore(resume.staged, ws)
                # One byte over the quota, so a file cut by RLIMIT_FSIZE is still over it.
                fsize = policy.quotas.largest_file_bytes + 1
                limits = Limits(
                    wall_seconds=min(120.0, (p.budget.minutes or 10) * 60), file_size_bytes=fsize
                )
                # No bytecode caches: they would pollute the proposal, and a .pyc written in
                # the same second as a same-size edit is trusted over the new source.
                spec = SandboxSpec(
                    ws,
                    tuple(writes),
                    limits=limits,
                    env=(("PYTHONDONTWRITEBYTECODE", "1"),),
                    network="allowlist" if domains else "none",
                    allow_domains=domains,
                    egress_private_ok=p.private_networks if domains else (),
                )
                scope_dirs = writable_dirs(writes) if writes else ()
                before = tree_usage(ws, scope_dirs)

                def check_workspace() -> None:
                    grown = workspace_problem(
                        before, tree_usage(ws, scope_dirs), policy.quotas, policy.rule("quotas")
                    )
                    if grown:
                        raise RunError(grown)

                backend = get_backend(p.backend) if p.backend else self.backend
                config = {
                    **self.model_config(policy, p, rec),
                    "metadata": {"agentplane_run": rec.run_id, "agentplane_root": str(ws)},
                }
                job = self.load_job(rec.job_path, rec.commit)[1]
                kit: Toolbox | None = None
                try:
                    with backend.start(spec) as box:
                        ctx = RunContext(
                            plan=p,
                            policy=policy,
                            job=job,
                            job_path=rec.job_path,
                            commit=rec.commit,
                            repo=self.repo,
                            workspace=ws,
                            sandbox=box,
                            vet=self._vet(policy),
                            check_workspace=check_workspace,
                            environ=os.environ,
                            answers=answers,
                        )
                        kit = Toolbox.open(self.families, ctx)
                        broker = Broker(
                            p,
                            kit.tools,
                            rec.tool_calls.append,
                            kit.redact,
                            already=len(rec.tool_calls),
                        )
                        outcome = run_agent(
                            resume.messages if resume else opening(p.prompt, broker),
                            broker,
                            self.model_factory(config),
                            p.budget,
                            lambda t: self._model_call(rec, p, t),
                            _spent(rec),
                        )
                    rec.egress += [_egress(e, p) for e in box.egress_log()]
                    # After the sandbox is gone: the workspace is final when it is diffed.
                    staged, problem = kit.finish()
                finally:
                    if kit is not None:
                        kit.close()
                rec.egress += [
                    _egress(e.event, p, **({"by": e.by} if e.by else {}))
                    for _, s in staged
                    for e in s.egress
                ]
                if problem is not None:
                    raise problem
            except AgentplaneError as exc:
                rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
                return self._advance(rec, "failed", str(exc))
        rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
        try:
            artifacts = self._stage(rec, staged, outcome.messages)
        except AgentplaneError as exc:  # an artifact that cannot be checked for secrets
            return self._advance(rec, "failed", str(exc))
        if outcome.status == "needs_clarification":
            rec.question = Question(
                text=outcome.message, call_id=outcome.question_call or "", asked_at=self.now()
            )
            return self._advance(
                rec, "needs_clarification", f"the agent asks: {outcome.message}", artifacts
            )
        rec.final_message = outcome.message
        if outcome.status == "budget_exceeded":
            return self._advance(rec, "budget_exceeded", outcome.message, artifacts)
        if rec.proposal is None:
            return self._advance(rec, "completed", "no changes proposed", artifacts)
        gates = "; ".join(
            f"{g.action}: {g.approvers.describe()} ({g.rule})" for g in open_gates(rec)
        )
        return self._advance(rec, "awaiting_approval", gates, artifacts)

    def model_config(self, policy: Policy, p: Plan, rec: RunRecord) -> dict[str, Any]:
        override = (rec.model or {}).get("override")
        if isinstance(override, dict):
            return dict(override)
        assert p.model is not None
        return policy.models.router_config(p.model.model_class)

    def _vet(self, policy: Policy) -> Callable[[str], list[Note]]:
        """The control plane's checks on a patch before it is stored: ProposalRefused for a
        secret it holds or a quota; a note per line that only looks like a token."""

        def vet(patch: str) -> list[Note]:
            flags = check_proposal(patch, self.redactor, policy.quotas, policy.rule("quotas"))
            return [
                Note(
                    tool=SECRET_SCAN,
                    arguments={"path": f.path, "line": f.line},
                    decision="allow",
                    rule="agentplane#proposal_checks",
                    reason=f.describe(),
                    ok=True,
                )
                for f in flags
            ]

        return vet

    def _restore(self, staged: Proposal, ws: Path) -> None:
        """A paused run's staged parts, back in its fresh workspace (before the sandbox)."""
        ctx = RestoreContext(repo=self.repo, workspace=ws, artifact=self.audit.artifact)
        for part in staged.parts:
            self._family(part.family).restore(part, ctx)

    def _stage(
        self, rec: RunRecord, staged: Sequence[tuple[ToolFamily, Staged]], messages: Any
    ) -> dict[str, bytes]:
        """This step's artifacts, the notes the families left, and the proposal."""
        artifacts: dict[str, bytes] = {}

        def put(a: Artifact) -> None:
            data = self._redacted(a)
            rec.artifacts = [x for x in rec.artifacts if x.name != a.name]
            artifacts[self._artifact(rec, a.name, data, a.media_type)] = data

        # A resumed run stages everything again: each note is recorded once.
        seen = {(c.tool, json.dumps(c.arguments, sort_keys=True)) for c in rec.tool_calls}
        for _, s in staged:
            for note in s.notes:
                key = (note.tool, json.dumps(note.arguments, sort_keys=True))
                if key in seen:
                    continue
                seen.add(key)
                rec.tool_calls.append(
                    ToolCall(
                        seq=len(rec.tool_calls) + 1,
                        tool=note.tool,
                        arguments=note.arguments,
                        decision=note.decision,
                        rule=note.rule,
                        reason=note.reason,
                        ok=note.ok,
                        result="",
                        duration_ms=0.0,
                    )
                )
        for _, s in staged:
            for a in s.artifacts:
                put(a)
        put(Artifact("transcript.json", canonical_json(messages), "application/json"))
        parts = [part for _, s in staged for part in s.parts]
        out_of_scope = [path for _, s in staged for path in s.out_of_scope]
        rec.proposal = Proposal.of(parts, out_of_scope) if parts else None
        return artifacts

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
        p = Plan.model_validate(rec.plan)
        return self._propose(rec, p, policy, Resume(messages, rec.proposal))

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
        proposal = self._verified(rec)
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
                self.signed_problem(policy, door),
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
        proposal = self._verified(rec)
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
        done = self._apply(rec, proposal)
        kind: OutcomeKind = "applied" if done.state == "applied" else "failed"
        return Outcome(kind, done, done.transitions[-1].reason)

    def _apply(self, rec: RunRecord, proposal: Proposal) -> RunRecord:
        """Deterministic: applies exactly what was approved, part by part, in the order of
        the engine's families; the model is never asked again."""
        artifacts: dict[str, bytes] = {}
        p = Plan.model_validate(rec.plan)
        approvers = ", ".join(a.approver for a in rec.approvals if a.counted)
        message = (
            f"agentplane: {rec.job_name} ({rec.run_id})\n\n{rec.final_message or ''}\n\n"
            f"Agentplane-Run: {rec.run_id}\n"
            f"Agentplane-Proposal: {proposal.digest}\n"
            f"Approved-by: {approvers}\n"
        )

        def keep(a: Artifact) -> None:
            data = self._redacted(a)
            artifacts[self._artifact(rec, a.name, data, a.media_type)] = data

        ctx = ApplyContext(
            record=rec,
            plan=p,
            policy=self.policy(),  # as it stands now: protections added since count
            repo=self.repo,
            environ=os.environ,
            artifact=self.audit.artifact,
            artifact_named=lambda name: self._named(rec, name),
            message=self.redactor(message),  # the model's final message is hostile text
            identity=BOT_IDENTITY,
            at=rec.approvals[-1].at,
            keep=keep,
            log_egress=lambda e: rec.egress.append(
                _egress(e.event, p, phase="apply", **({"by": e.by} if e.by else {}))
            ),
        )
        done: list[AppliedPart] = []
        for part in self._ordered(proposal):
            try:
                applied = self._family(part.family).apply(part, ctx)
            except ApplyRefused as exc:
                return self._advance(rec, "failed", str(exc), artifacts)
            except AgentplaneError as exc:
                return self._advance(rec, "failed", f"apply failed: {exc}", artifacts)
            done.append(applied)
            rec.applied = list(done)
        return self._advance(rec, "applied", "; ".join(a.summary for a in done), artifacts)

    def _family(self, name: str) -> ToolFamily:
        family = next((f for f in self.families if f.name == name), None)
        if family is None:
            raise UnknownFamily(name, [f.name for f in self.families])
        return family

    def _ordered(self, proposal: Proposal) -> list[ProposalPart]:
        """Parts in the engine's family order (bot.families.registry says why)."""
        rank = {f.name: i for i, f in enumerate(self.families)}
        return sorted(proposal.parts, key=lambda part: rank.get(part.family, len(rank)))

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
        if rec.state in ("awaiting_approval", "needs_clarification"):
            return self._advance(rec, "cancelled", reason)
        return rec

    def stale_runs(self) -> list[RunRecord]:
        """Runs in flight whose process died (read only: `audit verify` reports them)."""
        if not self._trusted:
            self.policy()
        stale = []
        for run_id in self.audit.run_ids():
            entry = self.audit.latest(run_id)
            if entry is None or entry.record.get("state") not in IN_FLIGHT:
                continue
            if not is_dead(entry.record.get("owner")):
                continue
            try:
                stale.append(RunRecord.model_validate(entry.record))
            except ValidationError:
                continue  # not a run this engine wrote: nothing it could resume
        return stale

    def recover(self) -> list[RunRecord]:
        """Resolve the runs whose process died in flight (killed, crashed, host rebooted).

        An approved code proposal is applied: apply is deterministic and never asks the model.
        A held browser request may or may not have left: at most once, so the run fails as
        "outcome unknown" and a human checks the site. Anything else fails with the reason.
        """
        resolved = []
        for rec in self.stale_runs():
            died = f"the process carrying it ({rec.owner or 'before owners were recorded'}) died"
            if rec.state == "approved" and (unsafe := self._unsafe_to_repeat(rec)):
                rec = self._advance(rec, "failed", f"outcome unknown: {died} {unsafe}")
            elif rec.state == "approved":
                self._advance(rec, "approved", f"{died}; applying again (deterministic)")
                rec = self._apply(rec, self._verified(rec))
            else:
                rec = self._advance(rec, "failed", f"{died} while {rec.state}; run it again")
            resolved.append(rec)
        return resolved

    # -- records --------------------------------------------------------------------------

    def load(self, run_id: str) -> RunRecord:
        """The run's newest record, verified first: chain, signatures by policy's signers,
        and the local anchor (AuditError otherwise); nothing acts on an unverified record."""
        if not self._trusted:
            self.policy()
        entry = self.audit.latest(run_id)
        if entry is None:
            raise RunError(f"no run {run_id!r} in the audit log (see `agentplane audit log`)")
        return RunRecord.model_validate(entry.record)

    def patch(self, rec: RunRecord) -> str:
        """The proposal's file patch (its parts of kind "patch"), or ""."""
        if rec.proposal is None:
            return ""
        return "".join(self.audit.artifact(p.digest).decode() for p in rec.proposal.of_kind(PATCH))

    def evidence(self, rec: RunRecord, links: Mapping[str, str] | None = None) -> list[Section]:
        """Each family's evidence sections, in family order, from the record and artifacts."""
        ctx = EvidenceContext(
            record=rec,
            artifact_named=lambda name: self._named(rec, name),
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

    def _named(self, rec: RunRecord, name: str) -> bytes | None:
        ref = rec.artifact(name)
        return self.audit.artifact(ref.sha256) if ref else None

    def _verified(self, rec: RunRecord) -> Proposal:
        """The stored proposal, checked against its digest, every part's family known."""
        assert rec.proposal is not None
        proposal = rec.proposal
        # The approval binds to this digest: whatever is applied must be what was reviewed.
        if proposal.expected_digest() != proposal.digest:
            raise RunError(f"run {rec.run_id}: the stored proposal does not match its digest")
        for part in proposal.parts:
            self._family(part.family)
        return proposal

    def _unsafe_to_repeat(self, rec: RunRecord) -> str | None:
        for part in rec.proposal.parts if rec.proposal else []:
            family = next((f for f in self.families if f.name == part.family), None)
            if family is None:
                return f"while applying a {part.family!r} part this engine does not know"
            if why := family.unsafe_to_repeat(part):
                return why
        return None

    def _redacted(self, a: Artifact) -> bytes:
        """An artifact as it is stored: redacted before hashing, so the record names what
        is stored; binary media are never decoded (see Artifact.redaction)."""
        if a.redaction != "none" and a.media_type == "application/zip":
            return self.redactor.zip(a.data)
        if a.redaction == "none" or not _is_text(a.media_type):
            return a.data
        text = a.data.decode("utf-8", "replace")
        return (
            self.redactor.known(text) if a.redaction == "known" else self.redactor(text)
        ).encode()

    def _artifact(self, rec: RunRecord, name: str, data: bytes, media_type: str) -> str:
        digest = sha256_hex(data)
        rec.artifacts.append(
            ArtifactRef(name=name, sha256=digest, size=len(data), media_type=media_type)
        )
        return digest

    def _model_call(self, rec: RunRecord, p: Plan, turn: ModelTurn) -> None:
        rec.cost_usd = round(rec.cost_usd + turn.cost_usd, 6)
        rec.model_calls.append(
            ModelCall(
                seq=len(rec.model_calls) + 1,
                model=turn.model,
                model_class=p.model.model_class if p.model else "",
                prompt_tokens=turn.prompt_tokens,
                completion_tokens=turn.completion_tokens,
                cost_usd=turn.cost_usd,
                latency_ms=turn.latency_ms,
                finish=turn.finish,
                group=turn.group,
                fallbacks=turn.fallbacks,
            )
        )

    def _advance(
        self, rec: RunRecord, state: Any, reason: str, artifacts: Mapping[str, bytes] | None = None
    ) -> RunRecord:
        rec.advance(state, self.now(), reason)
        rec.owner = this_process() if state in IN_FLIGHT else None
        # Strings only: digests and structure stay, so the record still verifies.
        record = self.redactor.json(rec.model_dump(mode="json"))
        self.audit.append(rec.run_id, record, artifacts or {})
        return rec


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a paused run picks up: the conversation so far and its staged changes."""

    messages: list[dict[str, Any]]
    staged: Proposal | None
    """The proposal staged before the pause: each family restores its own part."""


EGRESS_KINDS = ("network", "browser_domain")


def _is_text(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type.endswith("json")


def _egress(event: EgressEvent, p: Plan, **context: str) -> dict[str, Any]:
    """The proxy's event, with the policy rule that granted (or withheld) the domain, and
    context: who connected (`by`) and in which `phase`, where not the propose sandbox."""
    entry = {**dataclasses.asdict(event), **context}
    entry["proxy_rule"] = entry.pop("rule")
    grants = [d for d in p.decisions if d.kind in EGRESS_KINDS and d.granted]
    matched = next((d for d in grants if d.subject in event.rule), None)
    if event.decision in ("allow", UNREACHABLE) and matched is not None:
        entry["rule"] = matched.rule
        if event.address and not ipaddress.ip_address(event.address).is_global:
            entry["network_rule"] = p.private_networks_rule
    else:  # denied by name, address or port: the proxy's reason says which
        entry["rule"] = "policy#network (not granted: default deny)"
    return entry


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


def _spent(rec: RunRecord) -> Spent:
    tokens = sum(m.prompt_tokens + m.completion_tokens for m in rec.model_calls)
    return Spent(usd=rec.cost_usd, tokens=tokens, tool_calls=len(rec.tool_calls))


def _ms(started: float, before: float) -> float:
    return round(before + (time.perf_counter() - started) * 1000, 1)


__all__ = ["Engine", "ValidationFailed", "job_path"]
