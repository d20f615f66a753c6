"""The litellm adapter: one call in, one ModelTurn out, within the limits the run has left.

Every call goes through litellm's Router (retries, load balancing, the fallbacks policy
allows this job), as a task on one event loop so that its deadline cancels it in flight.
Each call has a timeout per attempt (policy's), a deadline (the run's minutes left),
a max_tokens the budget can pay for, a price that is known or said to be unknown, and
tokens from `usage` or, failing that, from litellm's tokenizer.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import litellm
from litellm.router import Router

from bot.adapters.model import loop, scripted
from bot.adapters.model.errors import (
    ModelBudgetError,
    ModelCostUnknown,
    ModelError,
    ModelResponseError,
    ModelTimedOut,
    ModelUnavailable,
)
from bot.adapters.model.failures import describe, known_keys, mask, missing_field
from bot.adapters.model.logs import route_litellm_logs
from bot.adapters.model.prices import (
    Price,
    count_prompt,
    count_text,
    deployment_price,
    max_output_tokens,
)
from bot.adapters.model.response import Answer, read
from bot.adapters.model.turn import CallLimits, ModelTurn, ToolRequest
from bot.core.routing import DEFAULT_NUM_RETRIES, DEFAULT_TIMEOUT_S, price_basis

litellm.suppress_debug_info = True
litellm.telemetry = False
route_litellm_logs()
__all__ = ["CallLimits", "LiteLLMClient", "ModelError", "ModelTurn", "ToolRequest"]

MIN_ANSWER_TOKENS = 16
"""Fewer tokens than this left for an answer: the budget is spent, not a call to make."""
DEADLINE_SLACK_S = 10.0
"""Beyond timeout x attempts, for litellm's own waits between attempts."""


