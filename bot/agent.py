"""The agent loop: ask the model, send its tool calls through the broker, until it stops.

Budgets are enforced here, by agentplane, per run: tool calls, usd and minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.broker import Broker
from bot.job import Budget
from bot.model.client import ModelTurn


class Model(Protocol):
    def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ModelTurn: ...


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "budget_exceeded"]
    message: str
    cost_usd: float


SYSTEM = """You are an agent run by agentplane, a governed runtime.
Work only through the tools you are given. Every call is checked against policy
and recorded; denied calls tell you why. File changes are staged as a proposal
that a human reviews before anything is applied. Scope: read {read}; write {write}.
When you are done, reply with a short summary of what you changed and why."""


def run_agent(
    prompt: str,
    broker: Broker,
    model: Model,
    budget: Budget,
    on_turn: Callable[[ModelTurn], None],
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    plan = broker.plan
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": SYSTEM.format(
                read=plan.granted("read") or "nothing", write=plan.granted("write") or "nothing"
            ),
        },
        {"role": "user", "content": prompt},
    ]
    started, cost = clock(), 0.0

    def over() -> str | None:
        if budget.usd is not None and cost > budget.usd:
            return f"cost ${cost:.4f} is over the budget of ${budget.usd}"
        if budget.minutes is not None and clock() - started > budget.minutes * 60:
            return f"the run took longer than its {budget.minutes} minute budget"
        if budget.tool_calls is not None and broker.calls >= budget.tool_calls:
            return f"the run used its {budget.tool_calls} tool calls"
        return None

    while True:
        turn = model.complete(messages, broker.schemas())
        cost += turn.cost_usd
        on_turn(turn)
        if not turn.tool_calls:
            return Outcome("done", turn.content or "", cost)
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
                return Outcome("budget_exceeded", reason, cost)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": broker.call(call.name, call.arguments),
                }
            )
        if (reason := over()) is not None:
            return Outcome("budget_exceeded", reason, cost)
