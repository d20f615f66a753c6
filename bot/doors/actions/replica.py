"""The audit branch between a runner's clone and origin: fetched before the run (so the new
records chain onto every earlier one), pushed after it, never forced.

A runner's clone is thrown away with the runner, so its records only survive if they are
pushed. Two runners appending at once would fork the chain: the example workflow keeps one
`concurrency` group, and a push that origin refuses as non-fast-forward is an error that
names what to do, never a force.
"""

from __future__ import annotations

from pathlib import Path

from bot.adapters.git import run_git
from bot.core.errors import GitError
from bot.doors.actions.context import ActionsError

AUDIT_REF = "refs/heads/agentplane/audit"
SEEN_REF = "refs/remotes/origin/agentplane/audit"


def _rev(root: Path, ref: str) -> str | None:
    out = run_git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", cwd=root, ok=(0, 1))
    return out.stdout.strip() or None


def _ancestor(root: Path, old: str, new: str) -> bool:
    return run_git("merge-base", "--is-ancestor", old, new, cwd=root, ok=(0, 1)).returncode == 0


def fetch_audit(root: Path, remote: str = "origin") -> str | None:
    """Bring origin's audit branch into the clone's own; its tip, or None if it has none."""
    listed = run_git("ls-remote", remote, AUDIT_REF, cwd=root).stdout.split()
    if not listed:
        return None
    run_git("fetch", "-q", remote, f"+{AUDIT_REF}:{SEEN_REF}", cwd=root)
    theirs = _rev(root, SEEN_REF)
    assert theirs is not None  # just fetched
    ours = _rev(root, AUDIT_REF)
    if ours is None or (ours != theirs and _ancestor(root, ours, theirs)):
        run_git("update-ref", AUDIT_REF, theirs, *([ours] if ours else []), cwd=root)
    elif ours != theirs and not _ancestor(root, theirs, ours):
        raise ActionsError(
            f"this clone's audit branch ({ours[:12]}) and {remote}'s ({theirs[:12]}) have "
            "forked: the audit branch is append-only; run `agentplane audit verify` on both"
        )
    return theirs


def push_audit(root: Path, remote: str = "origin") -> str | None:
    """Push the audit branch (fast-forward only); its tip, or None if there is none."""
    tip = _rev(root, AUDIT_REF)
    if tip is None:
        return None
    try:
        run_git("push", "-q", remote, f"{AUDIT_REF}:{AUDIT_REF}", cwd=root)
    except GitError as exc:
        raise ActionsError(
            f"{remote} refused the audit commits ({exc}); another run appended meanwhile? "
            "Keep one `concurrency` group for agentplane workflows and run again: the "
            "records are kept in this clone until then"
        ) from None
    return tip


def push_branch(root: Path, commit: str, branch: str, remote: str = "origin") -> None:
    """Point a proposal branch at commit on origin (a proposal branch is the run's own,
    so it is replaced when a newer run of the job proposes)."""
    run_git("push", "-q", "--force", remote, f"{commit}:refs/heads/{branch}", cwd=root)
