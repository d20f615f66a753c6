"""Checks on a proposed patch before it is stored: secrets it adds, and quotas.

Pure: the patch and what the control plane knows go in, a verdict comes out.
- An added line holding a secret the control plane knows (a broker credential, a model
  key, its own secrets) refuses the proposal: storing the patch would publish the secret.
- An added line that only looks like a token (detect-secrets' formats; may be a false
  positive) is flagged by file and line, never by value, and the patch is kept.
- A proposal over a policy quota is refused, so nothing over GitHub's limits is stored.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from bot.core.errors import ProposalRefused
from bot.core.policy import Quotas
from bot.run.redact import Redactor

_BINARY_SIZE = re.compile(r"^GIT binary patch\n(?:literal|delta) (\d+)$", re.MULTILINE)
_FILE_START = re.compile(r"^diff --git ", re.MULTILINE)


"""The tool name of a proposal's token flags in the run record (the evidence shows them)."""



@dataclass(frozen=True)
class Flag:
    path: str
    line: int
    kinds: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.path}:{self.line}: looks like {', '.join(self.kinds)} (value not shown)"


@dataclass(frozen=True)
class Usage:
    files_changed: int
    bytes_written: int
    largest_file: tuple[str, int]
    proposal_bytes: int


def _parse(patch: str) -> PatchSet:
    try:
        return PatchSet(patch)
    except UnidiffParseError as exc:
        # git wrote this patch; a parse failure means it is not what it claims.
        raise ProposalRefused(f"the proposed patch cannot be read: {exc}") from None


def usage(patch: str) -> Usage:
    """What a patch adds: text by its added lines, binary files by git's literal size."""
    files = _parse(patch)
    # unidiff does not read GIT binary patches; git puts one file per `diff --git` section.
    sections = _FILE_START.split(patch)[1:]
    sizes: dict[str, int] = {}
    for i, f in enumerate(files):
        if f.is_binary_file and i < len(sections):
            m = _BINARY_SIZE.search(sections[i])
            added = int(m.group(1)) if m else 0
        else:
            added = sum(len(line.value.encode()) for h in f for line in h if line.is_added)
        sizes[f.path] = sizes.get(f.path, 0) + added
    largest = max(sizes.items(), key=lambda kv: kv[1], default=("", 0))
    return Usage(len(files), sum(sizes.values()), largest, len(patch.encode()))


def quota_problem(u: Usage, q: Quotas, rule: str = "policy#quotas") -> str | None:
    """`quota: ...` when the proposal exceeds one, naming the limit and where it is set."""
    path = u.largest_file[0]
    over = [
        (u.files_changed, q.files_changed, "files changed", "files_changed"),
        (u.largest_file[1], q.largest_file_bytes, f"bytes in {path}", "largest_file_bytes"),
        (u.bytes_written, q.bytes_written, "bytes written", "bytes_written"),
        (u.proposal_bytes, q.proposal_bytes, "bytes of patch", "proposal_bytes"),
    ]
    for value, limit, what, key in over:
        if value > limit:
            return f"quota: {value} {what}, over {key} {limit} [{rule}.{key}]"
    return None


def added_lines(patch: str) -> list[tuple[str, int, str]]:
    """(path, line number in the new file, text) of every added text line."""
    return [
        (f.path, line.target_line_no or 0, line.value)
        for f in _parse(patch)
        for h in f
        for line in h
        if line.is_added
    ]


def check_proposal(patch: str, redact: Redactor, quotas: Quotas, rule: str) -> list[Flag]:
    """Raise ProposalRefused when the patch must not be stored; else the token flags."""
    problem = quota_problem(usage(patch), quotas, rule)
    if problem is not None:
        raise ProposalRefused(problem)
    flags = []
    lines = added_lines(patch)
    for path, number, text in lines:
        if redact.knows(text):
            raise ProposalRefused(
                f"refused: {path} line {number} adds a secret the control plane holds "
                "(a broker credential, a model key or the bot's own); the patch is not stored",
                path,
                number,
            )
        if kinds := redact.token_kinds(text):
            flags.append(Flag(path, number, tuple(kinds)))
    # A known secret can straddle lines (a PEM key): the whole added text is checked too.
    if redact.knows("".join(text for _, _, text in lines)):
        raise ProposalRefused(
            "refused: the patch adds a secret the control plane holds, across lines; "
            "the patch is not stored"
        )
    return flags


def tree_usage(root: Path, dirs: Iterable[str]) -> tuple[int, int]:
    """(regular files, bytes) under the writable directories, never through a link.

    Measured before anything is handed to git: a run that wrote past its quotas must stop
    before `git add` copies the bytes into the host repository's object store."""
    files = size = 0
    for rel in dirs:
        for dirpath, _dirnames, filenames in os.walk(root / rel):  # does not follow links
            for name in filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    files, size = files + 1, size + st.st_size
    return files, size


def workspace_problem(
    before: tuple[int, int], after: tuple[int, int], q: Quotas, rule: str
) -> str | None:
    """`quota: ...` when the workspace grew past what any proposal may carry."""
    added_files, added_bytes = after[0] - before[0], after[1] - before[1]
    if added_files > q.files_changed:
        return f"quota: {added_files} files added, over files_changed {q.files_changed} [{rule}]"
    if added_bytes > q.bytes_written:
        return f"quota: {added_bytes} bytes written, over bytes_written {q.bytes_written} [{rule}]"
    return None
