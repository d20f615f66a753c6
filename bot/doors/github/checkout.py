"""Local clones of the repositories the bot serves: fetch before work, push audit and applies.

Plain git over the clone URL (https with the installation token, or a file URL
in tests). The audit branch only ever moves forward: pushes are never forced.

The bot's own audit branch (refs/heads/agentplane/audit in its clone) is the
log; the remote one is a replica the bot pushes. Whoever can push to the repository
can push to that replica, so it is observed (into refs/remotes/origin/agentplane/audit)
and compared, never trusted as such: a replica that extends the bot's log is adopted
only when every entry it adds is signed by a key policy lists (an Actions runner's, see
bot.doors.actions); any other replica the log does not contain is reported, never merged
in. Neither a failed observation nor a failed push stops the delivery at hand, or any
later one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.adapters.audit.log import AuditLog
from bot.adapters.git import GitRepo, run_git
from bot.core.errors import AuditError, GitError
from bot.run import killpoints
from bot.run.redact import Redactor

AUDIT = "agentplane/audit"
LOCAL = f"refs/heads/{AUDIT}"
REPLICA = f"refs/remotes/origin/{AUDIT}"

log = logging.getLogger("agentplane.github")

# What git says when the object store or the refs of a clone are damaged (a deleted or
# truncated object or pack, a ref pointing at nothing); matched only once a command failed.
CORRUPT = re.compile(
    r"does not match index|bad object|corrupt|missing (?:blob|tree|commit|object)|"
    r"unable to read|loose object|inflate|packfile|bad ref|broken|invalid sha1 pointer|"
    r"not a valid object|did not send all necessary objects",
    re.IGNORECASE,
)

ReplicaState = Literal["absent", "same", "behind", "ahead", "moved", "unknown"]


@dataclass(frozen=True)
class Replica:
    """The remote audit branch as last seen, next to the bot's own log."""

    state: ReplicaState
    detail: str = ""

    @property
    def problem(self) -> str | None:
        """What an operator must hear about; None while the replica is only behind."""
        if self.state == "moved":
            return (
                f"the remote {AUDIT} branch has moved without agentplane ({self.detail}); "
                "it is not adopted: the bot's own log is the record. Compare it with the "
                f"bot's log, restore it (push the bot's {AUDIT}), and protect the branch so "
                "only the App can push (see the README)"
            )
        if self.state == "ahead":
            return (
                f"the remote {AUDIT} branch has entries past the bot's log ({self.detail}) "
                "that were not checked; they join the log only when each is signed by a key "
                "policy's audit.signers lists"
            )
        if self.state == "unknown":
            return f"the remote {AUDIT} branch is out of reach: {self.detail}"
        return None


def compare(
    local: str | None, remote: str | None, is_ancestor: bool, extends: bool = False
) -> Replica:
    """Pure: where the replica stands, given the two tips, whether remote is in local
    (is_ancestor) and whether local is in remote (extends)."""
    if remote is None:
        return Replica("absent")
    if remote == local:
        return Replica("same")
    if local is not None and is_ancestor:
        return Replica("behind")
    if local is None or extends:
        # Adopted only if its new entries are signed by trusted keys (Checkout.adopt).
        return Replica("ahead", f"it is at {remote[:12]}, past the bot's log")
    return Replica("moved", f"it is at {remote[:12]}, which the bot's log at {local[:12]} lacks")


def authed(url: str, token: str | None) -> str:
    if token and url.startswith("https://"):
        return url.replace("https://", f"https://x-access-token:{token}@", 1)
    return url


