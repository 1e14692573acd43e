"""Decision slots: how many requests of one worker are decided at once, and who may wait.

Under overload requests wait here, where their deadline is known, instead of piling up inside
OPA. Waiting is first come, first served, and turned away at once (the failure mode answers in
microseconds instead of after waiting for nothing, and the connection is free again) when:

- the expected wait (the requests already waiting, times the average time a slot is held, over
  the slots) exceeds what the request's deadline allows; or
- the queue stands: no request has got its slot within a thirtieth of the deadline for a sixth
  of it (0.1 s for 0.5 s of a 3 s deadline; :data:`QUEUE_TARGET_SHARE`,
  :data:`QUEUE_INTERVAL_SHARE`: CoDel's test, RFC 8289, scaled to a deadline of seconds). A burst is absorbed by waiting; a
  load above capacity that lasts would only make every answer late, and every waiting request
  keeps a connection (the client opens more, each with its handshake), so newcomers are turned
  away until the queue has drained.

(In a gunicorn worker ``threading`` is gevent's: the semaphore and the lock are cooperative.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Weight of the newest holding time in the average.
_SMOOTHING = 0.1
# A wait for a slot at most this share of the deadline is no queue (0.1 s of 3 s).
QUEUE_TARGET_SHARE = 1 / 30
# Waits longer than the target for this share of the deadline: the queue stands (0.5 s of 3 s).
QUEUE_INTERVAL_SHARE = 1 / 6


class DecisionSlots:
    """At most ``count`` holders at once; a request waits only while it can get a slot in time
    and the queue does not stand."""

    def __init__(
        self, count: int, deadline: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._count = count
        self._queue_target = QUEUE_TARGET_SHARE * deadline
        self._queue_interval = QUEUE_INTERVAL_SHARE * deadline
        self._semaphore = threading.BoundedSemaphore(count)
        self._lock = threading.Lock()
        self._clock = clock
        self._waiting = 0
        self._holding_seconds = 0.0
        self._short_wait_at = clock()  # when a slot was last had within the target

    def acquire(self, wait: float) -> float | None:
        """Take a slot within ``wait`` seconds; return when it was taken (for :meth:`release`),
        or None at once when it cannot be had in time or the queue stands, or after ``wait``
        seconds without one."""
        with self._lock:
            now = self._clock()
            if wait <= 0:
                return None
            if self._waiting == 0 and self._semaphore.acquire(blocking=False):
                self._short_wait_at = now
                return now
            if now - self._short_wait_at > self._queue_interval:
                return None  # a standing queue
            expected = self._waiting * self._holding_seconds / self._count
            if expected > wait:
                return None
            self._waiting += 1
        try:
            taken = self._semaphore.acquire(timeout=wait)
        finally:
            with self._lock:
                self._waiting -= 1
        if not taken:
            return None
        taken_at = self._clock()
        if taken_at - now <= self._queue_target:
            self._short_wait_at = taken_at
        return taken_at

    def release(self, taken_at: float) -> None:
        """Give back the slot taken at ``taken_at`` and count how long it was held."""
        held = self._clock() - taken_at
        with self._lock:
            if self._holding_seconds == 0.0:  # the first one: nothing to average with yet
                self._holding_seconds = held
            else:
                self._holding_seconds += _SMOOTHING * (held - self._holding_seconds)
        self._semaphore.release()
