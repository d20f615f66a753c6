"""Globs keep the meaning they had before wcmatch: pinned case by case."""

from __future__ import annotations

import pytest

from bot.core.globs import covers, match

# (glob, path, matches): `*` stays within a directory, `**` crosses (zero or more), dotfiles
# are paths like any other.
PINNED = [
    ("src/**", "src/a.py", True),
    ("src/**", "src/a/b.py", True),
    ("src/**", "src", False),
    ("src/**", "srcx/a.py", False),
    ("**", "a/.x", True),
    ("docs/**/*.md", "docs/a.md", True),
    ("docs/**/*.md", "docs/a/b/c.md", True),
    ("tests/*.py", "tests/a.py", True),
    ("tests/*.py", "tests/a/b.py", False),
    ("*.md", "b.md", True),
    ("*.md", "a/b.md", False),  # no gitwildmatch "any depth": that would widen scopes
    ("**/x", "x", True),
    ("**/x", "a/b/x", True),
    (".github/**", ".github/workflows/x.yml", True),
    ("src/*", "src/.env", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("src/**/test_*.py", "src/test_b.py", True),
]


@pytest.mark.parametrize(("glob", "path", "expected"), PINNED)
def test_globs_keep_their_meaning(glob: str, path: str, expected: bool) -> None:
    assert match(path, glob) is expected


def test_a_character_class_is_a_class_in_match_and_a_wildcard_in_covers() -> None:
    # Before, `[` was literal in match but a wildcard in covers: the two now agree.
    assert match("ab.txt", "a[b].txt") and not match("a[b].txt", "a[b].txt")
    assert not covers("src/a.py", "src/[ab].py")
    assert covers("src/**", "src/[ab].py")
