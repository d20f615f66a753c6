"""The ask family: the agent asks a person instead of assuming; the run pauses on it."""

from __future__ import annotations

from collections.abc import Sequence

from bot.families.ask.tools import ask_tool
from bot.families.base import ToolSpec
from bot.families.interface import FamilySession, RunContext, ToolFamily


class _Session(FamilySession):
    def __init__(self, ctx: RunContext) -> None:
        self.spec = ask_tool(ctx.answers)

    def tools(self) -> Sequence[ToolSpec]:
        return [self.spec]


class AskFamily(ToolFamily):
    name = "ask"
    capabilities = ("ask",)

    def open(self, ctx: RunContext) -> FamilySession:
        return _Session(ctx)
