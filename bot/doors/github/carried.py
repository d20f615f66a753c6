"""A pull request an Actions runner opened for its run (bot.doors.actions.proposal): the bot
treats it as that run's PR, so an approving review there releases exactly that run.

The PR changes no job file, so nothing in it starts a run; the run already exists, in the
records the runner signed and pushed (adopted into the bot's log, see checkout.adopt). The
marker naming it is a comment anyone could write, so it is believed only when the record
agrees: the run awaits approval, its door_ref names this PR's head branch, and the head is
one commit on the run's commit whose tree is exactly that commit plus the proposal.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.errors import AgentplaneError
from bot.core.record import RunRecord
from bot.doors.actions.proposal import PROPOSAL_PREFIX, carried_run_id
from bot.doors.github.client import GitHubClient, PullInfo
from bot.run.engine import Engine


class NotCarried(AgentplaneError):
    """The PR is not (or not verifiably) the PR of the run its marker names."""


@dataclass(frozen=True)
class Carried:
    record: RunRecord
    head: str
    """The PR's head: the proposal commit on the run's commit."""


def is_proposal_pr(pr: PullInfo) -> bool:
    return pr.head_ref.startswith(PROPOSAL_PREFIX)


def carried(client: GitHubClient, engine: Engine, pr: PullInfo) -> Carried:
    """The run this proposal PR carries, checked against its record; NotCarried if not."""
    run_id = carried_run_id(client, pr.repo, pr.number)
    if run_id is None:
        raise NotCarried("no run marker on this proposal pull request")
    if pr.is_fork:
        raise NotCarried(f"run {run_id}'s proposal comes from a fork: only origin carries one")
    try:
        rec = engine.load(run_id)
    except AgentplaneError as exc:
        raise NotCarried(f"run {run_id} is not in the bot's audit log ({exc})") from None
    check_carries(engine, rec, pr)
    return Carried(rec, pr.head_sha)


def check_carries(engine: Engine, rec: RunRecord, pr: PullInfo) -> None:
    """Raise NotCarried unless pr's head is exactly rec's proposal on rec's commit."""
    if rec.state != "awaiting_approval":
        raise NotCarried(f"run {rec.run_id} is {rec.state}, not awaiting approval")
    branch = rec.door_ref.branch if rec.door_ref else None
    if branch != pr.head_ref:
        raise NotCarried(f"run {rec.run_id} proposed on branch {branch!r}, not {pr.head_ref!r}")
    tree, parents = engine.repo.commit_shape(pr.head_sha)
    if parents != [rec.commit]:
        raise NotCarried(
            f"the head {pr.head_sha[:12]} is not one commit on run {rec.run_id}'s commit "
            f"{rec.commit[:12]}: a push after the run changed what would be reviewed"
        )
    if tree != engine.repo.patched_tree(rec.commit, engine.patch(rec)):
        raise NotCarried(
            f"the head {pr.head_sha[:12]} does not hold exactly run {rec.run_id}'s proposal"
        )
