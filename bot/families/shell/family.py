"""The shell family: commands in the run's sandbox. It stages nothing of its own: what a
command writes is in the workspace, which the filesystem family diffs."""

from __future__ import annotations

from collections.abc import Sequence

from bot.families.base import ToolSpec
from bot.families.interface import FamilySession, RunContext, ToolFamily
from bot.families.shell.tools import shell_tool


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
