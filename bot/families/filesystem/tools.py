"""Filesystem tools over the run's workspace: read, write, list, search.

Scope is checked by the broker from each call's `access`; here we make sure the
path the broker checked is the file touched: every open goes through safefs,
relative to the workspace's directory fd and never through a symlink, so neither
a committed link nor one a sandboxed process swaps in can redirect a call.
Symlinks are shown as links (`symlink -> target`), never followed.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.adapters import safefs
from bot.families.base import ToolFailure, ToolOutcome, ToolSpec, obj, string

MAX_READ = 64 * 1024
MAX_MATCHES = 200
MAX_WRITE = 16 << 20


def relpath(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ToolFailure("path must be a non-empty string")
    if "\0" in raw:
        raise ToolFailure("path must not contain a NUL byte")
    norm = os.path.normpath(raw.strip())
    if norm.startswith("/") or norm == ".." or norm.startswith("../"):
        raise ToolFailure(f"{raw!r} is outside the workspace: use a path relative to the repo root")
    return norm


_MISSING = {errno.ENOENT: "does not exist", errno.ENOTDIR: "is not a directory"}


@contextmanager
def _in(root: Path, rel: str) -> Iterator[int]:
    """The workspace fd; safefs refusals and missing paths as messages the model can use."""
    try:
        with safefs.root(root) as fd:
            yield fd
    except safefs.UnsafePath as exc:
        raise ToolFailure(str(exc)) from None
    except OSError as exc:
        if exc.errno in _MISSING:
            raise ToolFailure(f"{rel!r} {_MISSING[exc.errno]}") from None
        raise


def _shown(entry: safefs.Entry) -> str:
    return f"{entry.rel} -> {entry.target} (symlink)" if entry.kind == "link" else entry.rel


def filesystem_tools(root: Path, readable: Callable[[str], bool]) -> list[ToolSpec]:
    """readable(path) -> bool filters list/search results to the read scope."""

    def read(args: dict[str, Any]) -> ToolOutcome:
        rel = relpath(args.get("path"))
        with _in(root, rel) as fd:
            try:
                data = safefs.read_bytes(fd, rel, MAX_READ)
            except safefs.IsLink as link:
                if link.rel != rel:  # a link on the way is refused, not shown
                    raise ToolFailure(str(link)) from None
                return ToolOutcome(f"symlink -> {link.target} (not followed)")
            except safefs.UnsafePath:
                if safefs.lookup(fd, rel).kind == "dir":
                    raise ToolFailure(f"{rel!r} is a directory: use fs_list") from None
                raise
        return ToolOutcome(data.decode("utf-8", errors="replace"))

    def write(args: dict[str, Any]) -> ToolOutcome:
        rel = relpath(args.get("path"))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolFailure("content must be a string")
        data = content.encode("utf-8", errors="surrogateescape")
        if len(data) > MAX_WRITE:
            raise ToolFailure(f"content is {len(data)} bytes; at most {MAX_WRITE} per write")
        with _in(root, rel) as fd:
            safefs.write_bytes(fd, rel, data)
        return ToolOutcome(f"wrote {len(data)} bytes to {rel} (staged for approval)", mutates=True)

    def walk(fd: int, start: str) -> tuple[list[safefs.Entry], bool]:
        entries, cut = safefs.walk(fd, start)
        return [e for e in entries if readable(e.rel)], cut

    def list_files(args: dict[str, Any]) -> ToolOutcome:
        start = relpath(args.get("path") or ".")
        with _in(root, start) as fd:
            entries, cut = walk(fd, start)
        lines = [_shown(e) for e in entries] + (["(listing cut)"] if cut else [])
        return ToolOutcome("\n".join(lines) or "(no files)")

    def search(args: dict[str, Any]) -> ToolOutcome:
        try:
            pattern = re.compile(str(args.get("pattern", "")))
        except re.error as exc:
            raise ToolFailure(f"bad regular expression: {exc}") from None
        start = relpath(args.get("path") or ".")
        hits = []
        with _in(root, start) as fd:
            for entry in walk(fd, start)[0]:
                if entry.kind != "file":
                    continue  # links are never followed, fifos never opened
                try:
                    data = safefs.read_bytes(fd, entry.rel, MAX_READ)
                except (safefs.UnsafePath, FileNotFoundError):
                    continue  # swapped or removed since the listing
                for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                    if pattern.search(line):
                        hits.append(f"{entry.rel}:{n}: {line[:200]}")
                        if len(hits) >= MAX_MATCHES:
                            return ToolOutcome("\n".join([*hits, "(more matches cut)"]))
        return ToolOutcome("\n".join(hits) or "(no matches)")

    def at(kind: str) -> Any:
        return lambda args: (kind, relpath(args.get("path") or "."))

    return [
        ToolSpec(
            "fs_read",
            "filesystem",
            "Read a file of the repository.",
            obj(path=string("path relative to the repo root")),
            read,
            at("read"),
        ),
        ToolSpec(
            "fs_write",
            "filesystem",
            "Write a whole file. Changes are staged as a proposal for human approval.",
            obj(
                path=string("path relative to the repo root"),
                content=string("the full new content"),
            ),
            write,
            at("write"),
        ),
        ToolSpec(
            "fs_list",
            "filesystem",
            "List files under a directory.",
            obj(path=string("directory, default the repo root", optional=True)),
            list_files,
            at("read"),
        ),
        ToolSpec(
            "fs_search",
            "filesystem",
            "Search readable files for a regular expression.",
            obj(
                pattern=string("Python regular expression"),
                path=string("directory to search, default the repo root", optional=True),
            ),
            search,
            at("read"),
        ),
    ]
