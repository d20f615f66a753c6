"""The one path every front door takes: plan -> propose -> evidence -> gate -> apply -> record.

Doors build a RunRequest and collect approvals their own way; everything else
is here, once. Each state change is appended to the audit branch, so a run
interrupted anywhere resumes from its last record with nothing lost.
"""

from __future__ import annotations

import dataclasses
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
from bot.adapters.git import GitRepo, WorkspaceDiff
from bot.adapters.model.turn import ModelTurn, litellm_client, script_from_transcript
from bot.adapters.sandbox import Limits, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.backends import get_backend
from bot.adapters.sandbox.spec import UNREACHABLE, EgressEvent
from bot.adapters.sandbox.workspace import writable_dirs
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.errors import AgentplaneError, RunError, ValidationFailed
from bot.core.gate import approval_problem, may_decide, open_gates
from bot.core.globs import match_any
from bot.core.identity import Directory, Resolver, normalise
from bot.core.job import Job, parse_job
from bot.core.plan import Plan, plan
from bot.core.policy import Policy, RepoConfig, merge_policy, parse_config
from bot.core.record import (
    IN_FLIGHT,
    SECRET_SCAN,
    Approval,
    ArtifactRef,
    BrowserPending,
    Clarification,
    DoorRef,
    ModelCall,
    Proposal,
    Question,
    RunRecord,
    ToolCall,
)
from bot.core.request import Door, RunRequest
from bot.families.ask.tools import answer_text
from bot.families.browser.driver import Chromium
from bot.families.browser.errors import ReplayDiffers
from bot.families.browser.evidence import render_browser_evidence
from bot.families.browser.model import BrowserRun
from bot.families.browser.replay import release
from bot.families.browser.tools import RUN_ARTIFACT, chromium_for
from bot.families.browser.tools import media_type as browser_media_type
from bot.families.sql.evidence import SqlEvidence, render_sql_evidence
from bot.run.agent import Model, Spent, opening, run_agent
from bot.run.broker import Broker
from bot.run.credentials import browser_credential
from bot.run.owner import is_dead, this_process
from bot.run.proposal_checks import (
    ProposalRefused,
    check_proposal,
    tree_usage,
    workspace_problem,
)
from bot.run.redact import Redactor, host_secrets
from bot.run.toolbox import Toolbox, toolbox

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
    ) -> None:
        self.repo = repo
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
        policy = merge_policy(
            self.repo.read_dir(self.repo.policy_ref(), "policies", (".yaml", ".yml"))
        )
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
        return None if text is None else parse_config(CONFIG_PATH, text)

    def load_job(self, name_or_path: str, commit: str) -> tuple[str, Job]:
        path = job_path(name_or_path)
        text = self.repo.read_file(commit, path)
        if text is None:
            raise RunError(
                f"{path} is not in commit {commit[:12]}: runs are bound to a commit, "
                "so commit the job file first"
            )
        return path, parse_job(path, text)

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
                if resume is not None and resume.partial:
                    self.repo.apply_in(ws, resume.partial)
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
                backend = get_backend(p.backend) if p.backend else self.backend
                config = {
                    **self.model_config(policy, p, rec),
                    "metadata": {"agentplane_run": rec.run_id, "agentplane_root": str(ws)},
                }
                job = self.load_job(rec.job_path, rec.commit)[1]
                with (
                    backend.start(spec) as box,
                    toolbox(
                        p, policy, ws, box, job.scope.browser, rec.job_path, answers=answers
                    ) as kit,
                ):
                    broker = Broker(
                        p, kit.tools, rec.tool_calls.append, kit.redact, already=len(rec.tool_calls)
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
                rec.egress += [_egress(e, p, by="chromium") for e in kit.browser_egress]
                if grown := workspace_problem(
                    before, tree_usage(ws, scope_dirs), policy.quotas, policy.rule("quotas")
                ):
                    raise RunError(grown)
                diff = self.repo.diff_workspace(rec.commit, ws, writes, policy.protected_paths)
            except AgentplaneError as exc:
                rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
                return self._advance(rec, "failed", str(exc))
        rec.timings["propose_ms"] = _ms(started, rec.timings.get("propose_ms", 0.0))
        try:
            artifacts = self._stage(rec, p, diff, kit, outcome.messages, policy)
        except ProposalRefused as exc:
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

    def _stage(
        self,
        rec: RunRecord,
        p: Plan,
        diff: WorkspaceDiff,
        kit: Toolbox,
        messages: list[dict[str, Any]],
        policy: Policy,
    ) -> dict[str, bytes]:
        """Artifacts of this step and the proposal: diff, held browser request, evidence.

        Raises ProposalRefused (before anything is staged) for a patch over a quota or
        adding a secret the control plane holds."""
        flags = (
            check_proposal(diff.patch, self.redactor, policy.quotas, policy.rule("quotas"))
            if diff.patch
            else []
        )
        artifacts: dict[str, bytes] = {}

        def put(name: str, data: bytes, media_type: str) -> None:
            # Redacted before hashing: the record names what is stored. The patch is stored
            # as proposed (it is what apply commits; check_proposal vetted it), and the
            # browser run only for known secrets: its digests bind what apply replays.
            if name == RUN_ARTIFACT:
                data = self.redactor.known(data.decode("utf-8", "replace")).encode()
            elif name != "proposal.diff" and _is_text(media_type):
                data = self.redactor(data.decode("utf-8", "replace")).encode()
            rec.artifacts = [a for a in rec.artifacts if a.name != name]
            artifacts[self._artifact(rec, name, data, media_type)] = data

        flagged = {(c.arguments.get("path"), c.arguments.get("line")) for c in rec.tool_calls}
        for flag in flags:
            if (flag.path, flag.line) in flagged:  # a resumed run re-checks the whole patch
                continue
            rec.tool_calls.append(
                ToolCall(
                    seq=len(rec.tool_calls) + 1,
                    tool=SECRET_SCAN,
                    arguments={"path": flag.path, "line": flag.line},
                    decision="allow",
                    rule="agentplane#proposal_checks",
                    reason=flag.describe(),
                    ok=True,
                    result="",
                    duration_ms=0.0,
                )
            )

        # A resumed run re-diffs everything: report each out-of-scope path once.
        seen = {c.arguments.get("path") for c in rec.tool_calls if c.tool == "workspace"}
        for path in diff.out_of_scope:
            if path in seen:
                continue
            rec.tool_calls.append(
                ToolCall(
                    seq=len(rec.tool_calls) + 1,
                    tool="workspace",
                    arguments={"path": path},
                    decision="deny",
                    rule=next((d.rule for d in p.decisions if d.kind == "write"), "policy#write"),
                    reason="changed outside the write scope; left out of the proposal",
                    ok=False,
                    result="",
                    duration_ms=0.0,
                )
            )
        for ev in kit.sql_evidence:
            put(
                f"sql-{ev.seq}.json", canonical_json(ev.model_dump(mode="json")), "application/json"
            )
        for a in kit.browser_artifacts:
            put(a.name, a.data, a.media_type)
        put("transcript.json", canonical_json(messages), "application/json")
        rec.proposal = None
        held = kit.browser.pending if kit.browser else None
        if not diff.patch and held is None:
            return artifacts
        proposal = Proposal(digest="", out_of_scope=list(diff.out_of_scope))
        if diff.patch:
            patch = diff.patch.encode("utf-8")
            put("proposal.diff", patch, "text/x-diff")
            adds, dels = _diffstat(diff.patch)
            proposal = proposal.model_copy(
                update={
                    "patch_sha256": sha256_hex(patch),
                    "changed": list(diff.changed),
                    "additions": adds,
                    "deletions": dels,
                }
            )
        if held is not None:
            proposal = proposal.model_copy(
                update={
                    "browser": BrowserPending(
                        action=held.action,
                        method=held.method,
                        url=held.url,
                        body_sha256=held.body_sha256,
                        step=held.step,
                        pending_digest=held.digest(),
                    )
                }
            )
        rec.proposal = proposal.model_copy(update={"digest": proposal.expected_digest()})
        return artifacts

    def answer(self, run_id: str, who: str, text: str) -> RunRecord:
        """Answer the run's open question and resume it where it stopped."""
        rec = self.load(run_id)
        who = normalise(who)
        if rec.state != "needs_clarification" or rec.question is None:
            raise RunError(f"run {run_id} is {rec.state}; it has no open question")
        policy = self.policy()
        directory = self.directory(policy)
        if not directory.same(who, rec.requester) and not may_decide(
            policy, open_gates(rec), who, directory
        ):
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
        return self._propose(rec, p, policy, Resume(messages, self.patch(rec)))

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
        refused: str | None = None,
    ) -> RunRecord:
        """Record one person's decision; apply once every gate on the proposal is satisfied.

        reviewed_commit is the commit the reviewer saw (a PR review's commit_id); live_head
        re-reads the branch head at the moment of apply, so a push after approval wins.
        approver is an identity key (bot.core.identity); name is how the door shows that person.
        refused is the door's own reason this decision cannot count (e.g. a review submitted
        before its evidence was posted): recorded as not counted, like any other reason.
        """
        approver = normalise(approver)
        rec = self.load(run_id)
        if rec.state != "awaiting_approval" or rec.proposal is None:
            raise RunError(f"run {run_id} is {rec.state}, not awaiting approval")
        patch = self._proposal_bytes(rec)
        gates = open_gates(rec)
        policy = self.policy()
        directory = self.directory(policy)
        problem = (
            refused
            or approval_problem(
                rec, approver, reviewed_commit or rec.commit, gates, policy, directory, door,
                reviewed_digest,
            )
            or self.signed_problem(policy, door)
        )
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
                counted=problem is None,
                reason=problem or _counted(directory),
            )
        )
        if problem is not None:
            self._advance(
                rec, "awaiting_approval", f"{decision} by {approver} not counted: {problem}"
            )
            raise RunError(f"{approver} cannot decide run {run_id}: {problem}")
        if decision == "deny":
            return self._advance(rec, "rejected", f"denied by {approver}")
        approvers = [
            a.approver
            for a in rec.approvals
            if a.counted and a.decision == "approve" and a.proposal_digest == rec.proposal.digest
        ]
        pending = [
            v.reason
            for g in gates
            if not (
                v := g.approvers.evaluate(
                    approvers,
                    rec.requester,
                    lambda pr, who: policy.matches(pr, who, directory),
                    directory.person,
                )
            ).ok
        ]
        if pending:
            return self._advance(rec, "awaiting_approval", "; ".join(pending))
        if live_head is not None and (head := live_head()) != rec.commit:
            return self._advance(
                rec, "cancelled", f"stale: the head moved to {head[:12]} after approval"
            )
        self._advance(rec, "approved", f"approved by {', '.join(approvers)}")
        return self._apply(rec, patch)

    def _apply(self, rec: RunRecord, patch: bytes) -> RunRecord:
        """Deterministic: applies exactly what was approved; the model is never asked again."""
        artifacts: dict[str, bytes] = {}
        done: list[str] = []
        if rec.proposal is not None and rec.proposal.browser is not None:
            problem = self._release(rec, artifacts)
            if problem is not None:
                return self._advance(rec, "failed", problem, artifacts)
            done.append(f"released {rec.applied and rec.applied['request']}")
        if patch:
            branch = f"agentplane/run/{rec.run_id}"
            approvers = ", ".join(a.approver for a in rec.approvals if a.counted)
            message = (
                f"agentplane: {rec.job_name} ({rec.run_id})\n\n{rec.final_message or ''}\n\n"
                f"Agentplane-Run: {rec.run_id}\n"
                f"Agentplane-Proposal: {rec.proposal.digest if rec.proposal else ''}\n"
                f"Approved-by: {approvers}\n"
            )
            message = self.redactor(message)  # the model's final message is hostile text
            try:
                commit = self.repo.commit_patch(
                    rec.commit,
                    patch.decode("utf-8"),
                    branch,
                    message,
                    BOT_IDENTITY,
                    rec.approvals[-1].at,
                    check=self._apply_scope(rec),
                )
            except AgentplaneError as exc:
                return self._advance(rec, "failed", f"apply failed: {exc}", artifacts)
            rec.applied = {**(rec.applied or {}), "branch": branch, "commit": commit}
            done.append(f"committed {commit[:12]} on {branch}")
        return self._advance(rec, "applied", "; ".join(done), artifacts)

    def _apply_scope(self, rec: RunRecord) -> Callable[[list[str]], None]:
        """Apply's own check of every path the approved patch changes: in the plan's write
        scope, and not protected by policy as it stands now on the default branch. Staging
        already filtered both; this holds even if the stored proposal was not what staging
        produced."""
        writes = Plan.model_validate(rec.plan).granted("write")
        protected = self.policy().protected_paths

        def check(paths: list[str]) -> None:
            outside = [p for p in paths if not match_any(p, writes)]
            guarded = [p for p in paths if match_any(p, protected)]
            if outside:
                raise RunError(f"{', '.join(outside)} outside the write scope {writes}")
            if guarded:
                raise RunError(f"{', '.join(guarded)} protected by policy ({protected})")

        return check

    def _release(self, rec: RunRecord, artifacts: dict[str, bytes]) -> str | None:
        """Replay the browser steps and send the one approved request; why not, if not."""
        assert rec.proposal is not None and rec.proposal.browser is not None
        held = rec.proposal.browser
        run = self.browser_run(rec)
        p = Plan.model_validate(rec.plan)
        names = p.granted("credential")
        chromium: Chromium | None = None
        try:
            if run is None:
                raise RunError("the run's browser-run.json artifact is missing")
            credential = browser_credential(names[0], os.environ) if names else None
            chromium = chromium_for(p, run.domains)
            released = release(
                run,
                held.pending_digest,
                credential=credential,
                job_rule=rec.job_path,
                chromium=chromium,
            )
        except ReplayDiffers as exc:
            self._artifacts(rec, exc.artifacts, artifacts)
            return "the page differs from what was approved; nothing was sent: " + "; ".join(
                exc.differences
            )
        except AgentplaneError as exc:
            return f"apply failed: {exc}"
        finally:
            if chromium is not None:
                rec.egress += [_egress(e, p, by="chromium", phase="apply") for e in chromium.egress]
        self._artifacts(rec, released.artifacts, artifacts)
        rec.applied = {"request": f"{held.method} {released.url}", "status": str(released.status)}
        return None

    def _artifacts(
        self, rec: RunRecord, files: Mapping[str, bytes], into: dict[str, bytes]
    ) -> None:
        for name, data in files.items():
            into[self._artifact(rec, name, data, browser_media_type(name))] = data

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
            if rec.state == "approved" and rec.proposal and rec.proposal.browser:
                held = rec.proposal.browser
                rec = self._advance(
                    rec,
                    "failed",
                    f"outcome unknown: {died} while releasing {held.method} {held.url}; it is "
                    "never sent again by itself: check the site",
                )
            elif rec.state == "approved":
                self._advance(rec, "approved", f"{died}; applying again (deterministic)")
                rec = self._apply(rec, self._proposal_bytes(rec))
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
        ref = rec.artifact("proposal.diff")
        return self.audit.artifact(ref.sha256).decode() if ref else ""

    def evidence_sections(
        self, rec: RunRecord, links: Mapping[str, str] | None = None
    ) -> list[str]:
        """Tool-specific evidence, rendered: SQL results and plans, browser steps and gate."""
        sections = []
        if sql := self.sql_evidence(rec):
            sections.append(render_sql_evidence(sql))
        if (run := self.browser_run(rec)) is not None:
            sections.append(render_browser_evidence(run, rec.run_id, links))
        return sections

    def sql_evidence(self, rec: RunRecord) -> list[SqlEvidence]:
        return [
            SqlEvidence.model_validate_json(self.audit.artifact(a.sha256))
            for a in rec.artifacts
            if a.name.startswith("sql-") and a.name.endswith(".json")
        ]

    def browser_run(self, rec: RunRecord) -> BrowserRun | None:
        ref = rec.artifact(RUN_ARTIFACT)
        return BrowserRun.model_validate_json(self.audit.artifact(ref.sha256)) if ref else None

    def _proposal_bytes(self, rec: RunRecord) -> bytes:
        ref = rec.artifact("proposal.diff")
        assert rec.proposal is not None
        data = self.audit.artifact(ref.sha256) if ref else b""
        # The approval binds to this digest: whatever is applied must be what was reviewed.
        patch_ok = (sha256_hex(data) if data else None) == rec.proposal.patch_sha256
        if not patch_ok or rec.proposal.expected_digest() != rec.proposal.digest:
            raise RunError(f"run {rec.run_id}: the stored proposal does not match its digest")
        return data

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
    partial: str


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


def _counted(directory: Directory) -> str:
    """ "counted", and which policy logins were resolved to which GitHub ids on the way."""
    resolved = ", ".join(f"{login} = {key}" for login, key in sorted(directory.resolved.items()))
    return f"counted (resolved {resolved})" if resolved else "counted"


def _spent(rec: RunRecord) -> Spent:
    tokens = sum(m.prompt_tokens + m.completion_tokens for m in rec.model_calls)
    return Spent(usd=rec.cost_usd, tokens=tokens, tool_calls=len(rec.tool_calls))


def _ms(started: float, before: float) -> float:
    return round(before + (time.perf_counter() - started) * 1000, 1)


def _diffstat(patch: str) -> tuple[int, int]:
    adds = sum(
        1 for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")
    )
    dels = sum(
        1 for line in patch.splitlines() if line.startswith("-") and not line.startswith("---")
    )
    return adds, dels


__all__ = ["Engine", "ValidationFailed", "job_path"]
