"""Propose: run the agent in a sandbox with the families' tools, then stage what it
changed as a proposal, its artifacts and the notes the families left.

The only step that talks to a model. Resumable: a run paused by a question comes back
with its conversation and its staged parts, which each family restores.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from bot.adapters.git import GitRepo
from bot.adapters.model.turn import ModelTurn
from bot.adapters.sandbox import Limits, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.backends import get_backend
from bot.adapters.sandbox.envcache import CachedEnv
from bot.adapters.sandbox.spec import UNREACHABLE, EgressEvent
from bot.adapters.sandbox.workspace import writable_dirs
from bot.core.canonical import canonical_json
from bot.core.contracts import check as check_contract
from bot.core.errors import AgentplaneError, RunError
from bot.core.gate import open_gates
from bot.core.plan import Plan
from bot.core.policy import Policy
from bot.core.record import (
    SECRET_SCAN,
    EgressEntry,
    ModelCall,
    Proposal,
    Question,
    RunRecord,
    ToolCall,
    VerificationResult,
)
from bot.families.interface import (
    Artifact,
    Note,
    RestoreContext,
    RunContext,
    Staged,
    ToolFamily,
    family_named,
)
from bot.run import setup as setup_phase
from bot.run.agent import AgentFailed, Model, Spent, opening, run_agent
from bot.run.broker import Broker
from bot.run.inputs import Inputs
from bot.run.proposal_checks import check_proposal, tree_usage, workspace_problem
from bot.run.storage import RunStore
from bot.run.toolbox import Toolbox


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a paused run picks up: the conversation so far and its staged changes."""

    messages: list[dict[str, Any]]
    staged: Proposal | None
    """The proposal staged before the pause: each family restores its own part."""


