"""Paths opened beneath a directory descriptor, never through a symlink.

Host-side code that touches a workspace (the filesystem tools, the scripted
model's scripts, the sandbox's write-scope mounts) must not follow a link the
repository committed or a sandboxed process planted, and must not check a path
and then open it again by name: a process left running in the sandbox can swap
a directory for a symlink in between. So every path is resolved relative to an
open directory descriptor, at every component, with links refused:
`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (5.6+),
otherwise one `openat(O_NOFOLLOW)` per component.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import AgentplaneError

MAX_LINK_TARGET = 1024
MAX_WALK_ENTRIES = 20_000
"""Bounds a listing: a workspace holds whatever a repository or a sandbox put there."""

_SYS_OPENAT2 = 437  # the same number on every architecture (asm-generic table, Linux 5.6)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW


class UnsafePath(AgentplaneError):
    """A path goes through a symlink, leaves its root, or is not the kind of file needed."""


class IsLink(UnsafePath):
    """The path itself is a symlink: it is shown as one, never followed."""

    def __init__(self, rel: str, target: str) -> None:
        self.rel = rel
        self.target = target
        super().__init__(f"{rel!r} is a symlink -> {target!r}; symlinks are never followed")


@dataclass(frozen=True)
class Entry:
    rel: str
    kind: str
    """`file`, `dir`, `link` or `other` (fifo, socket, device)."""
    target: str = ""
    """A link's target, as text (never resolved)."""


def parts(rel: str) -> tuple[str, ...]:
    """The components of a workspace-relative path; refuses anything that could leave it."""
    if "\0" in rel:
        raise UnsafePath(f"{rel!r} contains a NUL byte")
    if rel.startswith("/"):
        raise UnsafePath(f"{rel!r} is absolute: use a path relative to the root")
    out = tuple(p for p in rel.split("/") if p not in ("", "."))
    if ".." in out:
        raise UnsafePath(f"{rel!r} contains '..': use a path inside the root")
    return out


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _openat2(dirfd: int, rel: str, flags: int, mode: int) -> int:
    # openat2 refuses a mode without O_CREAT, where openat ignores it.
    mode = mode if flags & os.O_CREAT else 0
    how = _OpenHow(flags, mode, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = int(
        _libc().syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(os.fsencode(rel)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), rel)
    return fd


@functools.cache
def has_openat2() -> bool:
    """Whether this kernel (and any seccomp filter around us) allows openat2."""
    try:
        with opened(os.open("/", _DIR_FLAGS)) as fd:
            os.close(_openat2(fd, ".", _DIR_FLAGS, 0))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            return False
        raise
    return True


def _describe(dirfd: int, name: str, rel: str) -> UnsafePath:
    """Why name (in dirfd) cannot be walked through: a link, or not a directory."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return UnsafePath(f"{rel!r} changed while it was opened; try again")
    if stat.S_ISLNK(st.st_mode):
        return IsLink(rel, readlink(dirfd, name))
    return UnsafePath(f"{rel!r} is not a directory")


def readlink(dirfd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=dirfd)[:MAX_LINK_TARGET]
    except OSError:
        return "?"


def _walk_open(dirfd: int, names: tuple[str, ...], flags: int, mode: int) -> int:
    """The per-component fallback: each step is an openat(O_NOFOLLOW) on the last fd."""
    cur = os.dup(dirfd)
    try:
        for i, name in enumerate(names[:-1]):
            done = "/".join(names[: i + 1])
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=cur)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _describe(cur, name, done) from None
                raise
            os.close(cur)
            cur = nxt
        last = names[-1] if names else "."
        try:
            return os.open(last, flags, mode, dir_fd=cur)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and names:
                raise _describe(cur, last, "/".join(names)) from None
            raise
    finally:
        os.close(cur)


def open_beneath(
    dirfd: int, rel: str, flags: int, mode: int = 0o644, *, openat2: bool | None = None
) -> int:
    """An fd for rel beneath dirfd; no component may be a symlink (UnsafePath says which).

    `openat2` forces one implementation (tests run both); None picks what the kernel has.
    """
    names = parts(rel)
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    if openat2 is None:
        openat2 = has_openat2()
    if openat2:
        try:
            return _openat2(dirfd, "/".join(names) or ".", flags, mode)
        except OSError as exc:
            # ELOOP / EXDEV: a link or an escape; the walk below names the component.
            # EAGAIN: a concurrent rename the kernel will not resolve through; the walk is safe too.
            if exc.errno not in (errno.ELOOP, errno.EXDEV, errno.EAGAIN, errno.ENOTDIR):
                raise
            if exc.errno in (errno.ELOOP, errno.EXDEV):
                # The walk names the link; refused even when the walk now succeeds:
                # it was a link a moment ago.
                with contextlib.suppress(OSError):
                    os.close(_walk_open(dirfd, names, flags, mode))
                raise UnsafePath(f"{rel!r} went through a symlink while it was opened") from None
    return _walk_open(dirfd, names, flags, mode)


def open_dir(dirfd: int, rel: str, *, create: bool = False, openat2: bool | None = None) -> int:
    """A directory fd for rel beneath dirfd; with create, missing components are made
    (each one by mkdirat on its parent's fd, so a link planted meanwhile is never followed)."""
    if not create:
        return open_beneath(dirfd, rel, _DIR_FLAGS, openat2=openat2)
    names = parts(rel)
    if not names:
        return os.dup(dirfd)
    cur = os.dup(dirfd)
    try:
        for name in names:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=cur)  # mkdirat never follows a link
            nxt = open_beneath(cur, name, _DIR_FLAGS, openat2=openat2)
            os.close(cur)
            cur = nxt
        fd, cur = cur, -1
        return fd
    except UnsafePath as exc:
        raise UnsafePath(f"{rel!r}: {exc}") from None
    finally:
        if cur >= 0:
            os.close(cur)


@contextlib.contextmanager
def opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def root(path: Path) -> Iterator[int]:
    """The root directory's fd. The root itself is the caller's (trusted) choice."""
    with opened(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)) as fd:
        yield fd


