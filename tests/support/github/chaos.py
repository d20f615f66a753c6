"""GitHub misbehaving, on a fixed seed: a share of the double's calls meet a fault.

Kinds, spread evenly: a 5xx answer; a 403 secondary rate limit and a 429, each with
Retry-After; a timeout (the answer comes after the client stopped waiting, and the
request is not acted on); a slow answer (within the client's timeout); and, for writes,
the connection dropped after the write was made, so the client never hears it succeeded.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("5xx", "403-secondary", "429", "timeout", "slow", "dropped-after-write")
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass
class Chaos:
    seed: int
    rate: float = 0.2
    timeout: float = 1.0
    """The client's timeout: a timeout fault waits a little longer than this."""
    slow: float = 0.3
    injected: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    retries: int = 0
    """Calls that repeat a faulted one (same method and path): the bot trying again."""

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._faulted: Counter[tuple[str, str]] = Counter()

    def draw(self, method: str, path: str = "") -> str | None:
        """The fault this call meets, or None (counted either way)."""
        with self._lock:
            self.calls += 1
            if self._faulted[(method, path)] > 0:
                self._faulted[(method, path)] -= 1
                self.retries += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(KINDS)
            if kind == "dropped-after-write" and method not in WRITES:
                kind = "timeout"
            self.injected[kind] += 1
            if kind != "slow":  # a slow answer is still an answer: nothing to retry
                self._faulted[(method, path)] += 1
            return kind
