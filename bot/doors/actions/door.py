"""A run on an Actions runner, start to finish: the audit branch from origin, the run through
the engine (as `agentplane run` starts it), the proposal's PR, the evidence in the step
summary, the audit commits pushed, and the step's outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.adapters.git import run_git
from bot.core.record import RunRecord
from bot.core.render import render_plan, render_pr_comment
from bot.doors.actions.context import SCHEDULED, ActionsContext
from bot.doors.actions.dispatched import DispatchRequest
from bot.doors.actions.files import append_summary, set_outputs
from bot.doors.actions.proposal import (
    commit_proposal,
    open_or_update,
    proposal_branch,
    reviewable,
)
from bot.doors.actions.replica import fetch_audit, push_audit
from bot.doors.github.client import GitHubClient
from bot.doors.schedule.runner import Scheduler
from bot.run.engine import Engine

OK_STATES = frozenset({"awaiting_approval", "completed", "applied", "needs_clarification"})
"""A step that leaves its run in one of these succeeded; any other end fails the step."""


@dataclass
class Result:
    records: list[RecordOut] = field(default_factory=list)
    audit_head: str = ""
    ok: bool = True


@dataclass(frozen=True)
class RecordOut:
    record: RunRecord
    pull: int | None
    drift: str | None = None


def _identity(engine: Engine) -> tuple[str, str]:
    ident = run_git("var", "GIT_COMMITTER_IDENT", cwd=engine.repo.root).stdout
    name, _, rest = ident.partition(" <")
    return name.strip(), rest.split(">", 1)[0]


class ActionsDoor:
    def __init__(
        self,
        engine: Engine,
        ctx: ActionsContext,
        client: Callable[[], GitHubClient] | None,
        audit_push: bool = True,
        sandbox_note: str = "",
    ) -> None:
        self.engine = engine
        self.ctx = ctx
        self.client = client
        self.audit_push = audit_push
        self.sandbox_note = sandbox_note

    def run(self, job: str, request: DispatchRequest | None = None) -> Result:
        root = self.engine.repo.root
        fetch_audit(root)
        outs: list[RecordOut] = []
        if request is not None:
            outs.append(self._dispatched(request))
        elif self.ctx.scheduled(job):
            scheduler = Scheduler(self.engine)
            started, listing = scheduler.run(
                door_ref=lambda j: self.ctx.door_ref(proposal_branch(j.name)),
                only=None if job == SCHEDULED else job,
            )
            lines = [f"- `{v.job.name}`: {v.reason}" for v in listing.verdicts]
            lines += [f"- problem: {p}" for p in listing.problems]
            append_summary(
                self.ctx.summary_path,
                "### agentplane schedule\n\n" + "\n".join(lines or ["- no scheduled jobs"]) + "\n",
            )
            for s in started:
                outs.append(self._publish(s.record, s.drift))
        else:
            door, requester, name = self.ctx.requester()
            req = self.engine.request(job, door=door, requester=requester, requester_name=name)
            rec = self.engine.start(req, door_ref=self.ctx.door_ref(proposal_branch(req.job.name)))
            outs.append(self._publish(rec, None))
        head = self.engine.audit.head()
        if self.audit_push:
            push_audit(root)
        result = Result(
            outs,
            head.digest if head else "",
            all(o.record.state in OK_STATES or o.drift is not None for o in outs),
        )
        self._outputs(result)
        return result

    def _dispatched(self, request: DispatchRequest) -> RecordOut:
        """A pull request's run the bot sent here: run as that PR's run, at its head, for its
        author; the bot shows the evidence on the PR once these records reach it."""
        number = request.number
        refspec = f"+refs/pull/{number}/head:refs/remotes/origin/pull/{number}"
        run_git("fetch", "-q", "origin", refspec, cwd=self.engine.repo.root)
        req = self.engine.request(
            request.job,
            door="pull_request",
            requester=request.requester,
            requester_name=request.requester_name,
            commit=request.commit,
            prompt=request.prompt,
        )
        rec = self.engine.start(req, door_ref=self.ctx.door_ref(number=number, dispatch=request.id))
        body = f"Dispatched by the bot for pull request #{number}\n\n" + self._evidence(rec)
        append_summary(self.ctx.summary_path, body)
        return RecordOut(rec, number)

    def _publish(self, rec: RunRecord, drift: str | None) -> RecordOut:
        number = None
        if drift is None and reviewable(rec) and self.client is not None:
            commit = commit_proposal(self.engine, rec, _identity(self.engine))
            client = self.client()
            opened = open_or_update(
                client,
                self.ctx.repository,
                self.engine.repo.default_branch(),
                rec,
                commit,
                self._evidence(rec),
                self.engine,
            )
            number = opened.number
            if opened.superseded:
                self.engine.cancel(
                    opened.superseded, f"superseded by run {rec.run_id} on PR #{number}"
                )
        body = self._evidence(rec)
        if drift is not None:
            said = drift or "none: the job would change nothing"
            body = f"**Drift** (plan-only schedule): {said}\n\n" + body
        if number is not None:
            body = f"Proposal: pull request #{number}\n\n" + body
        append_summary(self.ctx.summary_path, body)
        return RecordOut(rec, number, drift)

    def _evidence(self, rec: RunRecord) -> str:
        head = self.engine.audit.head()
        text = render_pr_comment(
            rec,
            render_plan(rec.plan),
            self.engine.patch(rec),
            head.digest if head else None,
            self.engine.evidence(rec),
            redact=self.engine.redactor,
        )
        where = f"Door `{rec.door}`, workflow run {self.ctx.run_url}"
        return f"{text}\n\n{where}" + (f"\n\n{self.sandbox_note}" if self.sandbox_note else "")

    def _outputs(self, result: Result) -> None:
        last = result.records[-1].record if result.records else None
        runs = [
            {"run_id": o.record.run_id, "state": o.record.state, "pull": o.pull, "drift": o.drift}
            for o in result.records
        ]
        set_outputs(
            self.ctx.output_path,
            {
                "run-id": last.run_id if last else "",
                "state": last.state if last else "",
                "audit-head": result.audit_head,
                "runs": json.dumps(runs),
            },
        )
