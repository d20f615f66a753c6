"""Every tool a run can call, one session per family, closed with the run.

All tools are registered whatever the plan grants: the broker decides, so an
ungranted call is denied with the rule that withheld it, not "unknown tool".
Families that hold connections (SQL, a browser) open only what the plan grants.
Nothing here names a family: they come in as ToolFamily objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.errors import AgentplaneError
from bot.families.base import ToolSpec
from bot.families.interface import FamilySession, RunContext, Staged, ToolFamily


@dataclass
class Toolbox:
    sessions: list[tuple[ToolFamily, FamilySession]]
    tools: list[ToolSpec]

    @classmethod
    def open(cls, families: Sequence[ToolFamily], ctx: RunContext) -> Toolbox:
        """Each family's session for this run; if one cannot open, those open are closed."""
        box = cls([], [])
        try:
            for family in families:
                session = family.open(ctx)
                box.sessions.append((family, session))
                box.tools += session.tools()
        except BaseException:
            box.close()
            raise
        return box

    def redact(self, text: str) -> str:
        """Every session's own secrets out of a tool result."""
        for _, session in self.sessions:
            text = session.redact(text)
        return text

    def finish(self) -> tuple[list[tuple[ToolFamily, Staged]], AgentplaneError | None]:
        """What each family staged, and the first family's error, if any. Every session
        finishes even after another failed, so what each saw (its egress) is recorded."""
        staged: list[tuple[ToolFamily, Staged]] = []
        error: AgentplaneError | None = None
        for family, session in self.sessions:
            try:
                staged.append((family, session.finish()))
            except AgentplaneError as exc:
                error = error or exc
        return staged, error

    def close(self) -> None:
        for _, session in reversed(self.sessions):
            session.close()
