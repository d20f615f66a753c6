"""What a call costs and how many tokens it used, when the answer does not say so.

Prices come from policy first, then from litellm's price map, and only where that map's
price is the price paid (bot.core.routing.price_basis); otherwise the cost is unknown,
recorded as such, never a silent 0. Tokens come from the response's `usage`, or from
litellm's tokenizer when a server sends none, marked as an estimate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import litellm

from bot.adapters.model.turn import CostSource
from bot.core.routing import PRICE_KEYS, PROVIDER_HOSTS, own_api, price_basis


@dataclass(frozen=True)
class Price:
    """USD per token for one deployment, or unknown (input and output None)."""

    source: CostSource
    input: float | None
    output: float | None
    reason: str

    @property
    def known(self) -> bool:
        return self.input is not None and self.output is not None

    def of(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.input is None or self.output is None:
            return None
        return prompt_tokens * self.input + completion_tokens * self.output


def _listed(model: str) -> dict[str, Any] | None:
    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises its own (and bare) exceptions for unmapped models
        return None
    return dict(info)


def listed_price(model: str) -> tuple[float, float] | None:
    """litellm's list price (input, output per token) for model, or None."""
    info = _listed(model) or {}
    inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if isinstance(inp, int | float) and isinstance(out, int | float):
        return float(inp), float(out)
    return None


def max_output_tokens(model: str) -> int | None:
    info = _listed(model) or {}
    value = info.get("max_output_tokens") or info.get("max_tokens")
    return value if isinstance(value, int) and value > 0 else None


def provider(model: str, params: dict[str, Any]) -> str | None:
    try:
        return str(litellm.get_llm_provider(model, params.get("custom_llm_provider"))[1])
    except Exception:  # an unknown provider prefix: litellm raises BadRequestError
        return None


def deployment_price(entry: dict[str, Any], answered_from: str | None = None) -> Price:
    """The price of one deployment (a model_list entry); answered_from is the api_base the
    response reports, which can differ from policy's (an OPENAI_BASE_URL on the host)."""
    params = dict(entry.get("litellm_params") or {})
    info = dict(entry.get("model_info") or {})
    basis = price_basis(params, info)
    if basis.kind == "policy":
        inp, out = (float(params[k]) for k in PRICE_KEYS)
        return Price("policy", inp, out, basis.reason)
    if basis.kind == "unknown":
        return Price("unknown", None, None, basis.reason)
    # Policy named no api_base, so the provider's own API was meant; a host that points
    # the provider elsewhere (OPENAI_BASE_URL) gets no list price for what it serves.
    named = bool(info.get("base_model"))
    if not named and answered_from and not params.get("api_base"):
        who = provider(basis.model, params)
        if who in PROVIDER_HOSTS and not own_api(who, answered_from):
            return Price(
                "unknown",
                None,
                None,
                f"{basis.model} answered from {answered_from}, not its provider's own API, "
                "and policy gives no price",
            )
    listed = listed_price(basis.model)
    if listed is None:
        return Price(
            "unknown",
            None,
            None,
            f"litellm's price map does not list {basis.model} and policy gives no price: set "
            "litellm_params input_cost_per_token and output_cost_per_token",
        )
    return Price("litellm", *listed, basis.reason)


def count_prompt(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """litellm's tokenizer count of a request (its default tokenizer for unknown models)."""
    try:
        counted = litellm.token_counter(
            model=model,
            messages=messages,
            tools=tools or None,  # type: ignore[arg-type]  # OpenAI tool dicts, as sent
        )
        return int(counted)
    except Exception:  # a tokenizer that cannot load must not fail the call: ~4 chars a token
        return len(json.dumps([messages, tools])) // 4 + 1


def count_text(model: str, text: str) -> int:
    if not text:
        return 0
    try:
        return int(litellm.token_counter(model=model, text=text))
    except Exception:  # as count_prompt
        return len(text) // 4 + 1
