"""Git faults under the pull request door, made for real on the double's bare repository
and the bot's own clone: an audit branch the remote refuses, one that moved, a corrupted
clone. Each fails closed with a typed error that says what to do; nothing is applied on
GitHub before its record is there, and nothing is done twice once the fault is gone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygit2
import pytest

from bot.adapters.audit.log import AuditLog, entry_path
from bot.adapters.audit.verify import verify
from bot.core.errors import AgentplaneError, AuditError
from bot.demo.code import PROJECT
from bot.doors.github.flow import PullRequestDoor
from bot.doors.github.sansio import Delivery
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for
from tests.support.github.ledger import count

AUDIT = "agentplane/audit"


@pytest.fixture
def door(github: GitHubDouble, tmp_path: Path) -> PullRequestDoor:
    return door_for(github, tmp_path)


def deliver(door: PullRequestDoor, event: str, payload: dict[str, Any]) -> str:
    return door.handle(Delivery(event, f"{event}-{id(payload)}", "1", payload))


def awaiting(github: GitHubDouble, door: PullRequestDoor) -> tuple[int, str]:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, payload = github.open_pull(REPO, "add-job", author="dana")
    assert deliver(door, "pull_request", payload) == "ran 1 of 1 job(s)"
    return number, github.head_sha(REPO, number)


def evidence(github: GitHubDouble, number: int) -> str:
    (body,) = [c.body for c in github.comments(REPO, number) if f"run:{JOB}" in c.body]
    return body


def bot_clone(door: PullRequestDoor) -> Path:
    return door.settings.data_dir / "repos" / REPO.replace("/", "__")


def bot_audit_tip(door: PullRequestDoor) -> str:
    return str(AuditLog(bot_clone(door)).tip())


def refuse_audit_pushes(github: GitHubDouble, refuse: bool) -> None:
    hook = github.repo(REPO).bare / "hooks" / "pre-receive"
    if not refuse:
        hook.unlink()
        return
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        f'  [ "$ref" = refs/heads/{AUDIT} ] && echo "declined: $ref" >&2 && exit 1\n'
        "done\nexit 0\n"
    )
    hook.chmod(0o755)


def no_duplicates(github: GitHubDouble) -> None:
    ledger = count(github, REPO, ["add-job"])
    assert ledger.duplicates == [], ledger.duplicates
    assert ledger.applied_commits == 1


def test_an_apply_waits_for_its_record_when_the_remote_refuses_the_audit_branch(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, head = awaiting(github, door)
    refuse_audit_pushes(github, True)
    _, review = github.submit_review(REPO, number, "maya", "approved")
    with pytest.raises(AuditError, match="held back") as held:
        deliver(door, "pull_request_review", review)
    assert "declined: refs/heads/agentplane/audit" in str(held.value)
    assert "let the App push agentplane/audit" in str(held.value)
    assert github.head_sha(REPO, number) == head  # no commit reached the PR
    assert "Applied" not in evidence(github, number)  # nor a comment claiming it
    assert verify(AuditLog(bot_clone(door))).ok  # the bot's log holds the apply

    refuse_audit_pushes(github, False)
    # The worker retries the delivery: the record goes first, then the commit, once.
    assert deliver(door, "pull_request_review", review) == "ignored: no run awaiting approval"
    assert github.head_sha(REPO, number) != head
    assert github.repo(REPO).tip(AUDIT) == bot_audit_tip(door)
    assert "Applied" in evidence(github, number)
    no_duplicates(github)


def test_an_apply_waits_when_the_remote_audit_branch_moved(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    """Someone pushed onto the replica: the bot's push would be non-fast-forward, and it
    is never forced, so the applied commit stays in the bot's clone."""
    number, head = awaiting(github, door)
    moved = github.commit(REPO, AUDIT, {"notes.txt": "pushed by hand\n"})
    _, review = github.submit_review(REPO, number, "maya", "approved")
    with pytest.raises(AuditError, match="held back") as held:
        deliver(door, "pull_request_review", review)
    assert "moved without agentplane" in str(held.value)
    assert github.head_sha(REPO, number) == head
    assert github.repo(REPO).tip(AUDIT) == moved  # not overwritten


