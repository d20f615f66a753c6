"""The runner's files: $GITHUB_STEP_SUMMARY (Markdown, appended) and $GITHUB_OUTPUT."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

from bot.doors.actions.context import ActionsError

SUMMARY_LIMIT = 1024 * 1024
"""GitHub refuses a step summary over 1 MiB; longer evidence is cut with a note."""


def append_summary(path: str | None, markdown: str) -> None:
    if path is None:
        return
    data = markdown.encode()
    if len(data) > SUMMARY_LIMIT - 200:
        data = data[: SUMMARY_LIMIT - 200] + b"\n\n(cut: the step summary holds 1 MiB)\n"
    _append(path, data.decode(errors="ignore") + "\n")


def set_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    """`name<<DELIM` blocks, the form that is safe for any value (newlines included)."""
    if path is None:
        return
    lines = []
    for name, value in outputs.items():
        delim = f"ghadelimiter_{secrets.token_hex(8)}"
        lines.append(f"{name}<<{delim}\n{value}\n{delim}\n")
    _append(path, "".join(lines))


def _append(path: str, text: str) -> None:
    try:
        with Path(path).open("a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise ActionsError(f"cannot write {path}: {exc.strerror}") from None
