"""Which process is carrying a run forward, and whether it still lives.

A run in flight (planned, running, approved) names its owner in the record:
`<host>:<pid>:<start>`, start being the process's start time in clock ticks since boot
(/proc/<pid>/stat), so a pid reused by another process is not mistaken for the owner.
A process killed mid-run leaves its run in flight; the next CLI or bot start finds it
dead and resolves the run, instead of the run staying `running` for good.
"""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else None


def this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def is_dead(owner: str | None) -> bool:
    """True only when the owner certainly died: it ran on this host and is gone.

    A run with no owner was written before owners were recorded, by a process that has
    since been upgraded away. Another host's owner cannot be checked from here."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return _start_ticks(int(pid)) != start
