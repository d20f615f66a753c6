"""Who may approve: composable requirements that fail closed.

Like sigstore-python's AnyOf/AllOf policies, an empty requirement is never
satisfied, and every evaluation returns the reason it passed or failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Matcher = Callable[[str, str], bool]
"""matches(principal, identity): does identity belong to principal (a person, group: or role:)?"""
Person = Callable[[str], str]
"""person(identity): one name per person (bot.core.identity.Directory.person), so that one person
with two accounts, or one email in two cases, counts once."""


@dataclass(frozen=True)
class Tally:
    """What the approvals add up to for one requirement: met or not, and why."""

    ok: bool
    reason: str


class Requirement(BaseModel):
    """Exactly one of any_of, all_of, or count + of."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    any_of: list[str] | None = None
    all_of: list[str] | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    of: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Requirement:
        forms = [self.any_of is not None, self.all_of is not None, self.count is not None]
        if sum(forms) != 1:
            raise ValueError("give exactly one of any_of, all_of, or count with of")
        if (self.count is None) != (self.of is None):
            raise ValueError("count and of go together")
        return self

    def principals(self) -> list[str]:
        return [*(self.any_of or []), *(self.all_of or []), *(self.of or [])]

    def describe(self) -> str:
        if self.any_of is not None:
            return "any of " + ", ".join(self.any_of)
        if self.all_of is not None:
            return "all of " + ", ".join(self.all_of)
        return f"{self.count} of " + ", ".join(self.of or [])

    def evaluate(
        self,
        approvers: Iterable[str],
        author: str,
        matches: Matcher,
        person: Person = lambda key: key,
    ) -> Tally:
        # Authors never count, whatever the policy says: self-approval is not approval.
        one_each = {person(a): a for a in sorted(approvers)}
        one_each.pop(person(author), None)
        people = sorted(one_each.values())
        if self.any_of is not None:
            return _at_least(1, self.any_of, people, matches)
        if self.all_of is not None:
            if not self.all_of:
                return Tally(False, "empty all_of: nobody can approve (fails closed)")
            for principal in self.all_of:
                v = _at_least(1, [principal], people, matches)
                if not v.ok:
                    return Tally(False, f"all_of: {v.reason}")
            return Tally(True, "approved by " + ", ".join(self.all_of))
        return _at_least(self.count or 0, self.of or [], people, matches)


def _at_least(n: int, principals: list[str], people: list[str], matches: Matcher) -> Tally:
    if not principals:
        return Tally(False, "no approvers listed: nobody can approve (fails closed)")
    allowed = [p for p in people if any(matches(pr, p) for pr in principals)]
    if len(allowed) >= n:
        return Tally(True, f"approved by {', '.join(allowed)}")
    return Tally(False, f"needs {n} approval(s) from {', '.join(principals)}; have {len(allowed)}")


def never_met(
    req: Requirement, people_in: Callable[[str], set[str] | None], author: str = ""
) -> str | None:
    """Why no set of approvers can ever meet req (too few people, once the author, who
    never counts, is left out), or None. people_in(principal) is None for no bound."""

    def others(principals: Iterable[str]) -> int | None:
        found: set[str] = set()
        for p in principals:
            people = people_in(p)
            if people is None:
                return None
            found |= people
        found.discard(author)
        return len(found)

    but = " other than the requester" if author else ""
    if req.any_of is not None:
        n = others(req.any_of)
        return None if n is None or n else f"nobody{but} is in {', '.join(req.any_of)}"
    if req.all_of is not None:
        empty = [p for p in req.all_of if others([p]) == 0]
        return f"nobody{but} is in {', '.join(empty)}" if empty else None
    n = others(req.of or [])
    if n is None or n >= (req.count or 0):
        return None
    who = "person" if n == 1 else "people"
    return f"needs {req.count} of {', '.join(req.of or [])}, which has {n} {who}{but}"
