"""What one model call returns, apart from litellm: importing litellm costs seconds, and
only a run that calls a model should pay them (not approve, audit or the webhook ack)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core.errors import AgentplaneError

if TYPE_CHECKING:
    from bot.adapters.model.client import LiteLLMClient


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
    group: str = ""
    """The model group that answered (differs from the routed one after a fallback)."""
    fallbacks: int = 0


def script_from_transcript(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A recorded conversation (any model's) in the scripted provider's format."""
    turns = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        turn: dict[str, Any] = {"content": m.get("content")}
        calls = [
            {
                "name": c["function"]["name"],
                "arguments": json.loads(c["function"]["arguments"] or "{}"),
            }
            for c in m.get("tool_calls") or []
        ]
        if calls:
            turn["tool_calls"] = calls
        turns.append(turn)
    return {"turns": turns}


def litellm_client(config: dict[str, Any]) -> LiteLLMClient:
    """The real model client, imported on first use."""
    from bot.adapters.model.client import LiteLLMClient

    return LiteLLMClient(config)