def test_a_push_refused_as_non_fast_forward_is_reported_with_what_to_do(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    """The replica moves between the bot's fetch and its push (a race with another
    writer): git refuses the push, and the bot says so instead of forcing it."""
    awaiting(github, door)
    checkout = door._ctx(REPO, github.installations["octo"]).checkout
    assert checkout.replica.state == "same"
    github.commit(REPO, AUDIT, {"notes.txt": "raced\n"})
    AuditLog(checkout.path).append("run-x", {"state": "planned"})
    replica = checkout.push_audit()
    assert replica.state == "unknown"
    assert "non-fast-forward" in (replica.problem or "")
    assert "never forced" in (replica.problem or "")


def truncate_packs(clone: Path) -> None:
    packs = sorted((clone / ".git" / "objects" / "pack").glob("*.pack"))
    assert packs
    for pack in packs:
        pack.write_bytes(pack.read_bytes()[:100])  # as a crash mid-write or a bad disk leaves it


def delete_audit_head_object(clone: Path) -> None:
    """The newest audit entry's blob (written loose by libgit2) is gone."""
    log = AuditLog(clone)
    head = log.head()
    assert head is not None
    tree = log.repo[head.commit].peel(pygit2.Commit).tree
    blob = tree[entry_path(head.seq)].id
    (clone / ".git" / "objects" / str(blob)[:2] / str(blob)[2:]).unlink()


def break_a_ref(clone: Path) -> None:
    (clone / ".git" / "refs" / "remotes" / "origin").mkdir(parents=True, exist_ok=True)
    (clone / ".git" / "refs" / "remotes" / "origin" / "main").write_text("0" * 39 + "1\n")
    (clone / ".git" / "packed-refs").unlink(missing_ok=True)


@pytest.mark.parametrize(
    "damage", [truncate_packs, delete_audit_head_object, break_a_ref], ids=lambda f: f.__name__
)
def test_a_corrupted_clone_fails_the_delivery_closed_and_says_re_clone(
    github: GitHubDouble, door: PullRequestDoor, damage: Callable[[Path], None]
) -> None:
    number, head = awaiting(github, door)
    before = evidence(github, number)
    damage(bot_clone(door))
    _, review = github.submit_review(REPO, number, "maya", "approved")
    with pytest.raises(AgentplaneError, match=r"(?i)re-clone") as failed:
        deliver(door, "pull_request_review", review)
    assert str(bot_clone(door)) in str(failed.value)
    assert github.head_sha(REPO, number) == head  # nothing applied
    assert evidence(github, number) == before  # nothing claimed


def test_re_cloning_as_the_error_says_lets_the_run_go_on(
    github: GitHubDouble, door: PullRequestDoor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's steps from the corrupt-clone error: move the clone aside, point
    $AGENTPLANE_SIGNING_KEY at the key it held, start again. The fresh clone adopts the
    pushed log (signed by that key), and the awaiting run is approved and applied once."""
    number, head = awaiting(github, door)
    truncate_packs(bot_clone(door))
    aside = bot_clone(door).with_name("octo__demo.corrupt")
    bot_clone(door).rename(aside)
    monkeypatch.setenv("AGENTPLANE_SIGNING_KEY", str(aside / ".git" / "agentplane" / "signing-key"))
    restarted = PullRequestDoor(door.settings, door.backend, door.state)
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(restarted, "pull_request_review", review) == "fix-failing-test: applied"
    assert github.head_sha(REPO, number) != head
    assert github.repo(REPO).tip(AUDIT) == bot_audit_tip(restarted)
    no_duplicates(github)
