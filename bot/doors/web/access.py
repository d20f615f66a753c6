"""Who may read, and who may start runs in, which repository: GitHub's answer, kept for a
short time.

The question goes to the collaborator permission endpoint
(`GET /repos/{owner}/{repo}/collaborators/{username}/permission`) with the App's
installation token. The answer counts only if the account it describes is the one that
signed in (same numeric id): a login freed by a rename and taken by someone else does not
carry the first person's access. Any failure to ask is "no", and is not kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bot.core.errors import AgentplaneError
from bot.doors.web.oauth import Person

READ = frozenset({"read", "triage", "write", "maintain", "admin"})
WRITE = frozenset({"write", "maintain", "admin"})
"""Who may start a run from the web door (policy's requester rules decide after that)."""

Ask = Callable[[str, str], tuple[str, int | None]]
"""(repository, login) -> (permission, the id of the account GitHub answered about)."""


class Access:
    def __init__(self, ask: Ask, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.ask, self.ttl, self.clock = ask, ttl, clock
        self._cache: dict[tuple[int, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def permission(self, person: Person, repo: str) -> str:
        """GitHub's permission for this person on repo; "none" when it cannot say."""
        key = (person.id, repo.casefold())
        now = self.clock()
        with self._lock:
            held = self._cache.get(key)
            if held is not None and held[1] > now:
                return held[0]
        try:
            permission, uid = self.ask(repo, person.login)
        except AgentplaneError:
            return "none"  # GitHub cannot confirm it now: no, and ask again next time
        if uid != person.id:
            permission = "none"
        with self._lock:
            self._cache[key] = (permission, now + self.ttl)
        return permission

    def can_read(self, person: Person, repo: str) -> bool:
        return self.permission(person, repo) in READ

    def can_write(self, person: Person, repo: str) -> bool:
        return self.permission(person, repo) in WRITE
