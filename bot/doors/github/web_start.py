"""A run started from a job's page in serve (the web door), run by the worker.

The page (bot.doors.web) checks the session, the CSRF token and GitHub's permission, and
puts the start on the bot's durable queue: like every delivery it is leased, retried
after a crash, and deduplicated by its id (one per form the page showed, so a form posted
twice starts one run). The worker asks GitHub again (the page's answer was cached, and the
queue may have held the start for a while), then takes the job through the one path as
door `web`: policy's requester rules, plan, gates and record, at the default branch's
head. A proposal goes to the job's proposal PR, as a scheduled run's does, so it is
approved where policy says: a review there, or the run page if policy lets door `web`
approve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.errors import AgentplaneError
from bot.core.record import DoorRef, RunRecord
from bot.doors.actions.proposal import commit_proposal, open_or_update, proposal_branch, reviewable
from bot.doors.github import runners
from bot.doors.web.access import WRITE
from bot.run.apply import BOT_IDENTITY

if TYPE_CHECKING:
    from bot.doors.github.flow import Context, PullRequestDoor
    from bot.run.engine import Engine

WEB_START = "agentplane.web_start"
"""The event name of a start from a job's page (the bot's own, never GitHub's)."""
JOBS_PREFIX = ".agentplane/jobs/"
MAX_PROMPT = 32 * 1024


def start_payload(
    full: str,
    installation: int | None,
    job_path: str,
    prompt: str | None,
    uid: int,
    login: str,
    start: str,
) -> dict[str, object]:
    return {
        "start": start,
        "repository": {"full_name": full},
        "installation": {"id": installation},
        "job": job_path,
        "prompt": prompt,
        "requester": {"id": uid, "login": login},
    }


def _job_path(raw: object) -> str | None:
    path = str(raw)
    name = path.removeprefix(JOBS_PREFIX)
    ok = path.startswith(JOBS_PREFIX) and name.endswith((".yaml", ".yml"))
    return path if ok and "/" not in name and not name.startswith(".") else None


def _started(engine: Engine, full: str, start: str | None) -> RunRecord | None:
    if start is None:
        return None
    for run_id in reversed(engine.audit.run_ids()):
        rec = engine.load(run_id)
        if rec.door == "web" and rec.door_ref and rec.door_ref.start == start:
            return rec if rec.door_ref.repo == full else None
    return None


def on_web_start(door: PullRequestDoor, ctx: Context, p: dict[str, Any]) -> str:
    key, login = door._person(p["requester"])
    uid = int(key.removeprefix("github:"))
    try:
        permission, answered = ctx.client.collaborator(ctx.full, login)
    except AgentplaneError as exc:
        raise AgentplaneError(f"cannot confirm {login}'s permission: {exc}") from exc
    if answered != uid:  # the login now names another account (a rename): not them
        return f"refused: {login} on GitHub is no longer the account that asked"
    if permission not in WRITE:
        return f"refused: GitHub gives {login} {permission}, not write, on {ctx.full}"
    path = _job_path(p.get("job"))
    if path is None:
        return f"refused: {str(p.get('job'))[:100]!r} is not a job file"
    prompt = p.get("prompt")
    prompt = str(prompt)[:MAX_PROMPT] if prompt else None
    engine = ctx.engine
    commit = str(engine.repo.repo.commit(engine.repo.policy_ref()).hexsha)
    try:
        req = engine.request(
            path, prompt=prompt, door="web", requester=key, requester_name=login, commit=commit
        )
    except AgentplaneError as exc:  # no such job at the head, or it does not validate
        return f"refused: {exc}"
    if runners.runs_on_actions(engine, req):
        return f"refused: {req.job.name} runs on Actions here: start it from a pull request"
    start = str(p.get("start") or "")[:200] or None
    # A worker killed after the run was recorded but before the delivery was marked done
    # gets the start again: it carries on with that run instead of starting a second.
    rec = _started(engine, ctx.full, start) or engine.start(
        req, DoorRef(repo=ctx.full, branch=proposal_branch(req.job.name), start=start)
    )
    if not reviewable(rec):
        return f"web start by {login}: {rec.run_id} {rec.state}"
    proposal = commit_proposal(engine, rec, BOT_IDENTITY)
    opened = open_or_update(
        ctx.client,
        ctx.full,
        engine.repo.default_branch(),
        rec,
        proposal,
        "The evidence is in agentplane's comment on this pull request.",
        engine,
    )
    if opened.superseded:
        door.publish(ctx, engine.cancel(opened.superseded, f"superseded by run {rec.run_id}"))
    door.state.remember(ctx.full, opened.number, rec.job_name, proposal, rec.run_id)
    door.publish(ctx, rec)
    return f"web start by {login}: {rec.run_id} {rec.state} on #{opened.number}"
