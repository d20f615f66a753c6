"""One review, several runs: the PR branch as this delivery moved it.

An approving review releases every run of the pull request that awaits it, one after
another, and each apply re-reads the live head first (Atlantis: a push after the review
wins). The first run's applied commit moves that head, so without this every later run
would see its own bot's push as "the head moved". OwnPushes remembers exactly which
commits this delivery pushed, onto which head: reading through them gives the head the
reviewer saw, and a push by anyone else is still a head nobody approved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class OwnPushes:
    tip: str | None = None
    """The PR branch's tip after this delivery's last push (None: nothing pushed yet)."""
    onto: dict[str, str] = field(default_factory=dict)
    """Each commit this delivery pushed -> the tip it was pushed onto."""

    def pushed(self, new_tip: str, old_tip: str) -> None:
        self.onto[new_tip] = old_tip
        self.tip = new_tip

    def seen_through(self, head: str) -> str:
        """head with this delivery's own pushes peeled off: what was there before them."""
        seen: set[str] = set()
        while head in self.onto and head not in seen:  # a cycle cannot arise; never loop
            seen.add(head)
            head = self.onto[head]
        return head

    def live(self, read: Callable[[], str]) -> Callable[[], str]:
        """A live-head reader for Engine.decide: read() each time, our pushes peeled off."""
        return lambda: self.seen_through(read())
