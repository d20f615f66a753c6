"""The litellm adapter: one call in, one ModelTurn out, with tokens, cost and latency."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import litellm

from bot.errors import AgentplaneError
from bot.model import scripted

litellm.suppress_debug_info = True
litellm.telemetry = False


class ModelError(AgentplaneError):
    """The model could not be reached or answered nonsense."""


@dataclass(frozen=True)
class ToolRequest:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelTurn:
    content: str | None
    tool_calls: tuple[ToolRequest, ...]
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    finish: str


def _cost(response: Any) -> float:
    hidden = getattr(response, "_hidden_params", {}) or {}
    if hidden.get("response_cost") is not None:
        return float(hidden["response_cost"])
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises bare exceptions for unpriced models: cost unknown = 0
        return 0.0


class LiteLLMClient:
    def __init__(self, params: dict[str, Any]) -> None:
        scripted.register()
        self.params = dict(params)

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        started = time.perf_counter()
        try:
            response = litellm.completion(messages=messages, tools=tools or None, **self.params)
        except Exception as exc:
            raise ModelError(f"model {self.params.get('model')} failed: {exc}") from None
        latency = (time.perf_counter() - started) * 1000
        choice = response.choices[0]
        message = choice.message
        calls = tuple(
            ToolRequest(c.id, c.function.name, c.function.arguments or "{}")
            for c in (message.tool_calls or [])
        )
        usage = getattr(response, "usage", None)
        return ModelTurn(
            content=message.content,
            tool_calls=calls,
            model=str(self.params.get("model")),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=_cost(response),
            latency_ms=round(latency, 3),
            finish=str(choice.finish_reason),
        )
