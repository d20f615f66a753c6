"""The git adapter for the target repository (GitPython, short-lived calls only).

Everything that reads or writes the user's repository goes through here. It
never touches the user's working tree or index: workspaces are exported from a
commit, diffs and applies go through a private index file.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from bot.core.errors import GitError, NotAGitRepository, SourceError, ValidationFailed
from bot.core.globs import match_any
from bot.core.yamlsrc import MAX_BYTES, decode


def run_git(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    ok: tuple[int, ...] = (0,),
    redact: Callable[[str], str] = str,
) -> subprocess.CompletedProcess[str]:
    """The one place git runs as a program (plumbing GitPython adds nothing to: private
    indexes, stdin, clone/fetch/push with a token). Never prompts; an exit status outside
    `ok` is a GitError with git's own message, passed through redact (it may hold a URL
    with a token)."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
        check=False,
    )
    if proc.returncode not in ok:
        raise GitError(redact(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()}"))
    return proc


@dataclass(frozen=True)
class WorkspaceDiff:
    patch: str
    changed: tuple[str, ...]
    out_of_scope: tuple[str, ...]


class GitRepo:
    def __init__(self, path: Path) -> None:
        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise NotAGitRepository(path.resolve()) from None
        self.root = Path(self.repo.working_tree_dir or self.repo.git_dir)
        self.git_dir = Path(self.repo.git_dir)

    def _git(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
        return run_git(*args, cwd=self.root, env=env, stdin=stdin).stdout

    def head_commit(self) -> str:
        try:
            return self.repo.head.commit.hexsha
        except ValueError:
            raise GitError("the repository has no commits yet: commit something first") from None

    def default_branch(self) -> str:
        """The branch policy is read from: configured, origin's HEAD, init.defaultBranch, main."""
        reader = self.repo.config_reader()
        for section, option in (("agentplane", "defaultBranch"),):
            if reader.has_option(section, option):
                return str(reader.get_value(section, option))
        try:
            ref = self.repo.git.symbolic_ref("refs/remotes/origin/HEAD", "--short")
            return str(ref).removeprefix("origin/")
        except git.GitCommandError:
            pass
        candidates = []
        if reader.has_option("init", "defaultBranch"):
            candidates.append(str(reader.get_value("init", "defaultBranch")))
        candidates += ["main", "master"]
        for name in candidates:
            if name in self.repo.heads:
                return name
        raise GitError(
            "cannot tell the default branch: set it with "
            "`git config agentplane.defaultBranch <branch>`"
        )

    def policy_ref(self) -> str:
        """The default branch as the remote has it, in a clone; else the local branch."""
        branch = self.default_branch()
        remote = f"refs/remotes/origin/{branch}"
        try:
            self.repo.commit(remote)
            return remote
        except (git.BadName, ValueError):
            return branch

    def read_dir(
        self, ref: str, directory: str, suffixes: tuple[str, ...]
    ) -> list[tuple[str, str]]:
        """(path, text) of files directly in directory at ref; [] if the directory is absent."""
        try:
            tree = self.repo.commit(ref).tree
            sub = tree / directory
        except (KeyError, git.BadName, ValueError):
            return []
        return sorted(
            (str(blob.path), _source_text(blob))
            for blob in sub.blobs
            if blob.name.endswith(suffixes)
        )

    def read_file(self, ref: str, path: str) -> str | None:
        try:
            blob = self.repo.commit(ref).tree / path
        except (KeyError, git.BadName, ValueError):
            return None
        return _source_text(blob)

    def tree_entries(self, commit: str) -> list[tuple[str, str, str]]:
        """(path, mode, blob id) of every file in commit: git's own content hashes, so a
        symlink counts by its target text and nothing is read from a working tree."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        entries = []
        for item in out.split("\0"):
            if not item:
                continue
            meta, path = item.split("\t", 1)
            mode, kind, blob = meta.split()
            if kind == "blob":
                entries.append((path, mode, blob))
        return entries

    def is_ancestor(self, commit: str, ref: str) -> bool:
        """Is commit on ref's history (ref itself included)?"""
        done = run_git("merge-base", "--is-ancestor", commit, ref, cwd=self.root, ok=(0, 1, 128))
        return done.returncode == 0

    def identity(self) -> str:
        """Who is at this terminal: the committer email git would use (honours GIT_COMMITTER_*)."""
        ident = self._git("var", "GIT_COMMITTER_IDENT")
        return ident.split("<", 1)[1].split(">", 1)[0] if "<" in ident else ident.split()[0]

    def export(self, commit: str, dest: Path) -> None:
        """Write the tree of commit into dest (no .git: the sandbox never sees repo metadata)."""
        dest.mkdir(parents=True, exist_ok=True)
        with self._index() as env:
            self._git("read-tree", commit, env=env)
            self._git("--work-tree", str(dest), "checkout-index", "-a", "-f", env=env)

    def apply_in(self, directory: Path, patch: str) -> None:
        """Re-apply staged changes to a fresh export (resuming a paused run)."""
        proc = subprocess.run(
            ["git", "apply", "--binary", "-"],
            cwd=directory,
            input=patch,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            raise GitError(f"cannot restore the staged changes: {proc.stderr.strip()}")

    @contextmanager
    def _index(self) -> Iterator[dict[str, str]]:
        with tempfile.TemporaryDirectory(prefix="agentplane-index-") as tmp:
            yield {"GIT_INDEX_FILE": str(Path(tmp) / "index")}

    def diff_workspace(
        self,
        commit: str,
        workspace: Path,
        write_globs: list[str],
        protected: list[str] | tuple[str, ...] = (),
    ) -> WorkspaceDiff:
        """The proposal: workspace against commit, with changes outside write_globs, or on
        paths policy protects, left out."""
        wt = ("--work-tree", str(workspace))
        with self._index() as env:
            self._git("read-tree", commit, env=env)
            self._git(*wt, "add", "-A", ".", env=env)
            names = self._git("diff", "--cached", "--name-only", "-z", commit, env=env)
            changed = tuple(n for n in names.split("\0") if n)
            outside = tuple(
                p for p in changed if not match_any(p, write_globs) or match_any(p, protected)
            )
            if outside:
                self._git(*wt, "reset", "-q", commit, "--", *outside, env=env)
            patch = self._git(
                "diff", "--cached", "--binary", "--no-color", "--no-ext-diff", commit, env=env
            )
        kept = tuple(p for p in changed if p not in outside)
        return WorkspaceDiff(
            patch=patch + "\n" if patch and not patch.endswith("\n") else patch,
            changed=kept,
            out_of_scope=outside,
        )

    def resolve(self, rev: str) -> str | None:
        """The commit rev names, or None when it names none."""
        proc = run_git(
            "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=self.root, ok=(0, 1)
        )
        return proc.stdout.strip() or None

    def reverse_patch(self, commit: str) -> str:
        """The binary patch that takes commit back to its first parent's tree."""
        patch = self._git(
            "diff", "--binary", "--no-color", "--no-ext-diff", "--no-renames", commit, f"{commit}^"
        )
        return patch + "\n" if patch and not patch.endswith("\n") else patch

    def patch_problem(self, base: str, patch: str) -> str | None:
        """Why patch does not apply on base (git's words), or None when it does."""
        with self._index() as env:
            self._git("read-tree", base, env=env)
            proc = run_git(
                "apply", "--cached", "--check", "--binary", "-",
                cwd=self.root, env=env, stdin=patch, ok=(0, 1),
            )  # fmt: skip
        return (proc.stderr.strip() or "git apply refused it") if proc.returncode else None

    def commit_file(self, base: str, path: str, text: str, message: str) -> str:
        """A commit on top of base that adds or replaces one file (no working tree involved)."""
        with self._index() as env:
            self._git("read-tree", base, env=env)
            blob = self._git("hash-object", "-w", "--stdin", stdin=text).strip()
            self._git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._git("write-tree", env=env).strip()
        return self._git("commit-tree", tree, "-p", base, "-m", message).strip()

    def patched_tree(self, base: str, patch: str) -> str:
        """The tree of base with patch applied (no commit, no ref, no work tree)."""
        with self._index() as env:
            self._git("read-tree", base, env=env)
            self._git("apply", "--cached", "--binary", "-", env=env, stdin=patch)
            return self._git("write-tree", env=env).strip()

    def commit_shape(self, commit: str) -> tuple[str, list[str]]:
        """(tree, parents) of a commit."""
        fields = self._git("show", "-s", "--format=%T %P", commit).split()
        return fields[0], fields[1:]

    def commit_patch(
        self,
        base: str,
        patch: str,
        branch: str,
        message: str,
        author: tuple[str, str],
        date: str,
        check: Callable[[list[str]], None] = lambda paths: None,
    ) -> str:
        """Commit patch on top of base as refs/heads/<branch>; fails if the branch exists.

        check(paths) sees every path the applied tree changes, as git computed it (not as the
        patch text claims), before any commit exists; it raises to refuse."""
        ref = f"refs/heads/{branch}"
        env_id = {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
        }
        tree = self.patched_tree(base, patch)
        names = self._git("diff-tree", "-r", "--name-only", "-z", base, tree)
        check([n for n in names.split("\0") if n])
        commit = self._git(
            "commit-tree", tree, "-p", base, "-F", "-", env=env_id, stdin=message
        ).strip()
        if self._git("for-each-ref", "--format=%(objectname)", ref).strip() == commit:
            return commit  # a resumed apply: same base, patch, message and date, same commit
        self._git("update-ref", ref, commit, "0" * 40)
        return commit


_SYMLINK_MODE = 0o120000


def _source_text(obj: object) -> str:
    """A job, policy or config file's text as parse reads it: a link's target is never
    read as its content, a tree is no file, and at most MAX_BYTES + 1 bytes are read (parse
    refuses what is longer, and says where bytes are not UTF-8)."""
    path = str(getattr(obj, "path", "?"))
    if not isinstance(obj, git.Blob):
        raise ValidationFailed([SourceError(path, 1, 1, "", "is a directory, not a file")])
    if obj.mode == _SYMLINK_MODE:
        raise ValidationFailed(
            [SourceError(path, 1, 1, "", "is a symbolic link: agentplane does not follow links")]
        )
    data: bytes = obj.data_stream.read(MAX_BYTES + 1)
    return decode(path, data)
