"""What `agentplane doctor --repo` can tell an operator about a repository, from the rules
GitHub applies to the audit branch. Pure: the rules in, findings out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.doors.github.checkout import AUDIT

Level = Literal["ok", "problem", "unchecked"]


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str


NEEDED = {
    "update": "pushes to it are restricted (ruleset rule `update`)",
    "non_fast_forward": "force pushes are blocked (`non_fast_forward`)",
    "deletion": "it cannot be deleted (`deletion`)",
}
MISSING = {
    "update": f"anyone with write access can push records onto {AUDIT}: add a ruleset on "
    f"{AUDIT} with 'Restrict updates', and the App as its only bypass actor",
    "non_fast_forward": f"{AUDIT} can be force-pushed: add 'Block force pushes' to its ruleset",
    "deletion": f"{AUDIT} can be deleted: add 'Restrict deletions' to its ruleset",
}
UNCHECKED = [
    "who may bypass the ruleset (it must be the App alone): reading bypass actors needs the "
    "Administration permission, which the App does not ask for; check Settings > Rules",
    "classic branch protection: reading it needs admin rights; prefer a ruleset, which "
    "this check can see",
]


def audit_branch_findings(rules: Iterable[Mapping[str, Any]]) -> list[Finding]:
    kinds = {str(r.get("type")) for r in rules}
    found = [
        Finding("ok", f"{AUDIT}: {NEEDED[k]}") if k in kinds else Finding("problem", MISSING[k])
        for k in NEEDED
    ]
    return found + [Finding("unchecked", f"not checked: {what}") for what in UNCHECKED]
