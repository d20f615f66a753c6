"""`agentplane doctor --models`: does each model group answer? One cheap call per group.

Opt-in (each call costs a few tokens): a short prompt, a tiny max_tokens, no retries and
no fallbacks, so what is reported is the group itself, with its latency and the
deployment that answered, or the same actionable error a run would record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.adapters.model.client import LiteLLMClient
from bot.adapters.model.errors import ModelError
from bot.adapters.model.turn import CallLimits
from bot.core.routing import Routing

PROBE = [{"role": "user", "content": "Reply with the single word: OK"}]
PROBE_TOKENS = 8


@dataclass(frozen=True)
class GroupHealth:
    group: str
    ok: bool
    latency_ms: float | None
    deployment: str = ""
    model: str = ""
    error: str = ""

    def describe(self) -> str:
        if self.ok:
            where = f"{self.deployment}, {self.model}"
            return f"{self.group}: answered in {self.latency_ms:.0f} ms ({where})"
        return f"{self.group}: {self.error}"


def check_groups(
    routing: Routing,
    groups: Iterable[str] | None = None,
    timeout_s: float = 20.0,
    environ: Mapping[str, str] = os.environ,
) -> list[GroupHealth]:
    """One call to each group (all of policy's by default), in policy's order."""
    names = list(groups) if groups is not None else list(routing.groups())
    return [_check(routing, name, timeout_s, environ) for name in names]


def _check(
    routing: Routing, group: str, timeout_s: float, environ: Mapping[str, str]
) -> GroupHealth:
    config = {
        **routing.router_config(group),
        "fallbacks": [],
        "num_retries": 0,
        "timeout": timeout_s,
        "max_tokens": PROBE_TOKENS,
        "model_list": routing.deployments({group}),
    }
    try:
        turn = LiteLLMClient(config, environ).complete_within(PROBE, [], CallLimits())
    except ModelError as exc:
        return GroupHealth(group, False, None, error=str(exc))
    return GroupHealth(group, True, turn.latency_ms, deployment=turn.deployment, model=turn.model)
