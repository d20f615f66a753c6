"""The workspace side of every backend: which directories are writable, and making them so.

Backends mount the workspace read-only and these directories read-write; as root
each sandbox runs as a uid of its own (sandbox_uid), so the writable trees are
handed to that uid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from bot.adapters import safefs
from bot.adapters.sandbox.spec import SandboxSpec
from bot.core.errors import SandboxError

UID_BASE, UID_SPAN = 1 << 30, 1 << 24
"""Where per-sandbox uids come from: far above any account's or subuid range's."""


def sandbox_uid() -> int:
    """The uid one sandbox runs as. As root, a fresh one per sandbox: RLIMIT_NPROC (bwrap's
    only pids limit) then counts that sandbox alone, not every sandbox and browser on the
    host, and sandboxes cannot signal one another. Otherwise the controller's own uid."""
    return UID_BASE + secrets.randbelow(UID_SPAN) if os.geteuid() == 0 else os.getuid()


_WILDCARDS = frozenset("*?[")


def writable_dirs(write_globs: Iterable[str]) -> tuple[str, ...]:
    """The workspace-relative directories to mount read-write for these globs.

    Each glob contributes the literal directory prefix before its first wildcard
    component (its parent directory when it has none); "." is the whole
    workspace. Nested results are dropped: their parent mount already covers them.
    """
    prefixes: set[PurePosixPath] = set()
    for glob in write_globs:
        if glob.startswith("/"):
            raise SandboxError(f"write glob {glob!r} must be relative to the workspace")
        parts = [p for p in glob.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise SandboxError(f"write glob {glob!r} must not leave the workspace")
        if not parts:
            raise SandboxError(f"write glob {glob!r} is empty")
        wild = [i for i, part in enumerate(parts) if _WILDCARDS & set(part)]
        # No wildcard: a file path, whose directory must be writable (or a "dir/" itself).
        literal = parts[: wild[0]] if wild else parts if glob.endswith("/") else parts[:-1]
        prefixes.add(PurePosixPath(*literal) if literal else PurePosixPath("."))
    if PurePosixPath(".") in prefixes:
        return (".",)
    kept = [p for p in prefixes if not any(q in p.parents for q in prefixes)]
    return tuple(sorted(str(p) for p in kept))


def safe_dir(workspace: Path, rel: str) -> Path:
    """workspace/rel as a real directory, created if missing, never via a symlink.

    A symlink here (from the repo, or planted by an earlier command) would turn the
    read-write bind into a bind of an arbitrary host directory. Each component is
    opened (and made) on its parent's fd without following links, so a swap between
    a check and a mkdir cannot redirect it either.
    """
    try:
        with safefs.root(workspace) as fd:
            os.close(safefs.open_dir(fd, rel, create=True))
    except safefs.UnsafePath as exc:
        raise SandboxError(f"write scope {rel!r} cannot be made writable: {exc}") from None
    except OSError as exc:
        raise SandboxError(f"write scope {rel!r} cannot be created in {workspace}: {exc}") from None
    return workspace / rel


class Scratch:
    """The throwaway directories a sandbox's SandboxSpec.scratch asks for: made outside the
    workspace (so never diffed), owned by the sandbox's uid, removed when it closes. Their
    mount points in the workspace are made empty directories (git sees no empty directory)."""

    def __init__(self, workspace: Path, rels: Iterable[str], uid: int) -> None:
        self.dirs: list[tuple[Path, str]] = []
        try:
            for rel in dict.fromkeys(_scratch_rel(r) for r in rels):
                safe_dir(workspace, rel)
                host = Path(tempfile.mkdtemp(prefix="agentplane-scratch-"))
                self.dirs.append((host, rel))
                if os.geteuid() == 0:
                    os.chown(host, uid, uid)
        except BaseException:
            self.close()
            raise

    def mounts(self) -> list[tuple[Path, str]]:
        """(host directory, path inside the sandbox) for each scratch directory."""
        return [(host, str(PurePosixPath("/workspace", rel))) for host, rel in self.dirs]

    def close(self) -> None:
        for host, _ in self.dirs:
            shutil.rmtree(host, ignore_errors=True)
        self.dirs = []


def _scratch_rel(rel: str) -> str:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts or not parts or _WILDCARDS & set(rel):
        raise SandboxError(
            f"scratch directory {rel!r} must be a plain path inside the workspace "
            "(e.g. .pytest_cache)"
        )
    return "/".join(parts)


def env_dir(path: Path, uid: int, writable: bool, *, engine_mounts: bool = False) -> Path:
    """The project environment's directory, checked before it is mounted at /env: a real
    directory (never a link, which would mount its target), which a sandbox running as
    uid can reach (unless the engine mounts it, as root), handed to uid when it may write
    it (the setup phase)."""
    if path.is_symlink() or not path.is_dir() or path.resolve() != path.absolute():
        raise SandboxError(f"environment {path} is not a plain directory")
    if writable and os.geteuid() == 0:
        chown_tree(path, uid)
    if not engine_mounts and os.geteuid() == 0:
        for parent in path.parents:
            st = parent.stat()
            if not (st.st_mode & 0o001 or st.st_uid == uid):
                raise SandboxError(
                    f"environment {path} is not reachable by the sandbox uid {uid}: {parent} "
                    f"has mode {st.st_mode & 0o777:o}; keep the repository (and its "
                    ".git/agentplane) under world-traversable directories, or run as non-root"
                )
    return path


def chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def check_reachable(workspace: Path, uid: int) -> None:
    for parent in workspace.parents:
        st = parent.stat()
        if not (st.st_mode & 0o001 or st.st_uid == uid):
            raise SandboxError(
                f"workspace {workspace} is not reachable by the sandbox uid {uid}: "
                f"{parent} has mode {st.st_mode & 0o777:o}; create workspaces under a "
                "world-traversable directory such as /tmp"
            )


def prepare(spec: SandboxSpec, uid: int) -> tuple[Path, list[Path]]:
    """(workspace, writable host dirs), ready for a sandbox running as uid."""
    workspace = spec.workspace.resolve()
    if not workspace.is_dir():
        raise SandboxError(f"workspace {spec.workspace} is not a directory")
    writable = [safe_dir(workspace, rel) for rel in writable_dirs(spec.write_globs)]
    if os.geteuid() == 0:
        check_reachable(workspace, uid)
        # The root dir so the sandbox can enter it (mkdtemp makes it 0700); the write
        # scope so it can write there. The rest keeps its owner: read-only anyway.
        os.chown(workspace, uid, uid)
        for path in writable:
            chown_tree(path, uid)
    return workspace, writable
