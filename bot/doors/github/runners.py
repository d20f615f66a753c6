"""Runs that ran on an Actions runner, shown and approved on a pull request as if the bot had
run them: a run the bot dispatched to a runner (policy: a job type's `runs_on: actions`), and
a run a scheduled Action proposed on a PR of its own (bot.doors.actions.proposal).

Either way the runner signed and pushed the records; the bot adopted them into its log (only
entries signed by keys policy lists, see checkout.adopt) and believes one as a PR's run only
after checking it against what was asked (dispatched.answers) or what the PR holds
(carried.check_carries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.core.errors import AgentplaneError
from bot.core.record import DoorRef, RunRecord
from bot.core.request import RunRequest
from bot.doors.actions.dispatched import DispatchRequest, answers, new_request
from bot.doors.actions.proposal import commit_proposal, open_or_update, proposal_branch, reviewable
from bot.doors.github.carried import NotCarried, carried
from bot.doors.github.client import PullInfo
from bot.doors.github.release import OwnPushes
from bot.doors.schedule.runner import Scheduler
from bot.run.apply import BOT_IDENTITY
from bot.run.engine import Engine

if TYPE_CHECKING:
    from bot.doors.github.flow import Context, PullRequestDoor

log = logging.getLogger("agentplane.github")


def carry(door: PullRequestDoor, ctx: Context, pr: PullInfo) -> str:
    """An Actions runner's PR for its run: remembered as that run's PR (bot.doors.github.
    carried checks the marker against the record), and the bot shows the evidence."""
    try:
        found = carried(ctx.client, ctx.engine, pr)
    except NotCarried as exc:
        return f"ignored: not a run's proposal PR: {exc}"
    rec = found.record
    if door.state.run_for(ctx.full, pr.number, rec.job_name, found.head) == rec.run_id:
        return f"ignored: already carries {rec.run_id}"  # a redelivery changes nothing
    door.state.remember(ctx.full, pr.number, rec.job_name, found.head, rec.run_id)
    door.publish(ctx, rec)
    return f"carries {rec.run_id}"


def dispatch(door: PullRequestDoor, ctx: Context, pr: PullInfo, req: RunRequest) -> None:
    """Send the run to an Actions runner (policy: the job type `runs_on: actions`); its
    records come back on the audit branch (on_workflow_run). Once per PR head and job."""
    made = door.state.dispatch_for(ctx.full, pr.number, req.job_path, pr.head_sha)
    if made is not None and made[1]:
        return  # sent already: a redelivery sends nothing
    if made is None:
        asked = new_request(
            req.job_path, req.commit, pr.number, req.requester, req.requester_name, req.prompt
        )
        door.state.dispatching(
            ctx.full, pr.number, req.job_path, pr.head_sha, asked.id, asked.model_dump_json()
        )
    else:
        asked = _asked(door, ctx.full, made[0])
    workflow = ctx.engine.policy().actions.workflow
    ctx.client.dispatch_workflow(
        ctx.full,
        workflow,
        ctx.engine.repo.default_branch(),
        {"job": req.job_path, "request": asked.model_dump_json()},
    )
    door.state.dispatched(asked.id)
    door._comment(
        ctx,
        pr.number,
        f"run:{req.job_path}",
        f"`{req.job.name}` runs on an Actions runner (workflow `{workflow}`, as policy "
        "says for its job type). Its evidence appears here when the runner's signed records "
        "reach the audit branch.",
    )


def _asked(door: PullRequestDoor, full: str, ident: str) -> DispatchRequest:
    for _, _, _, row_id, text in door.state.awaiting_runners(full):
        if row_id == ident:
            return DispatchRequest.model_validate_json(text)
    raise AgentplaneError(f"dispatch {ident} is not in the bot's state")


def on_workflow_run(door: PullRequestDoor, ctx: Context) -> str:
    """A runner finished: the records it pushed were adopted when this delivery synced
    (checkout.adopt); each dispatched run among them becomes its PR's run, shown once."""
    waiting = door.state.awaiting_runners(ctx.full)
    if not waiting:
        return "ignored: no dispatched run awaited"
    found: list[str] = []
    by_id = {ident: (number, job, head, text) for number, job, head, ident, text in waiting}
    for run_id in ctx.engine.audit.run_ids():
        rec = ctx.engine.load(run_id)
        ident = rec.door_ref.dispatch if rec.door_ref else None
        if ident not in by_id:
            continue
        number, job, head, text = by_id.pop(ident)
        why = answers(rec, DispatchRequest.model_validate_json(text))
        if why is not None:
            log.warning("%s: run %s is not the dispatched run: %s", ctx.full, run_id, why)
            continue
        door.state.dispatched(ident, run_id)
        door.state.remember(ctx.full, number, job, head, run_id)
        door.publish(ctx, rec)
        found.append(run_id)
    return f"dispatched runs back: {', '.join(found)}" if found else "no dispatched run back yet"


def runs_on_actions(engine: Engine, req: RunRequest) -> bool:
    """Policy sends this job type's PR runs to an Actions runner."""
    policy = engine.policy()
    kind = policy.job_types.get(engine.inputs.plan(req, policy).job_type)
    return kind is not None and kind.runs_on == "actions"


def review_view(rec: RunRecord, head: str, pushes: OwnPushes) -> Callable[[str | None], str | None]:
    """How a review of head is read for rec: as is, or, when head is an Actions PR's
    proposal commit on rec's commit (checked when it was remembered, see carried.py), as a
    review of rec's commit, since that commit plus the proposal is what the head shows.
    The applied commit is then merged onto that head (the PR branch already has it)."""
    if head == rec.commit:
        return lambda sha: sha
    if pushes.tip is None:
        pushes.tip = head
    return lambda sha: rec.commit if sha == head else sha


def peeled(live: Callable[[], str], peel: Callable[[str | None], str | None]) -> Callable[[], str]:
    return lambda: peel(live()) or ""


SCHEDULE_EVENT = "agentplane.schedule"
"""The delivery serve's own scheduler enqueues per repository (settings.schedule_seconds)."""


def on_schedule(door: PullRequestDoor, ctx: Context) -> str:
    """The one scheduler (bot.doors.schedule), run by the bot for installations that prefer
    it to the Action: due jobs start as the schedule; a proposal goes to the job's proposal
    PR exactly as the Action's does, and that PR carries the run."""
    started, listing = Scheduler(ctx.engine).run(
        door_ref=lambda job: DoorRef(repo=ctx.full, branch=proposal_branch(job.name))
    )
    for problem in listing.problems:
        log.warning("%s: schedule: %s", ctx.full, problem)
    said = []
    for s in started:
        rec = s.record
        said.append(f"{rec.job_name}: {rec.state}")
        if s.drift is not None or not reviewable(rec):
            continue
        commit = commit_proposal(ctx.engine, rec, BOT_IDENTITY)
        opened = open_or_update(
            ctx.client,
            ctx.full,
            ctx.engine.repo.default_branch(),
            rec,
            commit,
            "The evidence is in agentplane's comment on this pull request.",
            ctx.engine,
        )
        if opened.superseded:
            old = ctx.engine.cancel(opened.superseded, f"superseded by run {rec.run_id}")
            door.publish(ctx, old)
        door.state.remember(ctx.full, opened.number, rec.job_name, commit, rec.run_id)
        door.publish(ctx, rec)
    return "; ".join(said) or "schedule: nothing due"
