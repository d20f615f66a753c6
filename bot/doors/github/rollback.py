"""`/agentplane rollback [RUN]` on a pull request: undo one of its applied runs as a new run.

The rollback is the engine's (bot.run.rollback): planned with policy for the commenter, a
proposal computed from what the run applied (a revert of its commit, onto the PR's head),
the same gates. Here it becomes a run of this PR like any other: its evidence has a comment
of its own, and an approving review of the head applies it, pushing the revert commit onto
the PR branch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.errors import AgentplaneError
from bot.core.record import DoorRef, RunRecord

if TYPE_CHECKING:
    from bot.doors.github.flow import Context, PullRequestDoor


def evidence_key(rec: RunRecord) -> str:
    """The upsert key of a run's evidence comment: one per job, and one per job's rollback."""
    return f"{'rollback' if rec.rollback_of else 'run'}:{rec.job_path}"


def on_rollback(
    door: PullRequestDoor,
    ctx: Context,
    number: int,
    who: tuple[str, str],
    argument: str,
    reply: str,
) -> str:
    key, login = who
    pr = ctx.client.pull(ctx.full, number)
    if pr.state != "open":
        door._comment(
            ctx, number, reply, "This pull request is closed: roll back with `agentplane rollback`."
        )
        return "ignored: closed"
    ctx.engine.repo = ctx.checkout.sync(ctx.engine.repo.default_branch(), [], [number])
    runs = [ctx.engine.load(r) for _, _, r in door.state.runs(ctx.full, number)]
    applied = [r for r in runs if r.state == "applied" and r.rollback_of is None]
    wanted = argument.split()[0] if argument else None
    chosen = [r for r in applied if r.run_id == wanted] if wanted else applied[-1:]
    if not chosen:
        what = f"run `{wanted}`" if wanted else "an applied run"
        door._comment(
            ctx, number, reply, f"@{login}: this pull request has no {what} to roll back."
        )
        return "ignored: nothing to roll back"
    old = chosen[0]
    try:
        rec = ctx.engine.rollback(
            old.run_id,
            requester=key,
            onto=pr.head_sha,
            door="comment",
            door_ref=DoorRef(repo=ctx.full, number=number),
        )
    except AgentplaneError as exc:
        door._comment(ctx, number, reply, f"@{login}: cannot roll back `{old.run_id}`: {exc}")
        return f"refused: {exc}"
    door.state.remember(ctx.full, number, f"{old.job_path}#rollback", pr.head_sha, rec.run_id)
    door.publish(ctx, rec)
    return f"rollback of {old.run_id}: {rec.state}"
