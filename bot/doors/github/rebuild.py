"""A lost data directory rebuilt: the door's PR <-> run index from the audit branch, and
the time GitHub first showed each awaiting run's evidence from GitHub's own comment.

The queue and the index (data_dir/queue.db, state.db) are the door's memory, not the
record: every PR run's record names its pull request (door_ref), job, head and state. So
on the first delivery for a repository after a start, each run the index lacks is put
back, and a redelivered or reconciled event finds it instead of planning it again. An
awaiting run is approvable only by a review submitted after GitHub showed its evidence;
that time is read from the evidence comment as GitHub has it (updated_at of a body that
names this run and proposal), never assumed, so a rebuilt index cannot make an early
review count. Nothing here writes to GitHub.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.core.errors import AgentplaneError
from bot.core.record import RunRecord
from bot.doors.github.client import GitHubClient, marker
from bot.doors.github.rollback import evidence_key
from bot.doors.github.state import PullState
from bot.doors.github.timing import stamp
from bot.run.engine import Engine

log = logging.getLogger("agentplane.github")

DOORS = ("pull_request", "comment")  # a PR's own runs, and its `/agentplane rollback`s
Key = tuple[int, str, str]
"""(PR number, job key, head): what the door remembers a run under."""


def index_key(rec: RunRecord, full: str) -> Key | None:
    """Where the door remembered this run, from its record; None for runs of other doors
    (the CLI, an Actions runner's carried proposal, another repository)."""
    ref = rec.door_ref
    if ref is None or ref.repo != full or not ref.number or rec.door not in DOORS:
        return None
    job = f"{rec.job_path}#rollback" if rec.rollback_of else rec.job_path
    return ref.number, job, rec.commit


def reindex(state: PullState, full: str, engine: Engine, client: GitHubClient) -> int:
    """Put back the runs of `full` the index lacks; returns how many. For each key the
    newest run wins, as when the door remembered them one by one."""
    newest: dict[Key, RunRecord] = {}
    engine.policy()  # arms the log with policy's signers before anything is read
    for run_id in engine.audit.run_ids():
        entry = engine.audit.latest(run_id)
        ref = None if entry is None else entry.record.get("door_ref")
        if not isinstance(ref, dict) or ref.get("repo") != full:
            continue  # cheap: most of a long log is other repositories' or other doors'
        try:
            rec = engine.load(run_id)
        except ValidationError:
            continue  # not a run this engine wrote
        key = index_key(rec, full)
        if key is not None:
            newest.pop(key, None)  # re-inserted: dicts keep insertion order, newest last
            newest[key] = rec
    added = 0
    for (number, job, head), rec in newest.items():
        if state.run_for(full, number, job, head) is not None:
            continue  # known (perhaps as a later run of the same head): left alone
        state.remember(full, number, job, head, rec.run_id)
        added += 1
    for rec in newest.values():
        if rec.state == "awaiting_approval" and state.pull_of(full, rec.run_id):
            _evidence_time(state, full, rec, client)
    return added


def _evidence_time(state: PullState, full: str, rec: RunRecord, client: GitHubClient) -> None:
    if rec.proposal is None or rec.door_ref is None or rec.door_ref.number is None:
        return
    digest = rec.proposal.digest
    if state.evidence_at(full, rec.run_id, digest) is not None:
        return
    try:
        issue = client.call(client.repo(full).get_issue, rec.door_ref.number)
        comments = list(client.call(issue.get_comments))
    except AgentplaneError as exc:  # the review then fails closed and the evidence is re-shown
        log.warning("%s: cannot read %s's evidence comment: %s", full, rec.run_id, exc)
        return
    tag = marker(evidence_key(rec))
    for comment in comments:
        body = str(comment.body or "")
        # This body shows this run's proposal: at the comment's last write GitHub showed it.
        if tag in body and rec.run_id in body and digest[:19] in body:
            at = _written(comment)
            if at is not None:
                state.evidence_shown(full, rec.run_id, digest, stamp(at))
            return


def _written(comment: Any) -> datetime | None:
    at = comment.updated_at or comment.created_at
    if not isinstance(at, datetime):
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def relearn_repos(state: PullState, clones: Path, app: GitHubClient) -> int:
    """Put back the repositories the reconciler walks, from the clones the bot keeps
    (`owner__name`: GitHub logins hold no underscore) and the App's installation on each;
    returns how many. A clone whose repository the App no longer reaches is left out."""
    known = {repo for repo, _ in state.repos()}
    added = 0
    for path in sorted(clones.iterdir()) if clones.is_dir() else []:
        owner, sep, name = path.name.partition("__")
        full = f"{owner}/{name}"
        if not sep or not owner or not name or full in known or path.is_symlink():
            continue
        try:
            installation = app.installation_for(full)
        except AgentplaneError as exc:
            log.warning("reconcile: %s is cloned but not reachable: %s", full, exc)
            continue
        state.seen_repo(full, installation)
        added += 1
    return added
