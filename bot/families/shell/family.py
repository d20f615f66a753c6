"""The shell family: commands in the run's sandbox. It stages nothing of its own: what a
command writes is in the workspace, which the filesystem family diffs."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.record import ToolCall
from bot.core.render import Section
from bot.families.base import ToolSpec
from bot.families.interface import (
    EvidenceContext,
    FamilySession,
    RunContext,
    ToolFamily,
    text_section,
)
from bot.families.shell.tools import shell_tool

TAIL_LINES = 15
"""Lines of a command's output the evidence shows (the record keeps what the model saw)."""


class _Session(FamilySession):
    def __init__(self, ctx: RunContext) -> None:
        self.spec = shell_tool(ctx.sandbox)

    def tools(self) -> Sequence[ToolSpec]:
        return [self.spec]


class ShellFamily(ToolFamily):
    name = "shell"
    capabilities = ("shell",)
    gate_actions = ("write",)
    implied_actions = ("write",)

    def open(self, ctx: RunContext) -> FamilySession:
        return _Session(ctx)

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        """Each command the agent ran, how it ended and the tail of its output: a reviewer
        sees that the tests failed, not only the agent saying they pass."""
        calls = [c for c in ctx.record.tool_calls if c.tool == "shell"]
        if not calls:
            return []
        body = "\n\n".join(_shown(c) for c in calls)
        failed = sum(1 for c in calls if c.status and c.status != "exit 0")
        title = (
            f"Shell commands ({len(calls)}, {failed} failed)"
            if failed
            else (f"Shell commands ({len(calls)})")
        )
        return [text_section(title, body, collapsed=True)]


def _shown(call: ToolCall) -> str:
    command = str(call.arguments.get("command", ""))
    if call.decision == "deny":
        return f"$ {command}\n[denied by {call.rule}]"
    lines = call.result.splitlines()
    if call.status and lines and lines[0] == f"[{call.status}]":
        lines = lines[1:]  # the status line the model read: shown once, below
    tail = lines[-TAIL_LINES:]
    cut = [f"... ({len(lines) - TAIL_LINES} lines above)"] if len(lines) > TAIL_LINES else []
    return "\n".join([f"$ {command}", f"[{call.status or 'no status'}]", *cut, *tail])
