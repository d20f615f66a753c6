"""The `ask` tool: the agent asks a human instead of assuming. The run pauses on it."""

from __future__ import annotations

from typing import Any

from bot.tools.base import ToolFailure, ToolOutcome, ToolSpec, obj, string


class NeedsAnswer(Exception):
    """Raised through the broker to pause the run in needs_clarification."""

    def __init__(self, question: str) -> None:
        self.question = question
        super().__init__(question)


def ask_tool() -> ToolSpec:
    def ask(args: dict[str, Any]) -> ToolOutcome:
        question = args.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ToolFailure("question must be a non-empty string")
        raise NeedsAnswer(question.strip())

    return ToolSpec(
        "ask",
        "ask",
        "Ask the requester a question and wait for the answer.",
        obj(question=string("one clear question")),
        ask,
    )
