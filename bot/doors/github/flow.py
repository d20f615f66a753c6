"""The pull request door: deliveries in, the one run path, evidence and checks out.

Every handler is idempotent: a redelivered or reconciled event finds the run it
already started (PullState) and the comment it already posted (markers), so
at-least-once delivery never posts or commits twice.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.audit.log import artifact_path, entry_path
from bot.adapters.sandbox import SandboxBackend
from bot.core.errors import AgentplaneError, AuditError, ValidationFailed
from bot.core.gates import (
    CommandFacts,
    PolicyReviewFacts,
    ReviewTiming,
    RunParty,
    command,
    policy_owner_approval,
)
from bot.core.identity import IdentityError, Resolver, from_github
from bot.core.job import parse_job
from bot.core.record import DoorRef, RunRecord
from bot.core.render import fenced, record_names, render_plan, render_pr_comment, with_names
from bot.core.request import RunRequest
from bot.doors.github import rebuild, runners
from bot.doors.github.carried import is_proposal_pr
from bot.doors.github.checkout import AUDIT, Checkout
from bot.doors.github.client import GitHubClient, Posted, PullInfo, unauthorized
from bot.doors.github.commands import Command, Reply, parse_comment
from bot.doors.github.queue import NotRetried
from bot.doors.github.release import OwnPushes
from bot.doors.github.rollback import evidence_key, on_rollback
from bot.doors.github.sansio import Delivery
from bot.doors.github.settings import Settings, run_page_url
from bot.doors.github.state import PullState
from bot.doors.github.timing import github_time, stamp
from bot.doors.github.web_decision import WEB_DECISION, on_web_decision
from bot.doors.github.web_start import WEB_START, on_web_start
from bot.run import killpoints
from bot.run.agent import Model
from bot.run.apply import BOT_IDENTITY
from bot.run.engine import Engine
from bot.run.redact import Redactor, redact_logs

log = logging.getLogger("agentplane.github")

JOBS_PREFIX = ".agentplane/jobs/"
GOVERNING = ("policies/", ".agentplane/config.yaml")
CHECK_VALIDATE, CHECK_APPROVAL, CHECK_POLICY, CHECK_AUDIT = (
    "agentplane/validate",
    "agentplane/approval",
    "agentplane/policy",
    "agentplane/audit",
)
CONCLUSION = {
    "awaiting_approval": "action_required",
    "applied": "success",
    "completed": "success",
    "needs_clarification": "action_required",
    "denied": "failure",
    "rejected": "failure",
    "failed": "failure",
    "budget_exceeded": "failure",
    "cancelled": "neutral",
}
NOT_COUNTED = " (review not counted)"
FENCE = re.compile(r"```ya?ml\s*\n(.*?)```", re.DOTALL)


@dataclass
class Context:
    """One delivery's view of one repository: API client, local clone, engine."""

    client: GitHubClient
    full: str
    checkout: Checkout
    engine: Engine
    html_url: str = ""
    touched: set[str] = field(default_factory=set)
    """Commits whose runs this delivery recorded: where the audit check is reported."""
    shown: dict[str, RunRecord] = field(default_factory=dict)
    """Each run this delivery published, as last published, by run id."""
    posted: set[str] = field(default_factory=set)
    """The runs whose evidence comment this delivery posted."""

    def model_failed(self) -> list[RunRecord]:
        """The runs this delivery saw end failed because of the model."""
        return [r for r in self.shown.values() if r.state == "failed" and r.failure == "model"]

    def on_audit_branch(self, path: str) -> str:
        """A link to a file of the pushed audit branch (records and artifacts live there)."""
        return f"{self.html_url}/blob/{AUDIT}/{path}"


