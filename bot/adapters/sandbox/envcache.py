"""The environment cache: what a setup phase installed, kept in the bot's own state for
the next run with the same setup inputs.

One directory per key under `<git dir>/agentplane-envs/`: `<key>/env` is what sandboxes
mount at /env, `<key>/meta.json` its digest, size and last use. An environment is built
in a directory of its own and renamed into place only when setup succeeded, so a failed
or interrupted setup leaves nothing a later run could take for finished. The cache has
a size cap and evicts the least recently used environments first.

What setup wrote is hostile: every walk here lists links as links and never follows one
(os.walk, lstat, fd-relative opens), and the tree is made root's and read-only to others
before any other sandbox sees it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import SandboxError

ENVS_DIR = "agentplane-envs"
"""Beside `.git/agentplane` (kept 0700: it holds the signing key and journals), since sandbox
uids must be able to enter an environment's directory; this one is 0711: enterable, not listed."""
DEFAULT_CAP_BYTES = 5 << 30
STALE_BUILD_S = 24 * 3600
"""A build directory untouched this long belongs to a setup that never finished."""
_KEY_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class CachedEnv:
    key: str
    path: Path
    """The directory sandboxes mount at /env."""
    digest: str
    """sha256 over the tree (paths, modes, link targets, file contents)."""
    size_bytes: int
    built_by: str = ""
    """The run that built it."""


