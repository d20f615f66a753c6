"""One event loop, in a thread of its own, for every model call in the process.

A model call runs as a task there so that a deadline can cancel it in flight: the HTTP
request, litellm's retries and its Retry-After sleeps all stop with the task, which a
blocking call in a worker thread would not. One loop for the process, not one per call:
litellm caches its HTTP clients, and a client bound to a closed loop fails the next call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid = 0


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop, _pid
    with _lock:
        # A forked worker inherits the variable but not the thread running the loop.
        if _loop is None or _pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _pid = os.getpid()
            threading.Thread(
                target=_loop.run_forever, name="agentplane-model-calls", daemon=True
            ).start()
        return _loop


class Deadline(Exception):
    """The call was still running at its deadline and has been cancelled."""


def run(coro: Coroutine[Any, Any, T], deadline_s: float | None) -> T:
    """The coroutine's result, waiting at most deadline_s (None: no deadline); Deadline
    after cancelling it. Safe from any thread, including one that runs its own loop."""
    future = asyncio.run_coroutine_threadsafe(coro, _running_loop())
    try:
        return future.result(timeout=deadline_s)
    except concurrent.futures.TimeoutError:
        if future.done():
            raise  # the call's own TimeoutError, not the deadline
        future.cancel()
        raise Deadline from None
    except BaseException:
        future.cancel()  # KeyboardInterrupt in the caller: stop the call too
        raise
