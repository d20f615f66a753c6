"""GitHub's advice for REST clients, as the bot follows it.

From GitHub's "Best practices for using the REST API" and "Rate limits for the REST API":
when a call is refused, wait `retry-after` seconds if GitHub says so; when
`x-ratelimit-remaining` is 0, wait until `x-ratelimit-reset`; for any other rate limit
(a secondary one) wait at least a minute, doubling each time it is met again. Make
requests serially rather than concurrently, and pause about a second between mutating
requests (POST, PATCH, PUT, DELETE).

Every wait is capped (`github_max_wait`): a webhook handler must never hang on GitHub, so a
longer wait ends the call with WaitTooLong and the delivery goes back to the bot's queue,
whose own backoff tries it again later. Waits and clocks are injectable so tests need not
sleep a minute to see one.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from github.GithubRetry import GithubRetry

from bot.core.errors import AgentplaneError

MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
SECONDARY_WAIT = 60.0
"""GitHub: without retry-after or a spent quota, wait at least one minute on a rate limit."""

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class WaitTooLong(AgentplaneError):
    """GitHub asked for a wait longer than the bot's cap: the call fails instead of hanging."""

    def __init__(self, wait: float, cap: float, why: str) -> None:
        super().__init__(
            f"GitHub asks the bot to wait {wait:.0f} s before trying again ({why}), longer "
            f"than its cap of {cap:.0f} s (github_max_wait): the delivery is retried later"
        )
        self.wait, self.cap = wait, cap


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if str(key).lower() == name:
            return str(value).strip()
    return None


def rate_limited(status: int | None, headers: Mapping[str, Any] | None, message: str) -> bool:
    """GitHub refused the call for a rate limit (403 or 429, with the headers or words that
    say so), not for permissions."""
    if status not in (403, 429):
        return False
    return (
        status == 429
        or _header(headers, "retry-after") is not None
        or _header(headers, "x-ratelimit-remaining") == "0"
        or "rate limit" in message.lower()
    )


def retry_wait(
    status: int | None,
    headers: Mapping[str, Any] | None,
    message: str,
    attempt: int,
    *,
    backoff: float,
    now: float,
) -> tuple[float, str]:
    """(seconds to wait before attempt+1 of a refused or failed call, why), per GitHub.

    attempt counts from 0; status None is a timeout or a dropped connection."""
    after = _header(headers, "retry-after")
    if after is not None:
        seconds = _retry_after_seconds(after, now)
        if seconds is not None:
            return seconds, "retry-after"
    limited = rate_limited(status, headers, message)
    reset = _header(headers, "x-ratelimit-reset") or ""
    if limited and _header(headers, "x-ratelimit-remaining") == "0" and reset.isdigit():
        # The reset is a whole second; it may fall anywhere inside it.
        return max(0.0, int(reset) - now) + 1.0, "rate limit spent until x-ratelimit-reset"
    if limited:
        return SECONDARY_WAIT * 2**attempt, "secondary rate limit"
    return backoff * 2**attempt, "backing off"


def _retry_after_seconds(value: str, now: float) -> float | None:
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_tz(value)  # the header may also be an HTTP date
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - now)


def capped(wait: float, why: str, cap: float) -> float:
    if wait > cap:
        raise WaitTooLong(wait, cap, why)
    return wait


class GuidedRetry(GithubRetry):
    """urllib3's retries of what cannot act twice (reads, and 5xx or rate limits on them),
    waiting as GitHub advises and never longer than the cap."""

    def __init__(
        self,
        *,
        max_wait: float,
        sleep: Sleep = time.sleep,
        clock: Clock = time.time,
        **kwargs: Any,
    ) -> None:
        self.max_wait, self._sleep, self._clock = max_wait, sleep, clock
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> GuidedRetry:
        kw.update(max_wait=self.max_wait, sleep=self._sleep, clock=self._clock)
        return super().new(**kw)

    def sleep(self, response: Any = None) -> None:
        status = getattr(response, "status", None)
        headers = getattr(response, "headers", None)
        # GithubRetry lets a 403 through to here only when GitHub said it is a rate limit.
        message = "rate limit" if status in (403, 429) else ""
        wait, why = retry_wait(
            status,
            headers,
            message,
            max(0, len(self.history) - 1),
            backoff=self.backoff_factor,
            now=self._clock(),
        )
        self._sleep(capped(wait, why, self.max_wait))


class Pacer:
    """One installation's mutating requests: one at a time, each starting at least `pause`
    seconds after the previous one ended (GitHub: serially, a second between writes)."""

    def __init__(self, pause: float, sleep: Sleep = time.sleep, clock: Clock = time.monotonic):
        self.pause, self._sleep, self._clock = pause, sleep, clock
        self._lock = threading.Lock()
        self._last: float | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            if self._last is not None:
                wait = self._last + self.pause - self._clock()
                if wait > 0:
                    self._sleep(wait)
            try:
                yield
            finally:
                self._last = self._clock()


_pacers: dict[tuple[str, int | None, float], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(api_url: str, installation: int | None, pause: float) -> Pacer:
    """The one Pacer of an installation in this process, shared by all its clients (the
    worker builds one client per installation; other doors may build their own)."""
    key = (api_url, installation, pause)
    with _pacers_lock:
        return _pacers.setdefault(key, Pacer(pause))
