"""The browser gate at the network boundary: the egress proxy asks it about every request.

Playwright routing holds what it sees, but some requests never pass through it
(a beacon or keepalive fetch fired as the page goes away, a worker's fetch, the
browser re-sending a released POST to where a 307 points). The proxy sees them
all, so it asks this gate, and the gate lets nothing but reads leave: no request
other than GET or HEAD goes out, except the one request apply releases, matched
by method, URL and body digest, once. Everything it refuses is kept as a
GateEvent for the run's record and evidence.

HTTPS is judged the same way because the proxy terminates TLS with a per-run CA
(bot/sandbox/tls.py) that only this Chromium trusts, by the SPKI of its one leaf
key. What that weakens: inside the sandbox, Chromium takes the proxy's word for
every site's identity during the run, and the proxy, not the browser, verifies the
real certificate (system roots, hostname); certificate errors a site has are the
proxy's refusal, not Chromium's interstitial. What it does not: no trust store
changes, the keys never leave the controller's memory (nor enter the sandbox), and
they die with the run, so nothing outside this one Chromium trusts them.

No I/O: the proxy calls it from its own threads, hence the lock.
"""

from __future__ import annotations

import threading

from bot.adapters.sandbox.spec import HttpRequest
from bot.families.browser.allowlist import normal_url
from bot.families.browser.gate import SAFE_METHODS
from bot.families.browser.model import GateEvent

MAX_EVENTS = 500
"""A page that fires beacons in a loop must not grow the record without bound."""


class NetworkGate:
    """The request gate of one Chromium (one propose session, or one apply)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._release: tuple[str, str, str | None] | None = None
        self._released = False
        self._login: tuple[str, str, str | None] | None = None
        self._login_reason = ""
        self.step = 0
        """The step in progress, for the events (set by the session or the replay)."""
        self.events: list[GateEvent] = []
        self.dropped = 0
        """Refusals beyond MAX_EVENTS: counted, not kept."""

    def release_once(self, method: str, url: str, body_sha256: str | None) -> None:
        """Let exactly this request through, once: apply calls it with the request routing
        matched to the approved one, just before it lets it go."""
        with self._lock:
            if self._release is not None:
                raise RuntimeError("the gate releases one request per apply")
            self._release = (method.upper(), normal_url(url), body_sha256)

    def release_login(self, method: str, url: str, body_sha256: str | None, reason: str) -> None:
        """Let the broker's own login request through, once: the form policy declares as a
        credential's login, submitted by the broker on that credential's origin."""
        with self._lock:
            self._login = (method.upper(), normal_url(url), body_sha256)
            self._login_reason = reason

    def end_login(self) -> None:
        """The login is over: its slot lets nothing through any more, sent or not."""
        with self._lock:
            self._login = None

    @property
    def released(self) -> bool:
        with self._lock:
            return self._released

    def __call__(self, request: HttpRequest) -> tuple[bool, str]:
        method = request.method.upper()
        if method in SAFE_METHODS:
            return True, f"{method} reads"
        seen = (method, normal_url(request.url), request.body_sha256)
        with self._lock:
            if method == "CONNECT":
                reason = "a tunnel the gate cannot read: its requests could change state unseen"
            elif self._login == seen:
                self._login = None
                self._record(request, "login", self._login_reason)
                return True, self._login_reason
            elif self._release == seen and not self._released:
                self._released = True
                self._record(request, "released", "the approved request, released once")
                return True, "the approved request, released once"
            elif self._released:
                reason = (
                    f"{method} changes state and the one approved request has already left: "
                    "nothing else state-changing leaves after it"
                )
            else:
                reason = (
                    f"{method} changes state and was not released by the gate "
                    "(sent past the browser's routing: a beacon, a keepalive fetch, a "
                    "worker or a redirect)"
                )
            self._record(request, "refused", reason)
        return False, reason

    def _record(self, request: HttpRequest, decision: str, reason: str) -> None:
        if len(self.events) >= MAX_EVENTS:
            self.dropped += 1
            return
        self.events.append(
            GateEvent(
                step=self.step,
                method=request.method.upper()[:16],
                url=request.url[:2000],
                body_sha256=request.body_sha256,
                decision="released"
                if decision == "released"
                else ("login" if decision == "login" else "refused"),
                reason=reason,
            )
        )

    def refused(self) -> list[GateEvent]:
        with self._lock:
            return [e for e in self.events if e.decision == "refused"]
