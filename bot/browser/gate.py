"""Pure gate decisions: does this click or this request change state?

Gated, whatever the job says: every request that is not GET or HEAD, and every
click that submits a form (even a GET form). The job can only add to that, by
marking elements (`scope.browser.gated`); it can never make a POST free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.browser.model import ElementInfo
from bot.job import GatedElement

SAFE_METHODS = frozenset({"GET", "HEAD"})
GateAction = Literal["submit", "delete", "purchase"]


@dataclass(frozen=True)
class GateHit:
    action: GateAction
    rule: str
    reason: str


def element_matches(rule: GatedElement, el: ElementInfo) -> bool:
    if rule.role is not None and rule.role.lower() != el.role.lower():
        return False
    return rule.name is None or rule.name.strip().lower() in el.name.lower()


def element_gate(
    el: ElementInfo, gated: Sequence[GatedElement], job_rule: str = "job"
) -> GateHit | None:
    """The gate a click on el passes through, or None when the click is free."""
    for i, rule in enumerate(gated):
        if element_matches(rule, el):
            return GateHit(
                rule.action,
                f"{job_rule}#scope.browser.gated[{i}]",
                f"the job marks {el.role} {el.name!r} as {rule.action}",
            )
    if el.submits_form:
        method = (el.form_method or "get").upper()
        return GateHit(
            "submit",
            "browser#form-submit",
            f"{el.role} {el.name!r} submits a form ({method} {el.form_action or '(this page)'})",
        )
    return None


def request_gate(method: str, is_navigation: bool, armed: GateHit | None) -> GateHit | None:
    """Hold this request? armed is the gate of the click in progress, if it was gated."""
    if method.upper() not in SAFE_METHODS:
        if armed is not None:
            return armed
        return GateHit("submit", "browser#method", f"{method.upper()} requests change state")
    # A gated click that navigates with GET (a delete link, a GET form) is held all the same.
    if armed is not None and is_navigation:
        return armed
    return None
