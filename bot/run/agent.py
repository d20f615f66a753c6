"""The agent loop: ask the model, send its tool calls through the broker, until it stops.

Budgets are enforced here, by agentplane, per run (litellm's global budget cannot see
one job's spend): usd, tokens, tool calls and minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.adapters.model.turn import ModelTurn
from bot.core.job import Budget
from bot.families.ask.tools import NeedsAnswer
from bot.run.broker import Broker


class Model(Protocol):
    def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ModelTurn: ...


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "budget_exceeded", "needs_clarification"]
    message: str
    messages: list[dict[str, Any]]
    """The whole conversation, so a paused run resumes exactly where it stopped."""
    question_call: str | None = None
    """The id of the `ask` call waiting for an answer."""


@dataclass
class Spent:
    """What a run has used so far (carried across a pause for clarification)."""

    usd: float = 0.0
    tokens: int = 0
    tool_calls: int = 0


SYSTEM = """You are an agent run by agentplane, a governed runtime.
Work only through the tools you are given. Every call is checked against policy
and recorded; denied calls tell you why. File changes are staged as a proposal
that a human reviews before anything is applied. Scope: read {read}; write {write}.
If the task is ambiguous, use the `ask` tool rather than assume.
When you are done, reply with a short summary of what you changed and why."""


def opening(prompt: str, broker: Broker) -> list[dict[str, Any]]:
    plan = broker.plan
    scope = {"read": plan.granted("read") or "nothing", "write": plan.granted("write") or "nothing"}
    return [
        {"role": "system", "content": SYSTEM.format(**scope)},
        {"role": "user", "content": prompt},
    ]


def over_budget(budget: Budget, spent: Spent, elapsed: float) -> str | None:
    if budget.usd is not None and spent.usd > budget.usd:
        return f"cost ${spent.usd:.4f} is over the budget of ${budget.usd}"
    if budget.tokens is not None and spent.tokens > budget.tokens:
        return f"{spent.tokens} tokens is over the budget of {budget.tokens}"
    if budget.minutes is not None and elapsed > budget.minutes * 60:
        return f"the run took longer than its {budget.minutes} minute budget"
    if budget.tool_calls is not None and spent.tool_calls >= budget.tool_calls:
        return f"the run used its {budget.tool_calls} tool calls"
    return None


def run_agent(
    messages: list[dict[str, Any]],
    broker: Broker,
    model: Model,
    budget: Budget,
    on_turn: Callable[[ModelTurn], None],
    spent: Spent | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Continue the conversation in messages until the model stops, asks, or runs out."""
    messages = list(messages)
    spent = spent or Spent()
    started = clock()

    def over() -> str | None:
        spent.tool_calls = broker.calls
        return over_budget(budget, spent, clock() - started)

    while True:
        if (reason := over()) is not None:
            return Outcome("budget_exceeded", reason, messages)
        turn = model.complete(messages, broker.schemas())
        spent.usd += turn.cost_usd
        spent.tokens += turn.prompt_tokens + turn.completion_tokens
        on_turn(turn)
        if not turn.tool_calls:
            messages.append({"role": "assistant", "content": turn.content})
            return Outcome("done", turn.content or "", messages)
        messages.append(
            {
                "role": "assistant",
                "content": turn.content,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in turn.tool_calls
                ],
            }
        )
        for call in turn.tool_calls:
            if (reason := over()) is not None:
                return Outcome("budget_exceeded", reason, messages)
            try:
                result = broker.call(call.name, call.arguments)
            except NeedsAnswer as question:
                # Later calls of the same turn are dropped: the answer may change them.
                return Outcome("needs_clarification", question.question, messages, call.id)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
