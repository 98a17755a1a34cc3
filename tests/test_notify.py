"""The wake-up signal behind live subscriptions: no wake-up is lost, none is spurious."""

from __future__ import annotations

import asyncio

from eventstore_core.notify import Notifier, Signal


async def test_a_waiter_wakes_on_the_next_notify() -> None:
    notifier = Notifier()
    since = notifier.generation
    waiter = asyncio.create_task(notifier.wait(since, timeout=5))
    await asyncio.sleep(0)
    assert not waiter.done()
    notifier.notify()
    assert await waiter is True


async def test_one_notify_wakes_every_waiter() -> None:
    notifier = Notifier()
    since = notifier.generation
    waiters = [asyncio.create_task(notifier.wait(since, timeout=5)) for _ in range(3)]
    await asyncio.sleep(0)
    notifier.notify()
    assert await asyncio.gather(*waiters) == [True, True, True]


async def test_a_notify_before_the_wait_is_not_lost() -> None:
    # Nobody waits when the commit lands (no event exists then): the generation alone must
    # carry it to the waiter that read the generation before its query.
    notifier = Notifier()
    since = notifier.generation
    notifier.notify()
    assert await notifier.wait(since, timeout=0.01) is True


async def test_a_wait_after_a_notify_waits_for_the_next_one() -> None:
    notifier = Notifier()
    first = asyncio.create_task(notifier.wait(notifier.generation, timeout=5))
    await asyncio.sleep(0)
    notifier.notify()
    await first
    # The event the first notify set is gone: a new wait is not woken by it.
    assert await notifier.wait(notifier.generation, timeout=0.01) is False
    second = asyncio.create_task(notifier.wait(notifier.generation, timeout=5))
    await asyncio.sleep(0)
    notifier.notify()
    assert await second is True


async def test_a_wait_with_no_notify_times_out() -> None:
    notifier = Notifier()
    assert await notifier.wait(notifier.generation, timeout=0.01) is False


async def test_a_signal_sets_the_event_taken_before_it_fires_and_hands_out_a_new_one() -> None:
    signal = Signal()
    taken = signal.event()
    assert signal.event() is taken  # every waiter before the fire shares it
    signal.fire()
    assert taken.is_set()
    fresh = signal.event()
    assert fresh is not taken
    assert not fresh.is_set()


def test_a_signal_fired_with_nobody_waiting_builds_no_event() -> None:
    signal = Signal()
    signal.fire()
    assert signal._event is None
