"""Decision slots: at most N at once, first come first served, no waiting for nothing."""

from __future__ import annotations

import threading
import time

from edgepolicy.webhook.decision_slots import DecisionSlots


def _hold(slots: DecisionSlots, seconds: float) -> None:
    taken = slots.acquire(5.0)
    assert taken is not None
    time.sleep(seconds)
    slots.release(taken)


def test_a_free_slot_is_taken_at_once_and_a_busy_one_waited_for_within_the_wait() -> None:
    slots = DecisionSlots(1)
    holder = threading.Thread(target=_hold, args=(slots, 0.2))
    holder.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert slots.acquire(0.05) is None  # busy for 0.15 s more: not within 0.05 s
    assert 0.04 <= time.monotonic() - started < 0.15
    taken = slots.acquire(1.0)  # freed within the wait
    assert taken is not None
    slots.release(taken)
    holder.join()


def test_a_request_that_cannot_get_a_slot_in_time_is_turned_away_at_once() -> None:
    slots = DecisionSlots(1)
    _hold(slots, 0.3)  # slots are now known to be held about 0.3 s
    holders = [threading.Thread(target=_hold, args=(slots, 0.3)) for _ in range(3)]
    for holder in holders:  # one holds the slot, two wait: about 2 x 0.3 s expected
        holder.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert slots.acquire(0.3) is None
    assert time.monotonic() - started < 0.1  # at once, not after waiting its whole 0.3 s
    for holder in holders:
        holder.join()
    taken = slots.acquire(0.01)  # nobody waits any more: a free slot is taken
    assert taken is not None
    slots.release(taken)


def test_the_queue_wait_is_how_long_the_oldest_waiting_request_has_waited() -> None:
    slots = DecisionSlots(1)
    assert slots.queue_wait() == 0.0  # nobody waits
    holder = threading.Thread(target=_hold, args=(slots, 0.4))
    holder.start()
    time.sleep(0.05)
    first = threading.Thread(target=_hold, args=(slots, 0.0))
    first.start()  # waits for the holder's slot
    time.sleep(0.2)
    second = threading.Thread(target=_hold, args=(slots, 0.0))
    second.start()  # waits too, 0.2 s after the first
    time.sleep(0.05)
    assert 0.2 <= slots.queue_wait() < 0.4  # the first's wait, not the second's 0.05 s
    for thread in (holder, first, second):
        thread.join()
    assert slots.queue_wait() == 0.0