class Checkout:
    def __init__(self, root: Path, full_name: str, url: str, token: str | None) -> None:
        self.name = full_name
        self.path = root / full_name.replace("/", "__")
        self.url = authed(url, token)
        self.redact = Redactor([token])

        self.replica = Replica("unknown", "not fetched yet")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return run_git(*args, cwd=cwd or self.path, redact=self.redact).stdout

    def sync(self, default_branch: str, branches: list[str], pulls: Sequence[int] = ()) -> GitRepo:
        """Clone once, then fetch the default branch, the given branches, the given pull
        requests' heads and the audit branch.

        A PR's head comes from refs/pull/N/head, which GitHub keeps in the base repo for
        every PR: a fork's branch is not in origin at all.

        A clone git finds corrupt fails the delivery with what to do (see `corrupt`);
        nothing is repaired behind the operator's back, since the clone holds the log."""
        try:
            return self._sync(default_branch, branches, pulls)
        except GitError as exc:
            raise self.corrupt(exc) or exc from None

    def corrupt(self, exc: GitError) -> GitError | None:
        """The error to raise instead of exc when exc says the clone itself is broken."""
        text = str(exc)
        found = CORRUPT.search(text)
        if found is None:
            return None
        line = text[max(0, text.rfind("\n", 0, found.start()) + 1) :].split("\n", 1)[0]
        return GitError(
            f"the bot's clone of {self.name} at {self.path} is corrupt ({line[:300]}); nothing "
            "was run or applied. Re-clone it: stop the bot, move that directory aside (its "
            ".git/agentplane/ holds the signing key and the audit anchor), set "
            "$AGENTPLANE_SIGNING_KEY to the key kept there, and start the bot: it clones "
            "again and adopts its pushed audit records, which that key signed"
        )

    def _sync(self, default_branch: str, branches: list[str], pulls: Sequence[int]) -> GitRepo:
        if not (self.path / ".git").is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.git("clone", "-q", "--no-checkout", self.url, str(self.path), cwd=self.path.parent)
            self._delete_ref(LOCAL)  # a fresh clone has recorded nothing: no log is adopted
        self.git("remote", "set-url", "origin", self.url)
        self.git("config", "agentplane.defaultBranch", default_branch)
        refs = [f"+refs/heads/{b}:refs/remotes/origin/{b}" for b in {default_branch, *branches}]
        refs += [f"+refs/pull/{n}/head:refs/remotes/origin/pull/{n}" for n in pulls]
        self.git("fetch", "-q", "origin", *refs)
        self.replica = self.observe_replica()
        if self.replica.problem and self.replica.state != "ahead":  # adopt() decides that one
            log.warning("%s: %s", self.name, self.replica.problem)
        return GitRepo(self.path)

    def observe_replica(self) -> Replica:
        """Fetch the remote audit branch beside the bot's log (forced: it is only a view),
        and say how it stands. Never raises: the log is local, the replica is a copy."""
        try:
            self.git("fetch", "-q", "origin", f"+{LOCAL}:{REPLICA}")
        except GitError as exc:
            if "couldn't find remote ref" not in str(exc):
                return Replica("unknown", str(exc))
            self._delete_ref(REPLICA)  # gone remotely (or never pushed): the next push makes it
        try:
            local, remote = self._tip(LOCAL), self._tip(REPLICA)
            both = bool(local and remote) and local != remote
            inside = both and self._is_ancestor(str(remote), str(local))
            extends = both and not inside and self._is_ancestor(str(local), str(remote))
        except GitError as exc:
            return Replica("unknown", str(exc))
        return compare(local, remote, inside, extends)

    def adopt(self, audit: AuditLog) -> Replica:
        """Take an `ahead` replica's new entries into the bot's log, if each is signed by
        a key the log trusts (policy's audit.signers, read by the caller first); else the
        replica counts as moved. Returns how the replica stands."""
        if self.replica.state != "ahead":
            return self.replica
        remote = self._tip(REPLICA)
        assert remote is not None  # "ahead" means there is one
        try:
            count = audit.adopt(remote)
        except AuditError as exc:
            self.replica = Replica("moved", f"it is at {remote[:12]}, not adoptable: {exc}")
            log.warning("%s: %s", self.name, self.replica.problem)
            return self.replica
        log.info("%s: adopted %d signed audit entries from the replica", self.name, count)
        self.replica = Replica("same")
        return self.replica

    def push_audit(self) -> Replica:
        """Push the bot's log (never forced). Returns how the replica stands afterwards;
        a failed push is reported there, never raised: later deliveries go on."""
        if self._tip(LOCAL) is None:
            return self.replica  # nothing recorded yet
        if self.replica.state in ("moved", "ahead"):
            return self.replica  # a non-forced push cannot succeed, and must not be forced
        try:
            self.git("push", "-q", "origin", f"{LOCAL}:{LOCAL}")
        except GitError as exc:
            self.replica = Replica(
                "unknown",
                f"the push of the bot's log failed ({exc}). It is never forced: if the "
                "branch moved (non-fast-forward), compare it with the bot's log and restore "
                f"it; if a branch rule or hook declines it, let the App push {AUDIT}",
            )
            log.warning("%s: %s", self.name, self.replica.problem)
            return self.replica
        killpoints.reached("audit-push")  # pushed; not yet noted here
        self.git("update-ref", REPLICA, LOCAL)
        self.replica = Replica("same")
        return self.replica

    def _tip(self, ref: str) -> str | None:
        out = self.git("for-each-ref", "--format=%(objectname)", ref).strip()
        return out or None

    def _is_ancestor(self, older: str, newer: str) -> bool:
        proc = run_git(
            "merge-base",
            "--is-ancestor",
            older,
            newer,
            cwd=self.path,
            ok=(0, 1),
            redact=self.redact,
        )
        return proc.returncode == 0

    def _delete_ref(self, ref: str) -> None:
        if self._tip(ref) is not None:
            self.git("update-ref", "-d", ref)

    def contains(self, tip: str, commit: str) -> bool:
        """Whether commit is in tip's history (both must be in the clone)."""
        return self._is_ancestor(commit, tip)

    def remote_has(self, commit: str) -> bool:
        """Whether a branch at GitHub holds commit (asked of the remote, not the clone)."""
        heads = self.git("ls-remote", "--heads", "origin").split()
        return commit in heads[0::2]

    def push_commit(self, commit: str, branch: str) -> None:
        """Fast-forward branch to commit (never forced: a moved branch fails the push)."""
        self.git("push", "-q", "origin", f"{commit}:refs/heads/{branch}")

    def merge_onto(
        self, tip: str, commit: str, message: str, identity: tuple[str, str]
    ) -> str | None:
        """A merge commit of commit onto tip (both stay its parents, unchanged), or None
        when they change the same lines: git decides, nothing is resolved by hand.

        Several runs approved by one review are each committed on the reviewed head; the
        first goes onto the PR branch as it is, and each later one is merged onto the
        branch, so every commit a record names is in the branch's history as recorded."""
        proc = run_git(
            "merge-tree", "--write-tree", tip, commit, cwd=self.path, ok=(0, 1), redact=self.redact
        )
        if proc.returncode == 1:
            return None
        tree = proc.stdout.split("\n", 1)[0].strip()
        name, email = identity
        who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
        who |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        made = run_git(
            "commit-tree",
            tree,
            "-p",
            tip,
            "-p",
            commit,
            "-F",
            "-",
            cwd=self.path,
            env=who,
            stdin=message,
            redact=self.redact,
        )
        return made.stdout.strip()
