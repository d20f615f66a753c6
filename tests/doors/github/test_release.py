"""OwnPushes and Checkout.merge_onto: how one review's several applies share a PR branch."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.doors.github.checkout import Checkout
from bot.doors.github.release import OwnPushes


def test_own_pushes_are_peeled_off_and_anyone_elses_push_shows() -> None:
    pushes = OwnPushes()
    heads = iter(["reviewed", "c1", "m2", "theirs"])
    live = pushes.live(lambda: next(heads))
    assert live() == "reviewed"
    pushes.pushed("c1", "reviewed")
    assert live() == "reviewed"
    pushes.pushed("m2", "c1")
    assert (pushes.tip, live()) == ("m2", "reviewed")
    assert live() == "theirs"  # a push nobody in this review made: the head moved


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    env_args = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run(
        ["git", *env_args, *args],
        cwd=repo,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def branch_commit(repo: Path, base: str, path: str, text: str) -> str:
    git(repo, "checkout", "-q", base)
    (repo / path).write_text(text)
    git(repo, "commit", "-qam", f"edit {path}")
    return git(repo, "rev-parse", "HEAD")


def test_merge_onto_keeps_both_commits_and_refuses_a_conflict(tmp_path: Path) -> None:
    repo = tmp_path / "octo__demo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    first = branch_commit(repo, base, "a.txt", "a, fixed\n")
    second = branch_commit(repo, base, "b.txt", "b, fixed\n")
    clash = branch_commit(repo, base, "a.txt", "a, otherwise\n")
    checkout = Checkout(tmp_path, "octo/demo", "file:///nowhere", None)
    merged = checkout.merge_onto(first, second, "merge\n\nAgentplane-Run: r\n", ("bot", "b@x"))
    assert merged is not None
    assert git(repo, "rev-parse", f"{merged}^1", f"{merged}^2").split() == [first, second]
    assert git(repo, "show", f"{merged}:a.txt") == "a, fixed"
    assert git(repo, "show", f"{merged}:b.txt") == "b, fixed"
    assert git(repo, "log", "-1", "--format=%an %B", merged).startswith("bot merge")
    assert checkout.merge_onto(first, clash, "merge\n", ("bot", "b@x")) is None
