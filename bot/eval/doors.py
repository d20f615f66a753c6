"""Which door drives a scenario's runs. The terminal door's driver is the runner's own;
a door whose world is not on this machine (the PR door needs a GitHub) is registered
by a module outside bot/ (`agentplane eval --drivers MODULE`), so bot/ never imports
the test double that plays GitHub."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from bot.core.errors import AgentplaneError
from bot.eval.report import Measure
from bot.eval.scenario import Scenario

Driver = Callable[[Scenario, list[dict[str, Any]], str], Measure]
"""(scenario, the model's turns, sandbox backend) -> what the run left, measured."""

DRIVERS_ATTR = "EVAL_DRIVERS"
"""A drivers module's mapping of door name -> Driver."""

_registered: dict[str, Driver] = {}


def register(door: str, driver: Driver) -> None:
    _registered[door] = driver


def driver(door: str) -> Driver | None:
    return _registered.get(door)


def load(modules: Iterable[str]) -> None:
    """Import each module and register the drivers it lists under EVAL_DRIVERS."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise AgentplaneError(f"--drivers {name}: cannot import it ({exc})") from exc
        found = getattr(module, DRIVERS_ATTR, None)
        if not isinstance(found, dict) or not found:
            raise AgentplaneError(f"--drivers {name}: the module has no {DRIVERS_ATTR} mapping")
        for door, fn in found.items():
            register(str(door), fn)


def check(scenarios: Iterable[Scenario], built_in: Iterable[str] = ("cli",)) -> None:
    """Refuse before anything runs when a scenario's door has no driver."""
    known = {*built_in, *_registered}
    missing = sorted({s.door for s in scenarios} - known)
    if missing:
        raise AgentplaneError(
            f"no driver for door {', '.join(missing)}: the PR door's driver needs the "
            "GitHub double, so pass `--drivers tests.support.eval_pr` from a checkout "
            "(as `make eval` does)"
        )
