"""The litellm adapter: one call in, one ModelTurn out, with tokens, cost and latency."""

from __future__ import annotations

import time
from typing import Any

import litellm
from litellm.router import Router

from bot.adapters.model import scripted
from bot.adapters.model.turn import ModelError, ModelTurn, ToolRequest

litellm.suppress_debug_info = True
litellm.telemetry = False
__all__ = ["LiteLLMClient", "ModelError", "ModelTurn", "ToolRequest"]


def _cost(response: Any) -> float:
    hidden = getattr(response, "_hidden_params", {}) or {}
    if hidden.get("response_cost") is not None:
        return float(hidden["response_cost"])
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # litellm raises bare exceptions for unpriced models: cost unknown = 0
        return 0.0


class LiteLLMClient:
    """One model group through litellm's Router (fallbacks, retries), or bare params.

    config is `Routing.router_config(group)` plus an optional `metadata` dict that
    litellm hands to providers and callbacks with every call.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        scripted.register()
        config = dict(config)
        self.metadata: dict[str, Any] = config.pop("metadata", {})
        if "model_list" in config:
            self.group = str(config["group"])
            self.router: Router | None = Router(
                model_list=config["model_list"],
                fallbacks=config.get("fallbacks") or [],
                num_retries=int(config.get("num_retries", 1)),
                retry_after=0,
            )
            self.params: dict[str, Any] = {}
        else:
            self.group, self.router, self.params = str(config.get("model")), None, config

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        started = time.perf_counter()
        kw: dict[str, Any] = {
            "messages": messages,
            "tools": tools or None,
            "metadata": self.metadata,
        }
        response: Any  # litellm's union of stream and non-stream types; we never stream
        try:
            if self.router is not None:
                response = self.router.completion(model=self.group, **kw)
            else:
                response = litellm.completion(**self.params, **kw)
        except Exception as exc:
            raise ModelError(f"model {self.group} failed: {exc}") from None
        latency = (time.perf_counter() - started) * 1000
        choice = response.choices[0]
        message = choice.message
        calls = tuple(
            ToolRequest(c.id, c.function.name, c.function.arguments or "{}")
            for c in (message.tool_calls or [])
        )
        usage = getattr(response, "usage", None)
        hidden = getattr(response, "_hidden_params", {}) or {}
        headers = hidden.get("additional_headers") or {}
        return ModelTurn(
            content=message.content,
            tool_calls=calls,
            model=str(hidden.get("litellm_model_name") or self.params.get("model") or self.group),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=_cost(response),
            latency_ms=round(latency, 3),
            finish=str(choice.finish_reason),
            group=str(headers.get("x-litellm-model-group") or self.group),
            fallbacks=int(headers.get("x-litellm-attempted-fallbacks") or 0),
        )