class Proposer:
    def __init__(
        self,
        repo: GitRepo,
        backend: SandboxBackend,
        model_factory: Callable[[dict[str, Any]], Model],
        families: tuple[ToolFamily, ...],
        inputs: Inputs,
        store: RunStore,
    ) -> None:
        self.repo = repo
        self.backend = backend
        self.model_factory = model_factory
        self.families = families
        self.inputs = inputs
        self.store = store

    def propose(
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
        self.store.advance(rec, "running", "resumed with an answer" if resume else why)
        env: CachedEnv | None = None
        if p.setup is not None:
            started = time.perf_counter()
            try:
                env = self._setup(rec, p)
            except AgentplaneError as exc:  # no sandbox, or a cache that cannot be written
                return self.store.advance(rec, "failed", f"setup: {exc}")
            finally:
                rec.timings["setup_ms"] = _ms(started, rec.timings.get("setup_ms", 0.0))
            if env is None:
                assert rec.setup is not None
                reason = f"setup failed: {rec.setup.error} (see the evidence)"
                return self.store.advance(rec, "failed", reason)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="agentplane-ws-") as tmp:
            # The mkdtemp dir itself: its parent (/tmp) is traversable by the sandbox uid.
            ws = Path(tmp)
            try:
                self.repo.export(rec.commit, ws)
                if resume is not None and resume.staged is not None:
                    self._restore(resume.staged, ws)
                outcome, staged = self._run_agent(rec, p, policy, ws, resume, answers, env)
            except AgentFailed as exc:
                # The model failed the run: keep what it said, replayable and inspectable.
                rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
                rec.failure = "model"
                return self.store.advance(
                    rec, "failed", exc.reason, self._stage(rec, [], exc.messages)
                )
            except AgentplaneError as exc:
                rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
                return self.store.advance(rec, "failed", str(exc))
        rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
        try:
            artifacts = self._stage(rec, staged, outcome.messages)
        except AgentplaneError as exc:  # an artifact that cannot be checked for secrets
            return self.store.advance(rec, "failed", str(exc))
        if outcome.status == "needs_clarification":
            rec.question = Question(
                text=outcome.message, call_id=outcome.question_call or "", asked_at=self.store.now()
            )
            return self.store.advance(
                rec, "needs_clarification", f"the agent asks: {outcome.message}", artifacts
            )
        rec.final_message = outcome.said
        if outcome.status == "budget_exceeded":
            return self.store.advance(rec, "budget_exceeded", outcome.message, artifacts)
        return self._conclude(rec, p, artifacts, env)

    def _setup(self, rec: RunRecord, p: Plan) -> CachedEnv | None:
        """The setup phase: the environment for this run's setup inputs, reused or built
        (bot.run.setup); None when setup failed (rec.setup says why)."""
        backend = get_backend(p.backend) if p.backend else self.backend
        prepared = setup_phase.prepare(
            self.repo, backend, p, rec.run_id, rec.commit, rec.door_ref, self.store.redactor
        )
        rec.egress += prepared.egress
        # A run resumed after a question finds the environment its first part built.
        if not (prepared.result.reused and rec.setup and rec.setup.key == prepared.result.key):
            rec.setup = prepared.result
        return prepared.env

    def _conclude(
        self,
        rec: RunRecord,
        p: Plan,
        artifacts: dict[str, bytes],
        env: CachedEnv | None = None,
    ) -> RunRecord:
        """After the agent claimed it was done: the control plane's own checks decide how
        the run ends (verification, then the artifact contract), never the agent's word."""
        if rec.proposal is not None and p.verify:
            try:
                rec.verification = self.verify(rec, p, artifacts, env)
            except AgentplaneError as exc:  # no sandbox to verify in: nothing was shown
                return self.store.advance(rec, "failed", f"verification: {exc}", artifacts)
            failed = [v.command for v in rec.verification if not v.passed]
            if failed and not p.approve_failed_verification:
                reason = f"verification failed: {', '.join(failed)} (see the evidence)"
                return self.store.advance(rec, "verify_failed", reason, artifacts)
        rec.contract = check_contract(
            p.contract,
            [a.name for a in rec.artifacts],
            [part.kind for part in rec.proposal.parts] if rec.proposal else [],
            rec.final_message,
        )
        if unmet := [c for c in rec.contract if not c.met]:
            reason = "; ".join(f"{c.contract}: {c.item} missing ({c.detail})" for c in unmet)
            return self.store.advance(rec, "contract_unmet", reason, artifacts)
        if rec.proposal is None:
            return self.store.advance(rec, "completed", "no changes proposed", artifacts)
        if rec.plan_only:
            reason = "plan only: what the job would change now is recorded; nothing is proposed"
            return self.store.advance(rec, "completed", reason, artifacts)
        gates = "; ".join(
            f"{g.action}: {g.approvers.describe()} ({g.rule})" for g in open_gates(rec)
        )
        return self.store.advance(rec, "awaiting_approval", gates, artifacts)

    def _run_agent(
        self,
        rec: RunRecord,
        p: Plan,
        policy: Policy,
        ws: Path,
        resume: Resume | None,
        answers: Sequence[str],
        env: CachedEnv | None = None,
    ) -> tuple[Any, list[tuple[ToolFamily, Staged]]]:
        """The sandboxed agent loop; egress of the sandbox and of the families is recorded."""
        assert p.model is not None and p.prompt is not None
        writes = p.granted("write")
        domains = tuple(p.granted("network"))
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
            env=(("PYTHONDONTWRITEBYTECODE", "1"), *setup_phase.phase_env(env)),
            network="allowlist" if domains else "none",
            allow_domains=domains,
            egress_private_ok=p.private_networks if domains else (),
            env_dir=env.path if env else None,
            scratch=tuple(p.scratch),
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
            **model_config(policy, p, rec),
            "metadata": {"agentplane_run": rec.run_id, "agentplane_root": str(ws)},
        }
        job = self.inputs.load_job(rec.job_path, rec.commit)[1]
        # Each call is on disk before the next begins: a process that dies loses none.
        journal = self.store.journal(rec.run_id)

        def journaled_tool(call: ToolCall) -> None:
            journal.append("tool", call.model_dump(mode="json"))
            rec.tool_calls.append(call)

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
                    p, kit.tools, journaled_tool, kit.redact, already=len(rec.tool_calls)
                )
                outcome = run_agent(
                    resume.messages if resume else opening(p.prompt, broker),
                    broker,
                    self.model_factory(config),
                    p.budget,
                    lambda t: journal.append(
                        "model", _model_call(rec, p, t).model_dump(mode="json")
                    ),
                    _spent(rec),
                )
            rec.egress += [egress_entry(e, p) for e in box.egress_log()]
            # After the sandbox is gone: the workspace is final when it is diffed.
            staged, problem = kit.finish()
        finally:
            if kit is not None:
                kit.close()
        rec.egress += [egress_entry(e.event, p, by=e.by or "") for _, s in staged for e in s.egress]
        if problem is not None:
            raise problem
        return outcome, staged

    def verify(
        self,
        rec: RunRecord,
        p: Plan,
        staged: Mapping[str, bytes],
        env: CachedEnv | None = None,
    ) -> list[VerificationResult]:
        """The job's verify commands, run by the control plane on the base commit plus the
        proposal, in a fresh sandbox that may write nothing and reach nothing: whatever
        the agent left in its own workspace cannot fake the result."""
        assert rec.proposal is not None
        results = []
        with tempfile.TemporaryDirectory(prefix="agentplane-verify-") as tmp:
            ws = Path(tmp)
            self.repo.export(rec.commit, ws)
            # Its parts' artifacts are appended with the next record: read them from here.
            self._restore(rec.proposal, ws, lambda sha: staged.get(sha) or self.store.artifact(sha))
            limits = Limits(wall_seconds=min(120.0, (p.budget.minutes or 10) * 60))
            spec = SandboxSpec(
                ws,
                (),
                limits=limits,
                env=(("PYTHONDONTWRITEBYTECODE", "1"), *setup_phase.phase_env(env)),
                network="none",
                env_dir=env.path if env else None,
                scratch=tuple(p.scratch),
            )
            backend = get_backend(p.backend) if p.backend else self.backend
            with backend.start(spec) as box:
                for command in p.verify:
                    started = time.perf_counter()
                    out = box.exec(["sh", "-c", command])
                    tail = (out.stdout + out.stderr)[-VERIFY_OUTPUT:]
                    results.append(
                        VerificationResult(
                            command=command,
                            exit_code=None if out.timed_out else out.exit_code,
                            output=self.store.redactor(tail),
                            duration_ms=_ms(started, 0.0),
                        )
                    )
        return results

    def _vet(self, policy: Policy) -> Callable[[str], list[Note]]:
        """The control plane's checks on a patch before it is stored: ProposalRefused for a
        secret it holds or a quota; a note per line that only looks like a token."""

        def vet(patch: str) -> list[Note]:
            flags = check_proposal(patch, self.store.redactor, policy.quotas, policy.rule("quotas"))
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

    def _restore(
        self, staged: Proposal, ws: Path, artifact: Callable[[str], bytes] | None = None
    ) -> None:
        """Staged parts, back in a fresh workspace: a paused run's, or a proposal to verify."""
        ctx = RestoreContext(repo=self.repo, workspace=ws, artifact=artifact or self.store.artifact)
        for part in staged.parts:
            family_named(self.families, part.family).restore(part, ctx)

    def _stage(
        self, rec: RunRecord, staged: Sequence[tuple[ToolFamily, Staged]], messages: Any
    ) -> dict[str, bytes]:
        """This step's artifacts, the notes the families left, and the proposal."""
        artifacts: dict[str, bytes] = {}
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
                self.store.keep(rec, a, artifacts)
        transcript = Artifact("transcript.json", canonical_json(messages), "application/json")
        self.store.keep(rec, transcript, artifacts)
        parts = [part for _, s in staged for part in s.parts]
        out_of_scope = [path for _, s in staged for path in s.out_of_scope]
        rec.proposal = Proposal.of(parts, out_of_scope) if parts else None
        return artifacts