class LiteLLMClient:
    """One model group through litellm's Router, or one deployment given as bare params.

    config is `Routing.router_config(group, ...)` plus an optional `metadata` dict that
    litellm hands to providers and callbacks with every call; bare litellm params (a
    replay's `{"model": "scripted/...", "api_base": ...}`) are one deployment's group.
    """

    def __init__(self, config: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> None:
        scripted.register()
        config = dict(config)
        self.metadata: dict[str, Any] = dict(config.pop("metadata", None) or {})
        if "model_list" not in config:
            name = str(config.get("model"))
            config = {"group": name, "model_list": [{"model_name": name, "litellm_params": config}]}
        self.group = str(config["group"])
        self.deployments = _with_ids(config["model_list"])
        self.fallbacks: list[dict[str, list[str]]] = list(config.get("fallbacks") or [])
        self.timeout = float(config.get("timeout") or DEFAULT_TIMEOUT_S)
        self.num_retries = int(config.get("num_retries", DEFAULT_NUM_RETRIES))
        self.refused: list[list[str]] = list(config.get("refused_fallbacks") or [])
        self.max_tokens: int | None = config.get("max_tokens")
        self.incomplete_retries = int(config.get("incomplete_retries", 0))
        """How often the agent loop asks again after a cut or empty answer (policy)."""
        self.unknown_cost = str(config.get("unknown_cost", "allow"))
        self.keys = known_keys(self.deployments.values(), environ)
        self.prices = {i: deployment_price(e) for i, e in self.deployments.items()}
        self.output_limits = {i: _output_limit(e) for i, e in self.deployments.items()}
        self.router = Router(
            model_list=list(self.deployments.values()),
            fallbacks=self.fallbacks,
            num_retries=self.num_retries,
            timeout=self.timeout,
            **dict(config.get("router_settings") or {}),
        )

    # -- the call -------------------------------------------------------------------------

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        return self.complete_within(messages, tools, CallLimits())

    def complete_within(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], limits: CallLimits
    ) -> ModelTurn:
        """One call, cancelled in flight at the deadline the limits and policy give."""
        self._refuse_unknown_cost(limits)
        first = self._primary()
        prompt_estimate = count_prompt(_model(first), messages, tools)
        max_tokens = self._max_tokens(prompt_estimate, limits)
        # Each attempt's timeout is litellm's (the deployment's own, else the Router's);
        # what holds the run's minutes, retries and Retry-After waits included, is this.
        bound = self._attempts_bound()
        by_budget = limits.seconds_left is not None and limits.seconds_left <= bound
        deadline = limits.seconds_left if by_budget else bound
        metadata = dict(self.metadata)  # litellm writes the walk (retries, failures) into it
        kw: dict[str, Any] = {
            "model": self.group,
            "messages": messages,
            "metadata": metadata,
        }
        if tools:
            kw["tools"] = tools
        if max_tokens is not None:
            kw["max_tokens"] = max_tokens
        started = time.perf_counter()
        try:
            response = loop.run(self.router.acompletion(**kw), deadline)
        except loop.Deadline:
            raise self._timed_out(time.perf_counter() - started, by_budget) from None
        except Exception as exc:  # litellm's exception types are many and change: all of them
            attempts = _int(metadata.get("attempted_retries")) + 1
            where = f"model group {self.group}"
            if (field := missing_field(exc)) is not None:
                raise ModelResponseError(
                    f"{where} answered without `{field}`, which litellm needs to read the "
                    "answer: check that the server speaks the provider's wire format"
                ) from None
            text = describe(exc, where, attempts) + self._refused_text()
            raise ModelUnavailable(self._mask(text)) from None
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            return self._turn(
                response, metadata, messages, tools, prompt_estimate, max_tokens, latency_ms
            )
        except ModelResponseError as exc:
            raise ModelResponseError(self._mask(str(exc))) from None

    def _turn(
        self,
        response: Any,
        metadata: dict[str, Any],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        prompt_estimate: int,
        max_tokens: int | None,
        latency_ms: float,
    ) -> ModelTurn:
        hidden: dict[str, Any] = dict(getattr(response, "_hidden_params", None) or {})
        headers: dict[str, Any] = dict(hidden.get("additional_headers") or {})
        deployment = str(hidden.get("model_id") or "")
        entry = self.deployments.get(deployment) or self._primary()
        model = str(hidden.get("litellm_model_name") or _model(entry))
        group = str(headers.get("x-litellm-model-group") or entry.get("model_name") or self.group)
        answer = read(response, f"model group {group} ({model})")
        prompt, completion, estimated = _tokens(answer, model, messages, tools, prompt_estimate)
        answered_from = hidden.get("api_base") if isinstance(hidden.get("api_base"), str) else None
        price = deployment_price(entry, answered_from)
        fallbacks = _int(headers.get("x-litellm-attempted-fallbacks"))
        retries = _int(headers.get("x-litellm-attempted-retries"))
        if fallbacks:  # the primary's retries are on the walk's root, each hop one attempt more
            retries += _int(metadata.get("attempted_retries")) + fallbacks
        return ModelTurn(
            content=answer.content,
            tool_calls=answer.tool_calls,
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=_cost(
                price, hidden if _as_listed(entry) else {}, prompt, completion, estimated
            ),
            latency_ms=round(latency_ms, 3),
            finish=answer.finish,
            group=group,
            fallbacks=fallbacks,
            deployment=deployment or str(entry["model_info"]["id"]),
            api_base=self._mask(_no_userinfo(answered_from or "")),
            retries=retries,
            cost_source=price.source,
            tokens_estimated=estimated,
            max_tokens=max_tokens,
        )

    # -- limits ---------------------------------------------------------------------------

    def _refuse_unknown_cost(self, limits: CallLimits) -> None:
        if self.unknown_cost != "refuse" or limits.usd_left is None:
            return
        for deployment, price in self.prices.items():
            if not price.known:
                raise ModelCostUnknown(
                    f"model group {self.group}: the job has a usd budget and the cost of "
                    f"{deployment} cannot be known ({price.reason}); policy refuses such "
                    "models for usd-budgeted jobs (models.unknown_cost: refuse)"
                )

    def _max_tokens(self, prompt: int, limits: CallLimits) -> int | None:
        """The least of policy's max_tokens, each deployment's own and its model's listed
        output limit, and what the token and usd budgets have left after the prompt."""
        caps = [self.max_tokens] if self.max_tokens else []
        caps += [c for c in self.output_limits.values() if c is not None]
        if limits.tokens_left is not None:
            left = limits.tokens_left - prompt
            if left < MIN_ANSWER_TOKENS:
                raise ModelBudgetError(
                    f"about {prompt} tokens is over the budget of {max(limits.tokens_left, 0)} "
                    "tokens left (the next prompt alone, leaving no room for an answer)"
                )
            caps.append(left)
        if limits.usd_left is not None:
            affordable = [
                n
                for p in self.prices.values()
                if (n := _affordable(p, prompt, limits.usd_left)) is not None
            ]
            if affordable and min(affordable) < MIN_ANSWER_TOKENS:
                raise ModelBudgetError(
                    f"the usd budget has ${max(limits.usd_left, 0):.4f} left: not enough for "
                    f"this prompt (about {prompt} tokens) and an answer on {self.group}"
                )
            caps += affordable
        return min(caps) if caps else None

    def _longest_attempt(self) -> float:
        own = [e["litellm_params"].get("timeout") for e in self.deployments.values()]
        return max([self.timeout, *(t for t in own if isinstance(t, int | float))])

    def _attempts_bound(self) -> float:
        groups = 1 + sum(len(targets) for fb in self.fallbacks for targets in fb.values())
        return self._longest_attempt() * (self.num_retries + 1) * groups + DEADLINE_SLACK_S

    def _timed_out(self, elapsed: float, by_budget: bool) -> ModelTimedOut:
        if by_budget:
            why = "the run's minutes budget ran out while it was in flight"
        else:
            why = (
                f"{self.num_retries + 1} attempts of at most {self._longest_attempt():g} s each "
                "(router_settings.timeout, num_retries) and the fallbacks did not answer"
            )
        return ModelTimedOut(
            f"model group {self.group}: call cancelled after {elapsed:.1f} s: {why}",
            elapsed,
            by_budget,
        )

    # -- helpers --------------------------------------------------------------------------

    def _primary(self) -> dict[str, Any]:
        for entry in self.deployments.values():
            if entry.get("model_name") == self.group:
                return entry
        return next(iter(self.deployments.values()))

    def _refused_text(self) -> str:
        return "".join(f"; fallback {group} {reason}" for group, reason in self.refused)

    def _mask(self, text: str) -> str:
        return mask(text, self.keys)


