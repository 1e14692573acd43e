"""Decision slots: how many requests of one worker are decided at once, and who may wait.

Under overload requests wait here, where their deadline is known, instead of piling up inside
OPA. Waiting is first come, first served. The time a slot is held is averaged, so a request
whose expected wait (the requests already waiting, times the average holding time, over the
slots) exceeds what its deadline allows is turned away at once: it gets the failure mode's
answer in microseconds instead of after waiting for nothing, and its connection is free again
for the next request. How long the oldest waiting request has waited
(:meth:`DecisionSlots.queue_wait`) tells the worker when to refuse new connections
(:mod:`edgepolicy.webhook.gunicorn_server`). (In a gunicorn worker ``threading`` is gevent's: the
semaphore and the lock are cooperative.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Weight of the newest holding time in the average.
_SMOOTHING = 0.1


class DecisionSlots:
    """At most ``count`` holders at once; a request waits only while it can get a slot in time."""

    def __init__(self, count: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self._semaphore = threading.BoundedSemaphore(count)
        self._lock = threading.Lock()
        self._clock = clock
        self._waiting: dict[object, float] = {}  # since when each waits, oldest first
        self._holding_seconds = 0.0

    def acquire(self, wait: float) -> float | None:
        """Take a slot within ``wait`` seconds; return when it was taken (for :meth:`release`),
        or None at once when it cannot be had in time, or after ``wait`` seconds without one."""
        waiter = object()
        with self._lock:
            expected = len(self._waiting) * self._holding_seconds / self._count
            if wait <= 0 or expected > wait:
                return None
            self._waiting[waiter] = self._clock()
        try:
            taken = self._semaphore.acquire(timeout=wait)
        finally:
            with self._lock:
                del self._waiting[waiter]
        return self._clock() if taken else None

    def queue_wait(self) -> float:
        """Seconds the oldest request still waiting for a slot has waited (0 when none waits)."""
        with self._lock:
            oldest = next(iter(self._waiting.values()), None)
        return 0.0 if oldest is None else self._clock() - oldest

    def release(self, taken_at: float) -> None:
        """Give back the slot taken at ``taken_at`` and count how long it was held."""
        held = self._clock() - taken_at
        with self._lock:
            if self._holding_seconds == 0.0:  # the first one: nothing to average with yet
                self._holding_seconds = held
            else:
                self._holding_seconds += _SMOOTHING * (held - self._holding_seconds)
        self._semaphore.release()
