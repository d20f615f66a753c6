"""What one model call returns, apart from litellm: importing litellm costs seconds, and
only a run that calls a model should pay them (not approve, audit or the webhook ack)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.adapters.model.errors import (
    ModelBudgetError,
    ModelCostUnknown,
    ModelError,
    ModelResponseError,
    ModelTimedOut,
    ModelUnavailable,
)

if TYPE_CHECKING:
    from bot.adapters.model.client import LiteLLMClient

__all__ = [
    "CallLimits",
    "ModelBudgetError",
    "ModelCostUnknown",
    "ModelError",
    "ModelResponseError",
    "ModelTimedOut",
    "ModelTurn",
    "ModelUnavailable",
    "ToolRequest",
    "ending_problem",
    "litellm_client",
    "script_from_transcript",
]

CostSource = Literal["litellm", "policy", "unknown"]
NORMAL_ENDINGS = frozenset({"stop", "tool_calls", "function_call"})
"""litellm's finish reasons (Anthropic's end_turn and tool_use arrive as these) for an
answer that ended because the model was done."""


@dataclass(frozen=True)
class ToolRequest:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class CallLimits:
    """What the run's budget has left for one call; None: that budget is not set."""

    seconds_left: float | None = None
    tokens_left: int | None = None
    usd_left: float | None = None


@dataclass(frozen=True)
class ModelTurn:
    content: str | None
    tool_calls: tuple[ToolRequest, ...]
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    """0.0 when cost_source is "unknown": add it up, but never read it as a price."""
    latency_ms: float
    finish: str
    group: str = ""
    """The model group that answered (differs from the routed one after a fallback)."""
    fallbacks: int = 0
    deployment: str = ""
    """The deployment that answered: its `model_info.id` (`group#n` unless policy names it)."""
    api_base: str = ""
    """Where it answered from, without any userinfo; "" for the provider's default."""
    retries: int = 0
    """Attempts beyond the first that this call took (retries and fallbacks together)."""
    cost_source: CostSource = "litellm"
    tokens_estimated: bool = False
    """The response carried no usage: the tokens are litellm's tokenizer count."""
    max_tokens: int | None = None
    """The cap sent with the call (policy, model and what the budget had left), if any."""

    @property
    def cost(self) -> float | None:
        """The call's cost in USD, or None when it cannot be known."""
        return None if self.cost_source == "unknown" else self.cost_usd


def ending_problem(turn: ModelTurn) -> str | None:
    """Why an answer is not a normal end of turn, or None: only a model that stopped because
    it was done has answered; a cut or empty answer is never a success."""
    if turn.finish == "length":
        cap = f" ({turn.max_tokens} tokens)" if turn.max_tokens else ""
        return f"the answer was cut off at its max_tokens{cap} (finish reason length)"
    if turn.finish == "content_filter":
        return "the provider's content filter stopped the answer (finish reason content_filter)"
    if turn.finish not in NORMAL_ENDINGS:
        return f"the answer ended for an unexpected reason (finish reason {turn.finish!r})"
    if not turn.tool_calls and turn.content is None:
        return "the model answered with no content and no tool call"
    if not turn.tool_calls and not (turn.content or "").strip():
        return "the model answered with empty content and no tool call"
    return None


def script_from_transcript(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A recorded conversation (any model's) in the scripted provider's format.

    A transcript may hold what a model really sent, cut tool arguments included: those
    are kept as `raw_arguments` so the replay sends the same bytes (and the broker denies
    them the same way), and an abnormal `finish` is kept so the replay ends the same way.
    """
    turns = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        turn: dict[str, Any] = {"content": m.get("content")}
        calls = [_scripted_call(c) for c in m.get("tool_calls") or [] if isinstance(c, dict)]
        if calls:
            turn["tool_calls"] = calls
        if isinstance(m.get("finish"), str) and m["finish"] not in NORMAL_ENDINGS:
            turn["finish"] = m["finish"]
        turns.append(turn)
    return {"turns": turns}


def _scripted_call(call: dict[str, Any]) -> dict[str, Any]:
    given = call.get("function")
    function: dict[str, Any] = given if isinstance(given, dict) else {}
    name = str(function.get("name") or "")
    raw = function.get("arguments")
    if raw is None or raw == "":
        return {"name": name, "arguments": {}}
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return {"name": name, "arguments": parsed}
    return {"name": name, "raw_arguments": raw if isinstance(raw, str) else json.dumps(raw)}


def litellm_client(config: dict[str, Any]) -> LiteLLMClient:
    """The real model client, imported on first use."""
    from bot.adapters.model.client import LiteLLMClient

    return LiteLLMClient(config)
