"""The bot's clone: its own audit log is the record; the remote branch is a replica, adopted
only where every entry it adds is signed by a trusted key. Real git repositories on both
sides, real signed audit logs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.adapters.audit.log import AuditLog
from bot.adapters.audit.signing import Signer
from bot.adapters.audit.trust import Trust, TrustedKey
from bot.doors.github.checkout import AUDIT, LOCAL, Checkout, compare


def git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=where, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_on(where: Path, ref: str, path: str, text: str, parent: str | None = None) -> str:
    """A commit with one file on `ref`, made with plumbing (no work tree needed)."""
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=where,
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "mktree"],
        cwd=where,
        input=f"100644 blob {blob}\t{path}\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    args = ["commit-tree", tree, "-m", f"write {path}"] + (["-p", parent] if parent else [])
    sha = subprocess.run(
        ["git", "-c", "user.name=x", "-c", "user.email=x@example.com", *args],
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    git(where, "update-ref", ref, sha)
    return sha


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    commit_on(bare, "refs/heads/main", "README.md", "hello\n")
    return bare


def clone(tmp_path: Path, remote: Path) -> Checkout:
    checkout = Checkout(tmp_path / "bot", "octo/demo", remote.as_uri(), None)
    checkout.sync("main", [])
    return checkout


def test_compare_says_where_the_replica_stands() -> None:
    assert compare("a" * 40, None, False).state == "absent"
    assert compare("a" * 40, "a" * 40, True).state == "same"
    assert compare("a" * 40, "b" * 40, True).state == "behind"
    assert compare("a" * 40, "b" * 40, False).state == "moved"
    assert compare("a" * 40, "b" * 40, False, extends=True).state == "ahead"
    assert compare(None, "b" * 40, False).state == "ahead"  # adopted only if all signed


def test_an_unpushed_record_never_wedges_the_next_sync(tmp_path: Path, remote: Path) -> None:
    """`git fetch` refuses a non-fast-forward with exit 1 and no message: that wedged it."""
    bot = clone(tmp_path, remote)
    first = commit_on(bot.path, LOCAL, "log-0.json", "{}")
    assert bot.push_audit().state == "same"
    commit_on(bot.path, LOCAL, "log-1.json", "{}", parent=first)  # recorded, push lost
    bot.sync("main", [])
    assert bot.replica.state == "behind" and bot.replica.problem is None
    assert bot.push_audit().state == "same"
    assert git(remote, "rev-parse", LOCAL) == git(bot.path, "rev-parse", LOCAL)


def test_a_forged_record_on_the_remote_is_reported_and_never_adopted(
    tmp_path: Path, remote: Path
) -> None:
    bot = clone(tmp_path, remote)
    ours = commit_on(bot.path, LOCAL, "log-0.json", '{"state": "awaiting_approval"}')
    bot.push_audit()
    forged = commit_on(remote, LOCAL, "log-1.json", '{"state": "approved"}', parent=ours)
    bot.sync("main", [])
    assert bot.replica.state == "ahead"
    assert bot.adopt(AuditLog(bot.path)).state == "moved"  # not an entry, let alone signed
    assert git(bot.path, "rev-parse", LOCAL) == ours  # the bot's log is untouched
    assert bot.replica.problem is not None and forged[:12] in bot.replica.problem
    commit_on(bot.path, LOCAL, "log-1.json", '{"state": "rejected"}', parent=ours)
    assert bot.push_audit().state == "moved"  # nothing forced over it, nothing merged
    assert git(remote, "rev-parse", LOCAL) == forged


def test_a_fresh_clone_adopts_no_audit_branch(tmp_path: Path, remote: Path) -> None:
    planted = commit_on(remote, LOCAL, "log-0.json", '{"state": "approved"}')
    git(remote, "symbolic-ref", "HEAD", LOCAL)  # even as the remote's default branch
    bot = clone(tmp_path, remote)
    assert git(bot.path, "for-each-ref", LOCAL) == ""
    assert bot.adopt(AuditLog(bot.path)).state == "moved"
    assert planted[:12] in (bot.replica.problem or "")
    assert git(bot.path, "for-each-ref", LOCAL) == ""


def test_an_unreachable_remote_is_reported_not_raised(tmp_path: Path, remote: Path) -> None:
    bot = clone(tmp_path, remote)
    commit_on(bot.path, LOCAL, "log-0.json", "{}")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho 'protected branch {AUDIT}' >&2\nexit 1\n")
    hook.chmod(0o755)
    replica = bot.push_audit()
    assert replica.state == "unknown" and "protected branch" in (replica.problem or "")


def runner_appends(tmp_path: Path, remote: Path, signer: Signer, run_id: str) -> str:
    """An Actions runner: a fresh clone that chains onto origin's audit branch, appends one
    signed entry and pushes it (as bot.doors.actions.replica does)."""
    where = tmp_path / f"runner-{run_id}"
    git(tmp_path, "clone", "-q", remote.as_uri(), str(where))
    git(where, "fetch", "-q", "origin", f"+{LOCAL}:{LOCAL}")
    AuditLog(where, signer=signer).append(run_id, {"run_id": run_id, "state": "awaiting_approval"})
    git(where, "push", "-q", "origin", f"{LOCAL}:{LOCAL}")
    return git(where, "rev-parse", LOCAL)


def test_entries_a_trusted_runner_signed_are_adopted_and_the_log_goes_on(
    tmp_path: Path, remote: Path
) -> None:
    bot = clone(tmp_path, remote)
    audit = AuditLog(bot.path, signer=Signer.generate("bot"))
    audit.append("first", {"run_id": "first", "state": "applied"})
    assert bot.push_audit().state == "same"
    runner = Signer.generate("actions:octo/demo")
    theirs = runner_appends(tmp_path, remote, runner, "scheduled")
    bot.sync("main", [])
    assert bot.replica.state == "ahead"
    audit.trust(Trust((TrustedKey(runner.name, runner.key),)))  # policy lists the runner
    assert bot.adopt(audit).state == "same"
    assert git(bot.path, "rev-parse", LOCAL) == theirs
    latest = audit.latest("scheduled")
    assert latest is not None and latest.record["state"] == "awaiting_approval"
    # The anchor moved with it: the bot appends after the runner's entry and pushes.
    audit.append("scheduled", {"run_id": "scheduled", "state": "applied"})
    assert bot.push_audit().state == "same"
    assert [e.run_id for e in audit.entries()] == ["first", "scheduled", "scheduled"]


def test_entries_signed_by_a_key_policy_does_not_list_are_not_adopted(
    tmp_path: Path, remote: Path
) -> None:
    bot = clone(tmp_path, remote)
    audit = AuditLog(bot.path, signer=Signer.generate("bot"))
    ours = audit.append("first", {"run_id": "first", "state": "awaiting_approval"}).commit
    bot.push_audit()
    runner_appends(tmp_path, remote, Signer.generate("someone"), "first")
    bot.sync("main", [])
    replica = bot.adopt(audit)
    assert replica.state == "moved" and "does not list" in (replica.problem or "")
    assert git(bot.path, "rev-parse", LOCAL) == ours
    audit.append("first", {"run_id": "first", "state": "rejected"})  # the log goes on
    assert audit.latest("first") is not None
