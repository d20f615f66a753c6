"""Path globs and domain patterns: matching, and whether one pattern covers another.

`covers` is deliberately conservative: when it cannot prove that an allowed
pattern contains a requested one, it says no, so narrowing fails closed.
"""

from __future__ import annotations

import functools
import re

_WILD = re.compile(r"[*?\[]")


@functools.lru_cache(maxsize=4096)
def _regex(glob: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + r"\Z")


def match(path: str, glob: str) -> bool:
    """Does a repo-relative path match glob (`*` stays within a directory, `**` crosses)?"""
    return _regex(glob).match(path) is not None


def match_any(path: str, globs: list[str] | tuple[str, ...]) -> bool:
    return any(match(path, g) for g in globs)


def covers(allowed: str, requested: str) -> bool:
    if allowed == requested or allowed == "**":
        return True
    if not _WILD.search(requested):
        return match(requested, allowed)
    if allowed.endswith("/**"):
        return requested.startswith(allowed[:-2])
    return False


def domain_covers(allowed: str, requested: str) -> bool:
    """`*.example.com` covers `a.example.com` and `*.a.example.com`, never `example.com`."""
    allowed, requested = allowed.lower(), requested.lower()
    if allowed == requested:
        return True
    if allowed.startswith("*."):
        return requested.removeprefix("*.").endswith(allowed[1:])
    return False
