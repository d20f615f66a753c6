"""Path globs and domain patterns: matching, and whether one pattern covers another.

`covers` is deliberately conservative: when it cannot prove that an allowed
pattern contains a requested one, it says no, so narrowing fails closed.
"""

from __future__ import annotations

import functools
import re

from wcmatch import glob as wc

_WILD = re.compile(r"[*?\[]")
# GLOBSTAR: `**` crosses directories, `*` and `?` do not; DOTGLOB: `*` matches dotfiles too
# (`.github/x` is a path like any other). No braces, no negation, no extglob: a pattern
# means what it meant before wcmatch, and `[...]` is a character class in match and covers.
_FLAGS = wc.GLOBSTAR | wc.DOTGLOB


@functools.lru_cache(maxsize=4096)
def _compiled(glob: str) -> tuple[re.Pattern[str], ...]:
    # wcmatch's own translation, compiled once: its matcher objects cost ~7x more per call,
    # and policy decisions sit on every tool call's path (bench/bench_policy.py).
    include, _exclude = wc.translate(glob, flags=_FLAGS)
    return tuple(re.compile(rx) for rx in include)


def match(path: str, glob: str) -> bool:
    """Does a repo-relative path match glob (`*` stays within a directory, `**` crosses)?"""
    return any(rx.match(path) for rx in _compiled(glob))


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
