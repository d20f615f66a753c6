"""Named kill points: where the fault suites SIGKILL the bot, one per stage of the run path.

`reached(name)` does nothing unless the environment arms that point:

    AGENTPLANE_KILL_AT=<name>[:<n>]   the process SIGKILLs itself the n-th time (default 1)
                                      it reaches <name>

An armed point sends SIGKILL to its own process and nothing else: no exception, no
cleanup, no flag another module reads, so the code around it behaves exactly as it does
unarmed, and what the suite sees afterwards is what a real `kill -9` at that point
leaves behind. Unarmed, a point costs one environment lookup.

The points, in run-path order (POINTS): a delivery is in the durable queue but not yet
answered; a run is planned; the agent made a call (each journaled model or tool call);
evidence is on the pull request; an approval is recorded but nothing applied; a part is
applied but its record not written; the audit branch is pushed but not yet noted as pushed.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "AGENTPLANE_KILL_AT"
POINTS = (
    "delivery-accepted",
    "plan",
    "propose",
    "evidence-posted",
    "approval-seen",
    "apply",
    "audit-push",
)

_hits: dict[str, int] = {}
_lock = threading.Lock()


def reached(name: str) -> None:
    """Die here (SIGKILL) if the environment arms this point for this hit."""
    armed = os.environ.get(ENV)
    if not armed:
        return
    point, _, nth = armed.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    if hit == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
