"""The `ask` tool: the agent asks a human instead of assuming. The run pauses on it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.families.base import ToolFailure, ToolOutcome, ToolSpec, obj, string


class NeedsAnswer(Exception):
    """Raised through the broker to pause the run in needs_clarification."""

    def __init__(self, question: str) -> None:
        self.question = question
        super().__init__(question)


def answer_text(who: str, text: str) -> str:
    """How an answer reaches the agent, as the tool's result."""
    return f"Answer from {who}: {text}"


def ask_tool(recorded: Iterable[str] = ()) -> ToolSpec:
    """recorded: answers given in an earlier run of the same turns (a replay), handed back
    in order, so a replay does not stop where the original waited for a person."""
    answers = iter(recorded)

    def ask(args: dict[str, Any]) -> ToolOutcome:
        question = args.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ToolFailure("question must be a non-empty string")
        answer = next(answers, None)
        if answer is not None:
            return ToolOutcome(answer)
        raise NeedsAnswer(question.strip())

    return ToolSpec(
        "ask",
        "ask",
        "Ask the requester a question and wait for the answer.",
        obj(question=string("one clear question")),
        ask,
    )