def tree_digest(root: Path) -> tuple[str, int]:
    """(sha256 over the tree, bytes of its files): a link counts by its target text, never
    followed; a file by its mode and content. The order is sorted, so it is stable."""
    h = hashlib.sha256()
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted([*filenames, *(d for d in dirnames if _is_link(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                h.update(f"L {rel}\0{os.readlink(path)}\n".encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(f"F {rel}\0{st.st_mode & 0o777:o}\0".encode())
                h.update(_file_sha(path).encode() + b"\n")
                size += st.st_size
            else:
                h.update(f"O {rel}\0{stat.S_IFMT(st.st_mode):o}\n".encode())
        for d in dirnames:
            if not _is_link(dirpath, d):
                h.update(f"D {os.path.normpath(os.path.join(rel_dir, d))}\n".encode())
    return "sha256:" + h.hexdigest(), size


def _is_link(dirpath: str, name: str) -> bool:
    return os.path.islink(os.path.join(dirpath, name))


def _file_sha(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def seal(root: Path) -> None:
    """Make what setup wrote the controller's and read-only to everyone else: no set-id
    bits, no write for group or others; links and special files are left as they are
    (never followed), and special files are removed."""
    me = os.getuid()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if os.geteuid() == 0:
                    os.chown(path, me, me, follow_symlinks=False)
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                os.unlink(path)  # a fifo or socket setup left: nothing a later phase needs
                continue
            _seal_one(path, st)
    _seal_one(str(root), os.lstat(root))


def _seal_one(path: str, st: os.stat_result) -> None:
    if os.geteuid() == 0:
        os.chown(path, os.getuid(), os.getgid(), follow_symlinks=False)
    mode = stat.S_IMODE(st.st_mode) & 0o755
    if stat.S_ISDIR(st.st_mode) or mode & 0o100:
        mode |= 0o755  # readable and enterable (or runnable) by every sandbox uid
    else:
        mode |= 0o644
    os.chmod(path, mode, follow_symlinks=False)


class EnvCache:
    """Environments by key, under root (the bot's state: `<git dir>/agentplane-envs`)."""

    def __init__(self, root: Path, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.root = root
        self.cap_bytes = cap_bytes

    @classmethod
    def for_repo(cls, git_dir: Path, cap_bytes: int = DEFAULT_CAP_BYTES) -> EnvCache:
        return cls(git_dir / ENVS_DIR, cap_bytes)

    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)  # sandboxes reach their environment; nobody lists them
        if self.root.is_symlink() or not self.root.is_dir():
            raise SandboxError(f"the environment cache {self.root} is not a plain directory")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (several runs of one repository share the cache)."""
        self._ensure_root()
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _dir(self, key: str) -> Path:
        if len(key) != 64 or not set(key) <= _KEY_CHARS:
            raise SandboxError(f"environment key {key!r} is not a sha256 hex digest")
        return self.root / key

    def lookup(self, key: str) -> CachedEnv | None:
        """The finished environment for key, marked as just used; None when there is none,
        or when what is on disk no longer matches its digest (it is removed)."""
        with self._locked():
            found = self._read(key)
            if found is None:
                return None
            if tree_digest(found.path)[0] != found.digest:
                shutil.rmtree(self._dir(key), ignore_errors=True)
                return None
            self._write_meta(key, found.digest, found.size_bytes, found.built_by)
            return found

    def _read(self, key: str) -> CachedEnv | None:
        d = self._dir(key)
        env = d / "env"
        try:
            meta = json.loads((d / "meta.json").read_text())
            digest, size = str(meta["digest"]), int(meta["size_bytes"])
            built_by = str(meta.get("built_by", ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if env.is_symlink() or not env.is_dir():
            return None
        return CachedEnv(key, env, digest, size, built_by)

    def _write_meta(self, key: str, digest: str, size: int, built_by: str) -> None:
        meta = {
            "digest": digest,
            "size_bytes": size,
            "last_used": time.time(),
            "built_by": built_by,
        }
        tmp = self._dir(key) / f".meta-{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(meta, sort_keys=True))
        os.replace(tmp, self._dir(key) / "meta.json")

    def building(self) -> Path:
        """A fresh, empty directory to build an environment in (mount it at /env). Builds a
        killed process left behind (older than STALE_BUILD_S) are removed first."""
        self._ensure_root()
        for old in self.root.glob(".build-*"):
            with contextlib.suppress(OSError):
                if time.time() - old.lstat().st_mtime > STALE_BUILD_S:
                    shutil.rmtree(old, ignore_errors=True)
        d = self.root / f".build-{secrets.token_hex(8)}"
        d.mkdir(mode=0o711)  # enterable by the setup sandbox's uid, not listable
        os.chmod(d, 0o711)
        (d / "env").mkdir(mode=0o755)
        return d / "env"

    def discard(self, build: Path) -> None:
        shutil.rmtree(build.parent, ignore_errors=True)

    def keep(self, key: str, build: Path, max_bytes: int, built_by: str = "") -> CachedEnv:
        """Seal the built environment and store it under key; returns it. Over max_bytes
        it is refused (SandboxError) and removed; the cache then evicts down to its cap,
        never the environment just kept."""
        seal(build)
        digest, size = tree_digest(build)
        if size > max_bytes:
            self.discard(build)
            raise SandboxError(
                f"setup installed {size} bytes, more than policy's setup.max_env_bytes "
                f"({max_bytes})"
            )
        with self._locked():
            target = self._dir(key)
            if target.exists():  # another run built the same key meanwhile: keep one
                shutil.rmtree(target, ignore_errors=True)
            os.replace(build.parent, target)
            self._write_meta(key, digest, size, built_by)
            self._evict(keep=key)
        return CachedEnv(key, target / "env", digest, size, built_by)

    def entries(self) -> list[tuple[str, int, float]]:
        """(key, size, last used) of every finished environment, least recently used first."""
        out = []
        for d in self.root.iterdir() if self.root.is_dir() else ():
            if d.name.startswith("."):
                continue
            try:
                meta = json.loads((d / "meta.json").read_text())
                out.append((d.name, int(meta["size_bytes"]), float(meta["last_used"])))
            except (OSError, ValueError, KeyError, TypeError):
                out.append((d.name, 0, 0.0))  # half-written: evicted first
        return sorted(out, key=lambda e: e[2])

    def _evict(self, keep: str) -> list[str]:
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        evicted = []
        for key, size, _ in entries:
            if total <= self.cap_bytes:
                break
            if key == keep:
                continue
            shutil.rmtree(self.root / key, ignore_errors=True)
            total -= size
            evicted.append(key)
        return evicted
