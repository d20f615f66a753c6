"""Filesystem tools over the run's workspace: read, write, list, search.

Scope is checked by the broker from each call's `access`; here we only make
sure a path cannot leave the workspace (absolute paths, `..`, symlinks).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.tools.base import ToolFailure, ToolOutcome, ToolSpec, obj, string

MAX_READ = 64 * 1024
MAX_MATCHES = 200


def relpath(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ToolFailure("path must be a non-empty string")
    norm = os.path.normpath(raw.strip())
    if norm.startswith("/") or norm == ".." or norm.startswith("../"):
        raise ToolFailure(f"{raw!r} is outside the workspace: use a path relative to the repo root")
    return norm


def resolve(root: Path, rel: str) -> Path:
    target = (root / rel).resolve()
    if target != root.resolve() and root.resolve() not in target.parents:
        raise ToolFailure(f"{rel!r} resolves outside the workspace (symlink?)")
    return target


def filesystem_tools(root: Path, readable: Callable[[str], bool]) -> list[ToolSpec]:
    """readable(path) -> bool filters list/search results to the read scope."""

    def read(args: dict[str, Any]) -> ToolOutcome:
        target = resolve(root, relpath(args.get("path")))
        if not target.is_file():
            raise ToolFailure(f"{args.get('path')!r} is not a file")
        data = target.read_bytes()[:MAX_READ]
        return ToolOutcome(data.decode("utf-8", errors="replace"))

    def write(args: dict[str, Any]) -> ToolOutcome:
        rel = relpath(args.get("path"))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolFailure("content must be a string")
        target = resolve(root, rel)
        if target.is_symlink() or target.is_dir():
            raise ToolFailure(f"{rel!r} is not a regular file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return ToolOutcome(
            f"wrote {len(content.encode())} bytes to {rel} (staged for approval)", mutates=True
        )

    def walk(start: str) -> list[str]:
        base = resolve(root, relpath(start))
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                if readable(rel):
                    out.append(rel)
        return out

    def list_files(args: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome("\n".join(walk(args.get("path") or ".")) or "(no files)")

    def search(args: dict[str, Any]) -> ToolOutcome:
        try:
            pattern = re.compile(str(args.get("pattern", "")))
        except re.error as exc:
            raise ToolFailure(f"bad regular expression: {exc}") from None
        hits = []
        for rel in walk(args.get("path") or "."):
            text = (root / rel).read_bytes()[:MAX_READ].decode("utf-8", errors="replace")
            for n, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{rel}:{n}: {line[:200]}")
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
