"""Local clones of the repositories the bot serves: fetch before work, push audit and applies.

Plain git over the clone URL (https with the installation token, or a file URL
in tests). The audit branch only ever moves forward: pushes are never forced.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bot.errors import GitError
from bot.gitrepo import GitRepo
from bot.redact import Redactor

AUDIT = "agentplane/audit"


def authed(url: str, token: str | None) -> str:
    if token and url.startswith("https://"):
        return url.replace("https://", f"https://x-access-token:{token}@", 1)
    return url


class Checkout:
    def __init__(self, root: Path, full_name: str, url: str, token: str | None) -> None:
        self.path = root / full_name.replace("/", "__")
        self.url = authed(url, token)
        self.redact = Redactor([token])

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd or self.path,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode:
            raise GitError(self.redact(f"git {args[0]} failed: {proc.stderr.strip()}"))
        return proc.stdout

    def sync(self, default_branch: str, branches: list[str], pulls: Sequence[int] = ()) -> GitRepo:
        """Clone once, then fetch the default branch, the given branches, the given pull
        requests' heads and the audit branch.

        A PR's head comes from refs/pull/N/head, which GitHub keeps in the base repo for
        every PR: a fork's branch is not in origin at all."""
        if not (self.path / ".git").is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.git("clone", "-q", "--no-checkout", self.url, str(self.path), cwd=self.path.parent)
        self.git("remote", "set-url", "origin", self.url)
        self.git("config", "agentplane.defaultBranch", default_branch)
        refs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in {default_branch, *branches}]
        refs += [f"+refs/pull/{n}/head:refs/remotes/origin/pull/{n}" for n in pulls]
        self.git("fetch", "-q", "origin", *refs)
        # The audit branch may not exist yet; local appends go on top of the remote's.
        try:
            self.git("fetch", "-q", "origin", f"refs/heads/{AUDIT}:refs/heads/{AUDIT}")
        except GitError as exc:
            # Absent remotely, or ours is ahead (a push was interrupted): the next push fixes it.
            if "couldn't find remote ref" not in str(exc) and "rejected" not in str(exc):
                raise
        return GitRepo(self.path)

    def push_audit(self) -> None:
        if not self.git("for-each-ref", f"refs/heads/{AUDIT}").strip():
            return  # nothing recorded yet
        self.git("push", "-q", "origin", f"refs/heads/{AUDIT}:refs/heads/{AUDIT}")

    def push_commit(self, commit: str, branch: str) -> None:
        """Fast-forward branch to commit (never forced: a moved branch fails the push)."""
        self.git("push", "-q", "origin", f"{commit}:refs/heads/{branch}")