def model_config(policy: Policy, p: Plan, rec: RunRecord) -> dict[str, Any]:
    """litellm's router config for the run: the routed group's, or a replay's override."""
    if rec.model_override is not None:
        return rec.model_override.model_dump()
    assert p.model is not None
    return policy.models.router_config(
        p.model.model_class, sensitivity=p.data_sensitivity, budget_usd=p.budget.usd
    )


EGRESS_KINDS = ("network", "browser_domain")
VERIFY_OUTPUT = 4096
"""Characters of a verify command's output the record keeps (its tail)."""


def egress_entry(
    event: EgressEvent, p: Plan, by: str = "", phase: Literal["propose", "apply"] = "propose"
) -> EgressEntry:
    """The proxy's event, with the policy rule that granted (or withheld) the domain, and
    who connected (`by`) and in which `phase`, where not the propose sandbox."""
    fields = dataclasses.asdict(event)
    proxy_rule = fields.pop("rule")
    grants = [d for d in p.decisions if d.kind in EGRESS_KINDS and d.granted]
    matched = next((d for d in grants if d.subject in event.rule), None)
    rule, network_rule = "policy#network (not granted: default deny)", ""
    if event.decision in ("allow", UNREACHABLE) and matched is not None:
        rule = matched.rule
        if event.address and not ipaddress.ip_address(event.address).is_global:
            network_rule = p.private_networks_rule
    # else denied by name, address or port: the proxy's reason says which
    return EgressEntry(
        **fields, rule=rule, proxy_rule=proxy_rule, network_rule=network_rule, by=by, phase=phase
    )


def _model_call(rec: RunRecord, p: Plan, turn: ModelTurn) -> ModelCall:
    rec.cost_usd = round(rec.cost_usd + turn.cost_usd, 6)  # known costs only (0.0 else)
    call = ModelCall(
        seq=len(rec.model_calls) + 1,
        model=turn.model,
        model_class=p.model.model_class if p.model else "",
        prompt_tokens=turn.prompt_tokens,
        completion_tokens=turn.completion_tokens,
        cost_usd=turn.cost,
        cost_source=turn.cost_source,
        tokens_estimated=turn.tokens_estimated,
        deployment=turn.deployment,
        api_base=turn.api_base,
        retries=turn.retries,
        max_tokens=turn.max_tokens,
        latency_ms=turn.latency_ms,
        finish=turn.finish,
        group=turn.group,
        fallbacks=turn.fallbacks,
    )
    rec.model_calls.append(call)
    return call


def _spent(rec: RunRecord) -> Spent:
    calls = rec.model_calls
    return Spent(
        usd=rec.cost_usd,
        tokens=sum(m.prompt_tokens + m.completion_tokens for m in calls),
        tool_calls=len(rec.tool_calls),
        unpriced_calls=sum(m.cost_usd is None for m in calls),
        estimated_calls=sum(m.tokens_estimated for m in calls),
    )


def _ms(started: float, before: float) -> float:
    return round(before + (time.perf_counter() - started) * 1000, 1)