class PullRequestDoor:
    def __init__(
        self,
        settings: Settings,
        backend: SandboxBackend,
        state: PullState,
        client_for: Callable[[int | None], GitHubClient] | None = None,
        model_factory: Callable[[dict[str, Any]], Model] | None = None,
        on_publish: Callable[[RunRecord], None] = lambda rec: None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.state = state
        self.client_for = client_for or self._client
        self._clients: dict[int | None, GitHubClient] = {}
        self._clients_lock = threading.Lock()
        self.model_factory = model_factory
        self.on_publish = on_publish
        self._recovered: set[str] = set()
        """Repositories whose runs left in flight by a dead process this process resolved."""
        self._recovered_lock = threading.Lock()
        self._reindexed: set[str] = set()
        """Repositories whose runs this process checked the index for (rebuild.py)."""
        # The host's secrets and the bot's own (settings may come from a file, not the
        # environment); each repository's engine widens it with what its policy names.
        self.redact = Redactor.for_host(
            os.environ,
            [
                *settings.webhook_secrets,
                settings.app_private_key,
                settings.github_token,
                settings.oauth_client_secret,
                settings.session_secret,
            ],
        )
        redact_logs(self.redact)

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, d: Delivery) -> str:
        """Handle or ignore one delivery; returns what was done (for logs and tests)."""
        p = d.payload
        repo = (p.get("repository") or {}).get("full_name")
        if not isinstance(repo, str):
            return "ignored: no repository"
        inst = (p.get("installation") or {}).get("id")
        self.state.seen_repo(repo, inst)
        handler = self._route(d)
        if isinstance(handler, str):
            return handler
        ctx = self._ctx(repo, inst)
        try:
            self._reindex(ctx)
            self._recover(ctx)
            return handler(ctx)
        except IdentityError as exc:  # a person without a numeric id is nobody: fail closed
            return f"refused: {exc}"
        except Exception as exc:
            if failed := ctx.model_failed():
                raise self._not_retried(ctx, failed, exc) from exc
            raise
        finally:
            # Whatever the handler did or where it stopped, what it recorded is pushed (and
            # a push that fails is reported, not raised), so no record is left behind.
            self._push_audit(ctx)

    def _not_retried(self, ctx: Context, failed: list[RunRecord], exc: Exception) -> NotRetried:
        """The delivery failed after a run the model failed: a retry would run the model
        again (a rerun, an answer) and pay for it, to fail the same way. So it is not
        retried; each such run's failure is shown on the PR if it was not yet."""
        for rec in failed:
            if rec.run_id in ctx.posted:
                continue
            try:
                self.publish(ctx, rec)
            except Exception as again:  # GitHub still refusing: the log says it, once
                log.warning("%s: cannot show %s's failure: %s", ctx.full, rec.run_id, again)
        names = ", ".join(f"{r.job_name} ({r.run_id})" for r in failed)
        return NotRetried(f"the model failed {names}; then {type(exc).__name__}: {exc}")

    def _route(self, d: Delivery) -> Callable[[Context], str] | str:
        p = d.payload
        pr_number = int((p.get("pull_request") or {}).get("number") or 0)
        key = (d.event, d.action)
        if d.event == "pull_request" and d.action in ("opened", "synchronize", "reopened"):
            return lambda ctx: self.on_pull(ctx, pr_number)
        if key == ("pull_request", "closed"):
            return lambda ctx: self.on_closed(ctx, pr_number)
        if key == ("pull_request_review", "submitted"):
            return lambda ctx: self.on_review(ctx, pr_number, p["review"])
        if key == ("pull_request_review", "dismissed"):
            return lambda ctx: self.on_dismissed(ctx, pr_number, p["review"])
        if key == ("issue_comment", "created"):
            return lambda ctx: self.on_comment(ctx, p)
        if d.event == "issues" and d.action in ("opened", "labeled"):
            return lambda ctx: self.on_issue(ctx, p["issue"])
        if d.event == runners.SCHEDULE_EVENT:
            return lambda ctx: runners.on_schedule(self, ctx)
        if key == ("workflow_run", "completed"):
            return lambda ctx: runners.on_workflow_run(self, ctx)
        if d.event == "agentplane.reconcile":
            return lambda ctx: self.on_pull(ctx, p["number"])
        if d.event == WEB_DECISION:
            return lambda ctx: on_web_decision(self, ctx, p)
        if d.event == WEB_START:
            return lambda ctx: on_web_start(self, ctx, p)
        return f"ignored: {d.event}.{d.action}"

    def _push_audit(self, ctx: Context) -> None:
        """Push the bot's log; on every commit this delivery touched, say how the replica
        stands (a failure names what moved or failed), and log a problem once."""
        replica = ctx.checkout.push_audit()
        problem = replica.problem
        if problem is None and not ctx.touched:
            return
        head = ctx.engine.audit.head()
        digest = head.digest if head else None
        title = "audit branch: not pushed" if problem else "audit branch pushed"
        summary = (
            f"{problem}.\n\n" if problem else f"The remote `{AUDIT}` holds the bot's log.\n\n"
        ) + f"The bot's log head: `{digest}`"
        for sha in sorted(ctx.touched):
            try:
                ctx.client.check(
                    ctx.full,
                    CHECK_AUDIT,
                    sha,
                    conclusion="failure" if problem else "success",
                    title=title,
                    summary=ctx.engine.redactor(summary),
                )
            except AgentplaneError as exc:  # reporting must not hide what the handler did
                log.warning("%s: cannot report the audit branch on %s: %s", ctx.full, sha, exc)

    def _recover(self, ctx: Context) -> None:
        """Once per repository per process: resolve the runs a killed bot left in flight
        (Engine.recover), and show each where it came from. A failure here is logged and
        tried again on the next delivery; it never stops this one."""
        with self._recovered_lock:
            if ctx.full in self._recovered:
                return
        try:
            resolved = ctx.engine.recover()
        except AgentplaneError as exc:
            log.warning("%s: cannot resolve runs left in flight: %s", ctx.full, exc)
            return
        with self._recovered_lock:
            self._recovered.add(ctx.full)
        for rec in resolved:
            log.info("%s: resolved %s left in flight: %s", ctx.full, rec.run_id, rec.state)
            number = rec.door_ref.number if rec.door_ref else None
            if not number:
                continue
            try:
                if rec.state == "applied" and rec.applied_commit():
                    self._push_recovered(ctx, ctx.client.pull(ctx.full, number), rec)
                self.publish(ctx, rec)
            except AgentplaneError as exc:
                log.warning("%s: cannot report recovered run %s: %s", ctx.full, rec.run_id, exc)

    def _reindex(self, ctx: Context) -> None:
        """Once per repository per process: put back the runs a lost data directory took
        from the index (bot.doors.github.rebuild). A failure is logged and tried again on
        the next delivery."""
        with self._recovered_lock:
            if ctx.full in self._reindexed:
                return
        try:
            added = rebuild.reindex(self.state, ctx.full, ctx.engine, ctx.client)
        except AgentplaneError as exc:
            log.warning("%s: cannot rebuild the run index from the audit branch: %s", ctx.full, exc)
            return
        with self._recovered_lock:
            self._reindexed.add(ctx.full)
        if added:
            log.info("%s: %d run(s) put back in the index from the audit branch", ctx.full, added)

    def _catch_up(self, ctx: Context, pr: PullInfo) -> None:
        """Finish what an earlier handling of this PR did not (killed, or GitHub failed it
        half way): an applied run whose commit is not on the PR branch goes there (or to
        its run branch, when the head moved), and a run whose latest record was never
        shown is shown. Both read the audit record and GitHub's state, never the model,
        and both are idempotent: a run already pushed and shown costs no write."""
        # Each job's comment shows its newest run; an older (superseded) run is not shown.
        newest = {job: run_id for job, _, run_id in self.state.runs(ctx.full, pr.number)}
        for run_id in newest.values():
            rec = ctx.engine.load(run_id)
            applied = rec.applied_commit() if rec.state == "applied" else None
            if applied and pr.state == "open" and not self._landed(ctx, pr, applied[0]):
                ctx.engine.repo = ctx.checkout.sync(
                    ctx.engine.repo.default_branch(), [], [pr.number]
                )
                self._push_recovered(ctx, pr, rec)
            if self.state.shown_as(ctx.full, run_id) != _shown_mark(rec):
                self.publish(ctx, rec)

    def _landed(self, ctx: Context, pr: PullInfo, commit: str) -> bool:
        """Whether commit is where it was meant to go: in the PR head's history, or (a
        fork, a moved head) on its run branch at GitHub."""
        if pr.head_sha == commit or ctx.checkout.contains(pr.head_sha, commit):
            return True
        return ctx.checkout.remote_has(commit)

    def _push_recovered(self, ctx: Context, pr: PullInfo, rec: RunRecord) -> None:
        """An approval applied after a crash goes onto the PR branch only if the head is
        still the commit approved; otherwise it stays on its run branch, and the PR is told."""
        applied = rec.applied_commit()
        assert applied is not None
        if pr.state == "open" and pr.head_sha == rec.commit:
            self._push_applied(ctx, pr, rec)
            return
        commit, branch = applied
        self._record_on_github(ctx, rec)
        ctx.checkout.push_commit(commit, branch)
        self._comment(
            ctx,
            pr.number,
            f"recovered-apply:{rec.run_id}",
            f"`{rec.job_name}` was applied after a restart onto branch `{branch}`, not onto "
            f"`{pr.head_ref}`: the head moved from {rec.commit[:12]} since the approval.",
        )

    def _person(self, user: Mapping[str, Any]) -> tuple[str, str]:
        """(identity key, login) of a webhook's or the API's `user` object; the key is
        what is compared, the login only what is shown."""
        key = from_github(user)
        login = str(user.get("login") or key)
        self.state.saw(key, login)
        return key, login

    def _resolver(self, client: GitHubClient) -> Resolver:
        """Policy's logins -> GitHub ids, through the API; the first id a login resolves to
        is kept, so an account that registers a login after its owner renamed away from it
        is not the person policy named."""

        def resolve(login: str) -> int | None:
            pinned = self.state.pinned_login(login)
            if pinned is not None:
                return pinned
            uid = client.user_id(login)
            return None if uid is None else self.state.pin_login(login, uid)

        return resolve

    def _names(self, rec: RunRecord) -> dict[str, str]:
        """Logins to show for the people a record names (it keeps their ids)."""
        keys = {rec.requester, *(a.approver for a in rec.approvals)}
        keys |= {c.by for c in rec.clarifications}
        return {**record_names(rec), **self.state.display_names(keys)}

    def _client(self, inst: int | None) -> GitHubClient:
        """One client per installation, so its token is minted once and refreshed by
        PyGithub before it expires, not minted again for every delivery."""
        with self._clients_lock:
            if inst not in self._clients:
                self._clients[inst] = GitHubClient(self.settings, inst)
            return self._clients[inst]

    def _ctx(self, full: str, inst: int | None) -> Context:
        try:
            return self._open(full, inst)
        except Exception as exc:
            if not unauthorized(exc):
                raise
            # Revoked, or expired early: forget that client, and its token, and try once more.
            with self._clients_lock:
                self._clients.pop(inst, None)
            return self._open(full, inst)

    def _open(self, full: str, inst: int | None) -> Context:
        client = self.client_for(inst)
        meta = client.repo(full)
        url = (
            self.settings.clone_url.format(owner=meta.owner.login, repo=meta.name)
            if self.settings.clone_url
            else meta.clone_url
        )
        checkout = Checkout(self.settings.data_dir / "repos", full, url, client.token())
        repo = checkout.sync(meta.default_branch, [])
        kw: dict[str, Any] = {"model_factory": self.model_factory} if self.model_factory else {}
        engine = Engine(repo, self.backend, **kw)
        engine.redactor = engine.redactor.with_secrets(self.redact.secrets)
        engine.resolve_login = self._resolver(client)
        if checkout.replica.state == "ahead":
            self._adopt(checkout, engine)
        return Context(client, full, checkout, engine, meta.html_url)

    @staticmethod
    def _adopt(checkout: Checkout, engine: Engine) -> None:
        """Records a runner pushed (signed by a key policy lists) join the bot's log."""
        try:
            engine.policy()  # arms the log with policy's signers, which adopting checks
        except AgentplaneError as exc:
            log.warning("%s: the replica is not adopted: policy unreadable: %s", checkout.name, exc)
            return
        checkout.adopt(engine.audit)

    # -- pull requests --------------------------------------------------------------------

    def on_pull(self, ctx: Context, number: int) -> str:
        pr = ctx.client.pull(ctx.full, number)
        if pr.state != "open":
            return "ignored: closed"
        if pr.is_fork and not self.settings.allow_forks:
            self._comment(
                ctx,
                number,
                "fork",
                "agentplane does not run jobs from fork pull "
                "requests here (policy: allow_forks is off).",
            )
            return "refused: fork"
        ctx.engine.repo = ctx.checkout.sync(ctx.engine.repo.default_branch(), [], [pr.number])
        self._catch_up(ctx, pr)
        if "Agentplane-Run:" in ctx.checkout.git("log", "-1", "--format=%B", pr.head_sha):
            return "ignored: the head is agentplane's own applied commit"
        governing = [f for f, _ in pr.files if f.startswith(GOVERNING)]
        if governing:
            self._policy_gate(ctx, pr, governing)
        jobs = self._job_files(pr)
        if not jobs and not governing and is_proposal_pr(pr):
            return runners.carry(self, ctx, pr)
        if not jobs:
            return "ignored: no job files" if not governing else "gated: policy change"
        valid = self._validate(ctx, pr, jobs)
        for job in valid:
            self._run_job(ctx, pr, job)
        return f"ran {len(valid)} of {len(jobs)} job(s)"

    @staticmethod
    def _job_files(pr: PullInfo) -> list[str]:
        return [
            f
            for f, status in pr.files
            if f.startswith(JOBS_PREFIX) and f.endswith((".yaml", ".yml")) and status != "removed"
        ]

    def _validate(self, ctx: Context, pr: PullInfo, jobs: list[str]) -> list[str]:
        errors, valid = [], []
        for path in jobs:
            try:  # reading refuses too (a link, bytes past the size cap)
                parse_job(path, ctx.engine.repo.read_file(pr.head_sha, path) or "")
                valid.append(path)
            except ValidationFailed as exc:
                errors.extend(exc.errors)
        ctx.client.check(
            ctx.full,
            CHECK_VALIDATE,
            pr.head_sha,
            conclusion="failure" if errors else "success",
            title=f"{len(errors)} error(s) in job files" if errors else "job files are valid",
            summary="\n".join(f"- `{e.render()}`" for e in errors) or "All job files valid.",
            annotations=[
                {
                    "path": e.path,
                    "start_line": e.line,
                    "end_line": e.line,
                    "start_column": e.col,
                    "end_column": e.col,
                    "annotation_level": "failure",
                    "title": e.field or "job file",
                    "message": e.message,
                }
                for e in errors
            ],
        )
        return valid

    def _run_job(self, ctx: Context, pr: PullInfo, job: str) -> None:
        known = self.state.run_for(ctx.full, pr.number, job, pr.head_sha)
        # A run whose process died before it proposed anything is owed again to the
        # delivery that asked for it (nothing was staged, shown as awaiting, or applied).
        if known and ctx.engine.load(known).failure != "crashed":
            return  # this head already has its run: a redelivery changes nothing
        for old_job, head, run_id in self.state.runs(ctx.full, pr.number):
            if old_job == job and head != pr.head_sha:
                ctx.engine.cancel(run_id, f"superseded by a push ({pr.head_sha[:12]})")
        req = self._request(ctx, pr, job)
        if runners.runs_on_actions(ctx.engine, req):
            runners.dispatch(self, ctx, pr, req)
            return
        rec = ctx.engine.start(req, DoorRef(repo=ctx.full, number=pr.number))
        self.state.remember(ctx.full, pr.number, job, pr.head_sha, rec.run_id)
        self.publish(ctx, rec)

    def _request(self, ctx: Context, pr: PullInfo, job: str) -> RunRequest:
        """The PR's request for one job at its head: the author asks; a job without a
        prompt takes the PR's description."""
        parsed = parse_job(job, ctx.engine.repo.read_file(pr.head_sha, job) or "")
        self.state.saw(pr.author_key, pr.author)
        return ctx.engine.request(
            job,
            door="pull_request",
            requester=pr.author_key,
            requester_name=pr.author,
            commit=pr.head_sha,
            prompt=None if parsed.prompt else (pr.body or None),
        )

    def _policy_gate(self, ctx: Context, pr: PullInfo, files: list[str]) -> None:
        owners = ", ".join(ctx.engine.policy().owners) or "(no owners: nobody can approve)"
        ctx.client.check(
            ctx.full,
            CHECK_POLICY,
            pr.head_sha,
            conclusion="action_required",
            title="changes to policy need a policy owner's approval",
            summary=f"This PR edits {', '.join(files)}. Policy is read from the default branch"
            f" only; merging needs an approving review from: {owners}.",
        )

    def _policy_review(
        self, ctx: Context, pr: PullInfo, who: tuple[str, str], commit: str | None
    ) -> str:
        """A policy owner's approval on the head clears the policy check; no one else's does."""
        key, reviewer = who
        policy = ctx.engine.policy()
        check = policy_owner_approval(
            PolicyReviewFacts(
                policy=policy,
                directory=ctx.engine.directory(policy),
                reviewer=key,
                reviewer_name=reviewer,
                author=pr.author_key,
                reviewed_commit=commit,
                head=pr.head_sha,
            )
        )
        why = check.reason
        if check.ok:
            ctx.client.check(
                ctx.full,
                CHECK_POLICY,
                pr.head_sha,
                conclusion="success",
                title=f"policy change approved by {reviewer}",
                summary=f"@{reviewer} is a policy owner and approved {commit}.",
            )
            return "policy: approved"
        self._comment(
            ctx,
            pr.number,
            f"policy-review:{reviewer}",
            f"@{reviewer}'s review does not approve the policy change: {why}",
        )
        return f"policy: {why}"

    def on_closed(self, ctx: Context, number: int, reason: str = "pull request closed") -> str:
        cancelled = 0
        for rec in self._open_runs(ctx, number, ("awaiting_approval", "needs_clarification")):
            self.publish(ctx, ctx.engine.cancel(rec.run_id, reason))
            cancelled += 1
        return f"cancelled {cancelled} run(s)"

    # -- reviews: the gate ----------------------------------------------------------------

    def _open_runs(
        self, ctx: Context, number: int, states: tuple[str, ...] = ("awaiting_approval",)
    ) -> list[RunRecord]:
        runs = (ctx.engine.load(run_id) for _, _, run_id in self.state.runs(ctx.full, number))
        return [rec for rec in runs if rec.state in states]

    def on_review(self, ctx: Context, number: int, review: dict[str, Any]) -> str:
        state = str(review.get("state", "")).lower()
        if state not in ("approved", "changes_requested"):
            return f"ignored: review {state}"
        key, reviewer = self._person(review["user"])
        pr = ctx.client.pull(ctx.full, number)
        outcomes = []
        if state == "approved" and any(f.startswith(GOVERNING) for f, _ in pr.files):
            outcomes.append(self._policy_review(ctx, pr, (key, reviewer), review.get("commit_id")))
        self._catch_up(ctx, pr)
        pushes = OwnPushes()  # one review releases every run awaiting it: see release.py
        heads = {run_id: head for _, head, run_id in self.state.runs(ctx.full, number)}
        for rec in self._open_runs(ctx, number):
            peel = runners.review_view(rec, heads.get(rec.run_id, rec.commit), pushes)
            live = pushes.live(lambda: ctx.client.pull(ctx.full, number).head_sha)
            outcome = ctx.engine.decide(
                rec.run_id,
                key,
                "approve" if state == "approved" else "deny",
                reviewed_commit=peel(review.get("commit_id")),
                live_head=runners.peeled(live, peel),
                door="pull_request",
                name=reviewer,
                timing=self._timing(ctx, rec, review) if state == "approved" else None,
            )
            counted = outcome.counted
            if not counted:
                why = with_names(outcome.reason, {key: reviewer})
                log.info(
                    "%s#%s: %s's review not counted for %s: %s",
                    ctx.full,
                    number,
                    reviewer,
                    rec.run_id,
                    why,
                )
                self._comment(
                    ctx,
                    number,
                    f"review:{review.get('id')}:{rec.run_id}",
                    f"@{reviewer}'s review does not count for `{rec.job_name}`: {why}",
                )
            rec = outcome.record
            if rec.state == "applied" and rec.applied_commit():
                self._push_applied(ctx, pr, rec, pushes)  # a browser release has no commit
            self.publish(ctx, rec)
            outcomes.append(f"{rec.job_name}: {rec.state}" + ("" if counted else NOT_COUNTED))
        return "; ".join(outcomes) or "ignored: no run awaiting approval"

    def _timing(self, ctx: Context, rec: RunRecord, review: dict[str, Any]) -> ReviewTiming:
        """GitHub's times for this review and for the evidence it would approve (the gate
        in bot.core.gates decides whether the one comes after the other)."""
        digest = rec.proposal.digest if rec.proposal else ""
        posted = self.state.evidence_at(ctx.full, rec.run_id, digest)
        if posted is None:
            # Awaiting approval from before the bot kept evidence times: show the evidence
            # now, so this review fails closed and the next one can count.
            self.publish(ctx, rec)
            posted = self.state.evidence_at(ctx.full, rec.run_id, digest)
        return ReviewTiming(github_time(review.get("submitted_at")), github_time(posted))

    def _push_applied(
        self, ctx: Context, pr: PullInfo, rec: RunRecord, pushes: OwnPushes | None = None
    ) -> None:
        """Onto the PR's branch; a fork's branch is out of the App's reach, so the applied
        commit goes to its run branch here, and the PR is told where. pushes: what this
        delivery already pushed onto the branch (a later run is merged onto it)."""
        applied = rec.applied_commit()
        assert applied is not None
        commit, branch = applied
        self._record_on_github(ctx, rec)
        pushes = pushes or OwnPushes()
        if not pr.is_fork:
            if pushes.tip is None:
                ctx.checkout.push_commit(commit, pr.head_ref)
                pushes.pushed(commit, rec.commit)
                return
            self._merge_applied(ctx, pr, rec, pushes)
            return
        ctx.checkout.push_commit(commit, branch)
        self._comment(
            ctx,
            pr.number,
            f"fork-apply:{rec.run_id}",
            f"`{rec.job_name}` is applied on branch `{branch}` of {ctx.full}: agentplane "
            f"cannot push to the fork's `{pr.head_ref}`. Merge or cherry-pick "
            f"{commit[:12]} from there.",
        )

    @staticmethod
    def _record_on_github(ctx: Context, rec: RunRecord) -> None:
        """An applied commit reaches GitHub only after the record that says so: with the
        remote audit branch refusing the push (a branch rule, a pre-receive hook) or moved
        without agentplane, the commit is held back, and _catch_up pushes it on a later
        delivery once the record is there."""
        replica = ctx.checkout.push_audit()
        if replica.state == "same":
            return
        ctx.touched.add(rec.commit)  # the audit check there says why nothing landed
        applied = rec.applied_commit()
        commit = applied[0][:12] if applied else "?"
        raise AuditError(
            f"run {rec.run_id} is applied in the bot's log, but its commit {commit} is held "
            f"back until its record is on origin's {AUDIT} branch: "
            f"{replica.problem or replica.state}. Once that branch takes the bot's pushes, "
            "the next delivery on the pull request pushes the commit"
        )

    def _merge_applied(self, ctx: Context, pr: PullInfo, rec: RunRecord, pushes: OwnPushes) -> None:
        """A second run released by the same review, committed on the same reviewed head:
        merged onto what this delivery pushed, or, when the two change the same lines,
        left on its run branch with the PR told (nobody resolves a conflict for the approver)."""
        applied = rec.applied_commit()
        assert applied is not None and pushes.tip is not None
        commit, branch = applied
        message = (
            f"agentplane: merge {rec.job_name} ({rec.run_id})\n\n"
            f"Released by the same review of {rec.commit[:12]} as the commit before it.\n\n"
            f"Agentplane-Run: {rec.run_id}\n"  # the door ignores a head with this trailer
        )
        merged = ctx.checkout.merge_onto(pushes.tip, commit, message, BOT_IDENTITY)
        if merged is not None:
            ctx.checkout.push_commit(merged, pr.head_ref)
            pushes.pushed(merged, pushes.tip)
            return
        ctx.checkout.push_commit(commit, branch)
        self._comment(
            ctx,
            pr.number,
            f"conflict-apply:{rec.run_id}",
            f"`{rec.job_name}` is applied on branch `{branch}`, not on `{pr.head_ref}`: it "
            f"changes the same lines as a run this review applied before it. Merge "
            f"{commit[:12]} from there.",
        )

    def on_dismissed(self, ctx: Context, number: int, review: dict[str, Any]) -> str:
        key, reviewer = self._person(review["user"])
        for rec in self._open_runs(ctx, number):
            self.publish(ctx, ctx.engine.withdraw(rec.run_id, key, "review dismissed"))
        return f"withdrew {reviewer}'s approval"

    # -- comments and issues --------------------------------------------------------------

    def on_comment(self, ctx: Context, p: dict[str, Any]) -> str:
        comment, issue = p["comment"], p["issue"]
        parsed = parse_comment(comment.get("body") or "")
        user = comment["user"]
        if parsed is None or user["login"].endswith("[bot]") or user.get("type") == "Bot":
            return "ignored: not a command"
        number = int(issue["number"])
        if isinstance(parsed, Reply):
            self._comment(ctx, number, f"reply:{comment['id']}", parsed.text)
            return "replied"
        key, login = self._person(user)
        problem = self._authorise(ctx, parsed, key, number)
        if problem:
            ctx.client.react(ctx.full, comment["id"], "confused")
            self._comment(ctx, number, f"reply:{comment['id']}", f"@{login}: {problem}")
            return f"refused: {problem}"
        ctx.client.react(ctx.full, comment["id"], "+1")
        reply = f"reply:{comment['id']}"
        if parsed.verb in ("plan", "rerun", "apply", "rollback") and "pull_request" not in issue:
            self._comment(ctx, number, reply, f"`{parsed.verb}` works on pull requests only.")
            return f"ignored: {parsed.verb} outside a pull request"
        if parsed.verb == "plan":
            return self.on_plan(ctx, number, reply)
        if parsed.verb == "rerun":
            self._forget_head(ctx, number)
            return self.on_pull(ctx, number)
        if parsed.verb == "apply":
            return self.on_apply(ctx, number, reply)
        if parsed.verb == "answer":
            return self.on_answer(ctx, number, key, parsed.argument)
        if parsed.verb == "cancel":
            return self.on_closed(ctx, number, f"cancelled by @{login}")
        if parsed.verb == "rollback":
            return on_rollback(self, ctx, number, (key, login), parsed.argument, reply)
        raise AssertionError(f"parse_comment returned a verb with no handler: {parsed.verb}")

    def on_plan(self, ctx: Context, number: int, key: str) -> str:
        """`/agentplane plan`: the plan of each job in the PR, at its head, posted as a
        reply; nothing is run, staged or recorded."""
        pr = ctx.client.pull(ctx.full, number)
        if pr.state != "open":
            return "ignored: closed"
        ctx.engine.repo = ctx.checkout.sync(ctx.engine.repo.default_branch(), [], [pr.number])
        jobs = self._job_files(pr)
        if not jobs:
            self._comment(ctx, number, key, "This pull request has no job files to plan.")
            return "planned 0 job(s)"
        valid = self._validate(ctx, pr, jobs)
        names = {pr.author_key: pr.author}  # the plan names its requester: show the login
        parts = [
            f"#### `{job}`\n\n"
            + fenced(with_names(render_plan(ctx.engine.plan(self._request(ctx, pr, job))), names))
            for job in valid
        ]
        invalid = len(jobs) - len(valid)
        if invalid:
            parts.append(
                f"{invalid} job file(s) do not validate: see the `{CHECK_VALIDATE}` check."
            )
        self._comment(
            ctx,
            number,
            key,
            f"Plan at {pr.head_sha[:12]} (nothing was run):\n\n" + "\n\n".join(parts),
        )
        return f"planned {len(valid)} of {len(jobs)} job(s)"

    def on_apply(self, ctx: Context, number: int, key: str) -> str:
        """`/agentplane apply`: apply each run whose counted approvals already meet every
        gate; a comment is never an approval, so otherwise say what is still pending."""
        waiting = self._open_runs(ctx, number)
        if not waiting:
            self._comment(ctx, number, key, _NOT_YET["apply"])
            return "ignored: nothing awaiting approval"
        pr = ctx.client.pull(ctx.full, number)
        outcomes, still = [], []
        pushes = OwnPushes()
        for rec in waiting:
            outcome = ctx.engine.apply_approved(
                rec.run_id,
                live_head=pushes.live(lambda: ctx.client.pull(ctx.full, number).head_sha),
            )
            rec = outcome.record
            if outcome.kind == "pending":
                still.append(f"- `{rec.job_name}`: {with_names(outcome.reason, self._names(rec))}")
            else:
                if rec.state == "applied" and rec.applied_commit():
                    self._push_applied(ctx, pr, rec, pushes)
                self.publish(ctx, rec)
            outcomes.append(f"{rec.job_name}: {outcome.kind}")
        if still:
            self._comment(
                ctx,
                number,
                key,
                "Nothing applied for these runs: approval is an approving review on this pull "
                "request, and a comment does not approve. Still pending:\n" + "\n".join(still),
            )
        return "apply: " + "; ".join(outcomes)

    def on_answer(self, ctx: Context, number: int, key: str, text: str) -> str:
        """key: the answerer's identity key (bot.core.identity)."""
        waiting = self._open_runs(ctx, number, ("needs_clarification",))
        if not waiting:
            self._comment(ctx, number, f"answer:{key}", _NOT_YET["answer"])
            return "ignored: no open question"
        for rec in waiting:
            self.publish(ctx, ctx.engine.answer(rec.run_id, key, text))
        return f"answered {len(waiting)} run(s)"

    def _authorise(self, ctx: Context, cmd: Command, key: str, number: int) -> str | None:
        """By the commenter's role in policy, never by the mere ability to comment; key is
        the commenter's identity key, compared only through policy's directory."""
        policy = ctx.engine.policy()
        runs = [ctx.engine.load(r) for _, _, r in self.state.runs(ctx.full, number)]
        check = command(
            CommandFacts(
                policy=policy,
                directory=ctx.engine.directory(policy),
                verb=cmd.verb,
                commenter=key,
                runs=tuple(RunParty(r.requester, tuple(r.plan.gates)) for r in runs),
            )
        )
        return None if check.ok else check.reason

    def _forget_head(self, ctx: Context, number: int) -> None:
        head = ctx.client.pull(ctx.full, number).head_sha
        for job, run_head, run_id in self.state.runs(ctx.full, number):
            if run_head == head:
                ctx.engine.cancel(run_id, "rerun requested")
                self.state.forget(ctx.full, number, job, head)

    def on_issue(self, ctx: Context, issue: dict[str, Any]) -> str:
        labels = {lbl.get("name") for lbl in issue.get("labels") or []}
        if "agentplane" not in labels or "pull_request" in issue:
            return "ignored: not an agentplane issue"
        number = int(issue["number"])
        match = FENCE.search(issue.get("body") or "")
        if match is None:
            self._comment(ctx, number, "issue-job", "Put the job in a fenced ```yaml block.")
            return "replied: no job block"
        name = f"issue-{number}"
        path = f"{JOBS_PREFIX}{name}.yaml"
        try:
            job = parse_job(path, match.group(1))
        except ValidationFailed as exc:
            errors = "\n".join(e.render() for e in exc.errors)
            self._comment(
                ctx,
                number,
                "issue-job",
                f"The job does not validate:\n```text\n"
                f"{errors}\n```\nLines count from the start of the yaml block.",
            )
            return "replied: invalid job"
        branch = f"agentplane/issue-{number}"
        commit = ctx.engine.repo.commit_file(
            ctx.engine.repo.policy_ref(),
            path,
            match.group(1),
            f"Add job {job.name} from issue #{number}",
        )
        ctx.checkout.push_commit(commit, branch)
        pr_number = ctx.client.create_pull(
            ctx.full,
            branch,
            ctx.engine.repo.default_branch(),
            f"agentplane job: {job.name}",
            f"Adds `{path}` from #{number}, so it runs through review.\n\n{job.prompt or ''}",
        )
        self._comment(ctx, number, "issue-job", f"Opened #{pr_number} with the job.")
        return f"opened PR #{pr_number}"

    # -- output ---------------------------------------------------------------------------

    def publish(self, ctx: Context, rec: RunRecord) -> None:
        """Evidence comment and approval check for a run, with the audit head digest."""
        self.on_publish(rec)
        ctx.touched.add(rec.commit)
        ctx.shown[rec.run_id] = rec
        head = ctx.engine.audit.head()
        digest = head.digest if head else None
        plan = rec.plan
        links = {a.name: ctx.on_audit_branch(artifact_path(a.sha256)) for a in rec.artifacts}
        names = self._names(rec)
        body = render_pr_comment(
            rec,
            render_plan(plan),
            ctx.engine.patch(rec),
            digest,
            ctx.engine.evidence(rec, links),
            names=names,
        )
        if head is not None:
            body += f"\nRecord: {ctx.on_audit_branch(entry_path(head.seq))}"
        if self.settings.public_url:
            body += f"\nRun page: {run_page_url(self.settings.public_url, ctx.full, rec.run_id)}"
        number, sha = self._where(ctx, rec)
        if number is not None:
            posted = self._comment(ctx, number, evidence_key(rec), body)
            killpoints.reached("evidence-posted")
            ctx.posted.add(rec.run_id)
            if rec.state == "awaiting_approval" and rec.proposal is not None and posted.at:
                self.state.evidence_shown(
                    ctx.full, rec.run_id, rec.proposal.digest, stamp(posted.at)
                )
        ctx.client.check(
            ctx.full,
            CHECK_APPROVAL,
            sha,
            conclusion=CONCLUSION.get(rec.state, "neutral"),
            title=f"{rec.job_name}: {rec.state}",
            summary=ctx.engine.redactor(
                f"Run `{rec.run_id}`: {with_names(rec.transitions[-1].reason, names)}\n\n"
                f"Audit head: `{digest}`"
            ),
        )
        self.state.shown(ctx.full, rec.run_id, _shown_mark(rec))

    def _where(self, ctx: Context, rec: RunRecord) -> tuple[int | None, str]:
        """The PR a run's evidence goes on, and the commit its check goes on: its own, or,
        for a run an Actions PR carries, that PR and its head."""
        if rec.door_ref and rec.door_ref.number:
            return rec.door_ref.number, rec.commit
        found = self.state.pull_of(ctx.full, rec.run_id)
        return (found[0], found[1]) if found else (None, rec.commit)

    def _comment(self, ctx: Context, number: int, key: str, body: str) -> Posted:
        return ctx.client.upsert_comment(ctx.full, number, key, ctx.engine.redactor(body))


