"""Word-level marks inside a changed paragraph: `the [-old-]{+new+} words`, as git's
--word-diff prints them, so they read the same in a terminal and in a fenced block."""

from __future__ import annotations

import difflib
import re

_WORDS = re.compile(r"\s+|[^\s]+")
MAX_MARKED = 2000
"""Characters of a marked paragraph shown; past that it is cut (the file has the rest)."""


def mark_words(old: str, new: str) -> str:
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append("".join(a[i1:i2]))
            continue
        if op in ("delete", "replace"):
            out.append(f"[-{''.join(a[i1:i2])}-]")
        if op in ("insert", "replace"):
            out.append(f"{{+{''.join(b[j1:j2])}+}}")
    return cut("".join(out))


def cut(text: str, limit: int = MAX_MARKED) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