def _split(rel: str) -> tuple[str, str]:
    names = parts(rel)
    if not names:
        raise UnsafePath(f"{rel!r} names the root directory, not a file")
    return "/".join(names[:-1]), names[-1]


def read_bytes(rootfd: int, rel: str, limit: int, *, openat2: bool | None = None) -> bytes:
    """At most limit bytes of the regular file rel; IsLink if it is a symlink."""
    parent, name = _split(rel)
    with opened(open_dir(rootfd, parent, openat2=openat2)) as pfd:
        try:
            # O_NONBLOCK: a fifo planted in the workspace must not hang the controller.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=pfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IsLink(rel, readlink(pfd, name)) from None
            raise
    with opened(fd):
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{rel!r} is not a regular file")
        chunks, left = [], limit
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def write_bytes(rootfd: int, rel: str, data: bytes, *, openat2: bool | None = None) -> None:
    """Replace (or create) the regular file rel with data, making missing parent dirs.

    Written through the fd that was checked: a link, a directory, a fifo or a file
    with other hard links is refused, never written through.
    """
    parent, name = _split(rel)
    with opened(open_dir(rootfd, parent, create=True, openat2=openat2)) as pfd:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o644, dir_fd=pfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IsLink(rel, readlink(pfd, name)) from None
            if exc.errno in (errno.EISDIR, errno.ENXIO):
                raise UnsafePath(f"{rel!r} is not a regular file") from None
            raise
    with opened(fd):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{rel!r} is not a regular file")
        if st.st_nlink > 1:
            # Another name for the same inode may lie outside the write scope.
            raise UnsafePath(f"{rel!r} has {st.st_nlink} hard links; refusing to write through it")
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def lookup(rootfd: int, rel: str, *, openat2: bool | None = None) -> Entry:
    """What rel is, without following it."""
    names = parts(rel)
    if not names:
        return Entry(".", "dir")
    parent, name = "/".join(names[:-1]), names[-1]
    with opened(open_dir(rootfd, parent, openat2=openat2)) as pfd:
        return _entry(pfd, name, "/".join(names))


def _entry(dirfd: int, name: str, rel: str) -> Entry:
    mode = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        return Entry(rel, "link", readlink(dirfd, name))
    kind = "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
    return Entry(rel, kind)


def walk(
    rootfd: int, rel: str = ".", limit: int = MAX_WALK_ENTRIES, *, openat2: bool | None = None
) -> tuple[list[Entry], bool]:
    """(every entry under rel but directories, sorted; whether limit cut the listing).

    Links are entries of their own and never descended into; each directory is
    entered by an O_NOFOLLOW open on its parent's fd, so a swap cannot redirect it.
    """
    base = "/".join(parts(rel))
    out: list[Entry] = []
    stack = [(open_dir(rootfd, base, openat2=openat2), base)]
    try:
        while stack:
            fd, prefix = stack.pop()
            with opened(fd):
                with os.scandir(fd) as it:
                    names = sorted(e.name for e in it)
                for name in names:
                    if len(out) >= limit:
                        return sorted(out, key=lambda e: e.rel), True
                    child = f"{prefix}/{name}" if prefix else name
                    try:
                        entry = _entry(fd, name, child)
                        if entry.kind != "dir":
                            out.append(entry)
                            continue
                        stack.append((os.open(name, _DIR_FLAGS, dir_fd=fd), child))
                    except OSError as exc:
                        if exc.errno == errno.ELOOP:  # swapped for a link since the stat
                            out.append(Entry(child, "link", readlink(fd, name)))
                        elif exc.errno != errno.ENOENT:  # gone since the listing: skip
                            raise
    finally:
        for fd, _ in stack:
            os.close(fd)
    return sorted(out, key=lambda e: e.rel), False
