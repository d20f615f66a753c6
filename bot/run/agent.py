"""The agent loop: ask the model, send its tool calls through the broker, until it stops.

Budgets are enforced here, by agentplane, per run (litellm's global budget cannot see
one job's spend): usd, tokens, tool calls and minutes. A model that takes per-call
limits (the litellm client) gets what each budget has left with every call, so the
minutes budget holds while a call is in flight and max_tokens is what the budget can
still pay for. An answer that ends for any reason but a normal stop is not a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from bot.adapters.model.turn import (
    CallLimits,
    ModelBudgetError,
    ModelError,
    ModelTimedOut,
    ModelTurn,
    ending_problem,
)
from bot.core.errors import AgentplaneError
from bot.core.job import Budget
from bot.families.ask.tools import NeedsAnswer
from bot.run.broker import Broker


class Model(Protocol):
    def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ModelTurn: ...


@runtime_checkable
class LimitedModel(Protocol):
    """A model that takes per-call limits (LiteLLMClient). A plain Model (a test double, a
    wrapper) still works, with budgets checked only between calls."""

    incomplete_retries: int
    """How often to ask again after a cut or empty answer (policy's incomplete_answers)."""

    def complete_within(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], limits: CallLimits
    ) -> ModelTurn: ...


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "budget_exceeded", "needs_clarification"]
    message: str
    """Why the loop stopped: the model's closing words when done, agentplane's reason
    otherwise (never to be shown as if the model had said it: see `said`)."""
    messages: list[dict[str, Any]]
    """The whole conversation, so a paused run resumes exactly where it stopped."""
    question_call: str | None = None
    """The id of the `ask` call waiting for an answer."""
    said: str | None = None
    """What the model itself last said (its content), whatever the status."""


class AgentFailed(AgentplaneError):
    """The model failed the run: it could not be reached, or its answer was cut, empty or
    malformed. `messages` is the conversation up to and including the failed answer, so a
    failed run keeps its transcript (replayable: script_from_transcript)."""

    def __init__(self, reason: str, messages: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.messages = messages


@dataclass
class Spent:
    """What a run has used so far (carried across a pause for clarification)."""

    usd: float = 0.0
    tokens: int = 0
    tool_calls: int = 0
    unpriced_calls: int = 0
    """Calls whose cost cannot be known: the usd figure leaves them out."""
    estimated_calls: int = 0
    """Calls whose tokens are a tokenizer estimate (the server sent no usage)."""


SYSTEM = """You are an agent run by agentplane, a governed runtime.
Work only through the tools you are given. Every call is checked against policy
and recorded; denied calls tell you why. File changes are staged as a proposal
that a human reviews before anything is applied. Scope: read {read}; write {write}.
If the task is ambiguous, use the `ask` tool rather than assume.
When you are done, reply with a short summary of what you changed and why."""


def scope_text(globs: list[str]) -> str:
    """`src/**, tests/**`: how a person would write the scope, not a Python list."""
    return ", ".join(globs) if globs else "nothing"


def opening(prompt: str, broker: Broker) -> list[dict[str, Any]]:
    plan = broker.plan
    scope = {"read": scope_text(plan.granted("read")), "write": scope_text(plan.granted("write"))}
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


def limits_left(budget: Budget, spent: Spent, elapsed: float) -> CallLimits:
    return CallLimits(
        seconds_left=None if budget.minutes is None else budget.minutes * 60 - elapsed,
        tokens_left=None if budget.tokens is None else budget.tokens - spent.tokens,
        usd_left=None if budget.usd is None else budget.usd - spent.usd,
    )


def assistant_message(turn: ModelTurn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.tool_calls
        ]
    return message


def run_agent(
    messages: list[dict[str, Any]],
    broker: Broker,
    model: Model,
    budget: Budget,
    on_turn: Callable[[ModelTurn], None],
    spent: Spent | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Continue the conversation in messages until the model stops, asks, or runs out.

    AgentFailed when the model fails the run (see there); every turn that came back, the
    failed one too, has gone to on_turn first: its tokens were paid for.
    """
    messages = list(messages)
    spent = spent or Spent()
    started = clock()
    said: str | None = None
    retries = model.incomplete_retries if isinstance(model, LimitedModel) else 0

    def over() -> str | None:
        spent.tool_calls = broker.calls
        return over_budget(budget, spent, clock() - started)

    def stop(reason: str) -> Outcome:
        return Outcome("budget_exceeded", reason, messages, said=said)

    while True:
        if (reason := over()) is not None:
            return stop(reason)
        try:
            turn = _ask(
                model, messages, broker.schemas(), limits_left(budget, spent, clock() - started)
            )
        except ModelBudgetError as exc:
            return stop(str(exc))
        except ModelTimedOut as exc:
            if exc.budget:
                return stop(f"the run's {budget.minutes} minute budget ran out: {exc}")
            raise AgentFailed(str(exc), messages) from None
        except ModelError as exc:
            raise AgentFailed(str(exc), messages) from None
        _account(spent, turn)
        on_turn(turn)
        if (problem := ending_problem(turn)) is not None:
            if retries > 0:  # policy: ask once more with the same conversation
                retries -= 1
                continue
            # Kept with its finish reason: the transcript shows it, and a replay ends so too.
            failed = [*messages, {**assistant_message(turn), "finish": turn.finish}]
            raise AgentFailed(
                f"model {turn.model} ({turn.group or 'routed group'}): {problem}", failed
            )
        said = turn.content if turn.content is not None else said
        messages.append(assistant_message(turn))
        if not turn.tool_calls:
            return Outcome("done", turn.content or "", messages, said=turn.content)
        for call in turn.tool_calls:
            if (reason := over()) is not None:
                return stop(reason)
            try:
                result = broker.call(call.name, call.arguments)
            except NeedsAnswer as question:
                # Later calls of the same turn are dropped: the answer may change them.
                return Outcome(
                    "needs_clarification", question.question, messages, call.id, said=said
                )
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


def _ask(
    model: Model, messages: list[dict[str, Any]], tools: list[dict[str, Any]], limits: CallLimits
) -> ModelTurn:
    if isinstance(model, LimitedModel):
        return model.complete_within(messages, tools, limits)
    return model.complete(messages, tools)


def _account(spent: Spent, turn: ModelTurn) -> None:
    spent.usd += turn.cost_usd
    spent.tokens += turn.prompt_tokens + turn.completion_tokens
    spent.unpriced_calls += turn.cost is None
    spent.estimated_calls += turn.tokens_estimated