def _with_ids(model_list: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployments by `model_info.id`, giving `group#n` to those policy did not name: the
    record says which deployment answered by this id."""
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for raw in model_list:
        entry = dict(raw)
        name = str(entry.get("model_name"))
        n = seen[name] = seen.get(name, -1) + 1
        info = dict(entry.get("model_info") or {})
        info.setdefault("id", f"{name}#{n}")
        entry["model_info"] = info
        out[str(info["id"])] = entry
    return out


def _output_limit(entry: Mapping[str, Any]) -> int | None:
    """The deployment's own max_tokens, else its model's listed output limit, but only for
    the listed model itself: a self-hosted server named like one has its own context."""
    params = dict(entry.get("litellm_params") or {})
    own = params.get("max_tokens")
    if isinstance(own, int) and own > 0:
        return own
    basis = price_basis(params, dict(entry.get("model_info") or {}))
    return max_output_tokens(basis.model) if basis.kind == "provider" else None


def _model(entry: Mapping[str, Any]) -> str:
    return str(dict(entry.get("litellm_params") or {}).get("model", ""))


def _tokens(
    answer: Answer,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    prompt_estimate: int,
) -> tuple[int, int, bool]:
    """(prompt, completion, estimated): the server's usage, or litellm's tokenizer count."""
    if answer.usage is not None:
        return answer.usage[0], answer.usage[1], False
    said = (answer.content or "") + "".join(c.name + c.arguments for c in answer.tool_calls)
    prompt = count_prompt(model, messages, tools) if model else prompt_estimate
    return prompt, count_text(model, said), True


def _as_listed(entry: Mapping[str, Any]) -> bool:
    """Is litellm's own response_cost the price of this deployment (its model, not a
    base_model policy bills it as)?"""
    return not dict(entry.get("model_info") or {}).get("base_model")


def _cost(
    price: Price, hidden: dict[str, Any], prompt: int, completion: int, estimated: bool
) -> float:
    if price.source == "litellm" and not estimated:
        # litellm's own figure knows cached-token discounts a per-token price does not.
        reported = hidden.get("response_cost")
        if isinstance(reported, int | float) and reported > 0:
            return float(reported)
    return float(price.of(prompt, completion) or 0.0)


def _affordable(price: Price, prompt: int, usd_left: float) -> int | None:
    """Answer tokens usd_left pays for after the prompt at this price; None: no limit."""
    if price.input is None or price.output is None:
        return None
    left = usd_left - prompt * price.input
    if price.output == 0:
        return None if left >= 0 else 0
    return max(int(left / price.output), 0)


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _no_userinfo(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//", url)
