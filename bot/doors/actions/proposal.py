"""The pull request that carries a run's proposal, so approval happens by review, on GitHub.

The proposal is committed on top of the run's commit and pushed to the job's proposal
branch (`agentplane/proposal/<job>`); the PR from that branch is opened once and reused by
later runs of the job. One comment, found again by its hidden key, carries the evidence and
the run id marker `<!-- agentplane:run=<run id> -->`: the bot's PR door reads that marker,
checks it against the record (the record's door_ref.branch is the PR's head branch, and the
head commit's diff is the proposal), and an approving review releases that run only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.core.record import PATCH, RunRecord
from bot.doors.actions.replica import push_branch
from bot.doors.github.client import GitHubClient
from bot.run.engine import Engine

EVIDENCE_KEY = "actions-run"
"""The upsert key of the evidence comment (marker `<!-- agentplane:actions-run -->`)."""
_RUN = re.compile(r"<!-- agentplane:run=([A-Za-z0-9._-]+) -->")


def run_marker(run_id: str) -> str:
    return f"<!-- agentplane:run={run_id} -->"


def marked_run(body: str) -> str | None:
    """The run id a comment's marker names, or None."""
    found = _RUN.search(body)
    return found.group(1) if found else None


PROPOSAL_PREFIX = "agentplane/proposal/"


def proposal_branch(job_name: str) -> str:
    return f"{PROPOSAL_PREFIX}{job_name}"


@dataclass(frozen=True)
class Opened:
    number: int
    created: bool
    superseded: str | None
    """The run the PR carried before this one (now to be cancelled), if any."""


def reviewable(rec: RunRecord) -> bool:
    """A PR can carry the proposal: it waits for approval and changes files."""
    return rec.state == "awaiting_approval" and bool(rec.proposal and rec.proposal.of_kind(PATCH))


def commit_proposal(engine: Engine, rec: RunRecord, author: tuple[str, str]) -> str:
    """The proposal as one commit on the run's commit (not on any branch of this clone's).
    Made once per run: a delivery given again (after a crash) finds the commit it made."""
    ref = f"agentplane/local/{rec.run_id}"
    if (made := engine.repo.resolve(f"refs/heads/{ref}")) is not None:
        return made
    when = datetime.now(UTC).isoformat(timespec="seconds")
    digest = rec.proposal.digest if rec.proposal else ""
    message = f"agentplane: {rec.job_name} (run {rec.run_id})\n\nProposal {digest}\n"
    return engine.repo.commit_patch(
        rec.commit, engine.patch(rec), ref, message, author, when
    )


def open_or_update(
    client: GitHubClient,
    repository: str,
    base: str,
    rec: RunRecord,
    commit: str,
    evidence: str,
    engine: Engine,
) -> Opened:
    """Push the proposal commit and open the job's PR, or point the open one at this run."""
    branch = proposal_branch(rec.job_name)
    push_branch(engine.repo.root, commit, branch)
    repo = client.repo(repository)
    owner = repository.split("/")[0]
    pulls = list(client.call(repo.get_pulls, state="open", head=f"{owner}:{branch}"))
    created = not pulls
    if created:
        body = (
            f"agentplane run `{rec.run_id}` of `{rec.job_name}` proposes this change.\n\n"
            "Review it here: an approving review by an approver policy names releases the "
            "run the evidence comment below marks (and only that run). A newer run of the "
            "job replaces this branch and the comment."
        )
        number = client.create_pull(
            repository, branch, base, f"agentplane: {rec.job_name}", engine.redactor(body)
        )
        superseded = None
    else:
        number = int(pulls[0].number)
        superseded = carried_run_id(client, repository, number)
    client.upsert_comment(
        repository, number, EVIDENCE_KEY, engine.redactor(f"{run_marker(rec.run_id)}\n{evidence}")
    )
    return Opened(number, created, superseded if superseded != rec.run_id else None)


def carried_run_id(client: GitHubClient, repository: str, number: int) -> str | None:
    """The run a proposal PR's evidence comment marks (anyone can write a marker: the bot's
    door checks it against the record before it believes it, see bot.doors.github.carried)."""
    issue = client.call(client.repo(repository).get_issue, number)
    for comment in client.call(issue.get_comments):
        body = comment.body or ""
        if f"<!-- agentplane:{EVIDENCE_KEY} -->" in body:
            return marked_run(body)
    return None