def _shown_mark(rec: RunRecord) -> str:
    """Which record of a run was last shown on GitHub (its state and step)."""
    return f"{rec.state}:{len(rec.transitions)}"


_NOT_YET = {
    "apply": "Nothing here is waiting for approval, so there is nothing to apply. Approval is "
    "an approving review; the bot applies as soon as every gate passes.",
    "answer": "There is no open question for this pull request.",
}


def reconcile(door: PullRequestDoor, enqueue: Callable[[Delivery], bool]) -> int:
    """Catch up after downtime: redeliver failed deliveries, re-derive open PRs' state."""
    count = 0
    try:
        app = door.client_for(None)
        for d in app.failed_deliveries():
            app.redeliver(int(d["id"]))
            count += 1
    except AgentplaneError as exc:
        log.warning("reconcile: cannot list deliveries: %s", exc)
    try:  # a lost state.db forgot them: the clones and the App still know
        rebuild.relearn_repos(door.state, door.settings.data_dir / "repos", door.client_for(None))
    except AgentplaneError as exc:
        log.warning("reconcile: cannot relearn repositories: %s", exc)
    for repo, inst in door.state.repos():
        try:
            numbers = door.client_for(inst).open_pulls(repo)
        except AgentplaneError as exc:
            log.warning("reconcile: %s: %s", repo, exc)
            continue
        for n in numbers:
            payload = {"repository": {"full_name": repo}, "installation": {"id": inst}, "number": n}
            # A fresh id per pass: handling is idempotent, so repeats cost nothing.
            guid = f"reconcile-{repo}-{n}-{time.time_ns()}"
            count += enqueue(Delivery("agentplane.reconcile", guid, "reconciler", payload))
    return count


def enqueue_schedules(door: PullRequestDoor, enqueue: Callable[[Delivery], bool]) -> int:
    """One schedule delivery per repository the bot serves; the worker runs the scheduler
    for each, so scheduled runs take the same queue, leases and path as webhooks."""
    count = 0
    for repo, inst in door.state.repos():
        payload = {"repository": {"full_name": repo}, "installation": {"id": inst}}
        guid = f"schedule-{repo}-{time.time_ns()}"
        count += enqueue(Delivery(runners.SCHEDULE_EVENT, guid, "scheduler", payload))
    return count
