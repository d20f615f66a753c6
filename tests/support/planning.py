"""plan() as the engine calls it: with the default families' implied actions."""

from __future__ import annotations

from bot.core.identity import Directory
from bot.core.plan import Plan
from bot.core.plan import plan as core_plan
from bot.core.policy import Policy, RepoConfig
from bot.core.request import RunRequest
from bot.families.interface import implied_actions
from bot.families.registry import default_families

IMPLIED = implied_actions(default_families())


def plan(
    req: RunRequest,
    policy: Policy,
    config: RepoConfig | None = None,
    directory: Directory | None = None,
) -> Plan:
    return core_plan(req, policy, config, directory, implied=IMPLIED)
