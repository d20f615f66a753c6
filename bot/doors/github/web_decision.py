"""An approve or deny from a run page, handled by the worker like a review.

The run page (bot.doors.web) only checks who is signed in and what they were shown; it
puts the decision on the bot's durable queue, and the worker takes it through the
engine's gates as door `web` (policy's `approvals.doors` says whether that door counts),
applies and pushes as a review would, and updates the pull request's evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from bot.core.errors import NotAwaitingApproval
from bot.core.gates import ReviewTiming

if TYPE_CHECKING:
    from bot.doors.github.flow import Context, PullRequestDoor

WEB_DECISION = "agentplane.web_decision"
"""The event name of a decision from a run page (the bot's own, never GitHub's)."""


def _time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def on_web_decision(door: PullRequestDoor, ctx: Context, p: dict[str, Any]) -> str:
    key, login = door._person(p["approver"])
    decision: Literal["approve", "deny"] = "approve" if p.get("decision") == "approve" else "deny"
    run_id = str(p["run_id"])
    rec = ctx.engine.load(run_id)
    number = rec.door_ref.number if rec.door_ref and rec.door_ref.repo == ctx.full else None
    try:
        outcome = ctx.engine.decide(
            run_id,
            key,
            decision,
            reviewed_commit=str(p["reviewed_commit"]),
            reviewed_digest=str(p["reviewed_digest"]),
            live_head=(lambda: ctx.client.pull(ctx.full, number).head_sha) if number else None,
            door="web",
            name=login,
            timing=ReviewTiming(_time(p.get("submitted_at")), _time(p.get("shown_at"))),
        )
    except NotAwaitingApproval:
        return f"ignored: {run_id} is not awaiting approval"
    rec = outcome.record
    if number and rec.state == "applied" and rec.applied_commit():
        door._push_applied(ctx, ctx.client.pull(ctx.full, number), rec)
    door.publish(ctx, rec)
    return f"web {decision} by {login}: {rec.state}" + ("" if outcome.counted else " (not counted)")
