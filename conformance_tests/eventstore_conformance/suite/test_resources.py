"""Resources: backpressure for slow subscribers; nothing left behind after closing."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    budget,
    open_fd_count,
    store_test,
    thread_count,
)

PAGE = 10
BIG = 20_000  # bytes of payload per event
STALLED_EVENTS = 400  # 8 MB of payload appended while the subscriber does not read


async def _settle() -> None:
    """Give finishing tasks and threads a moment (callbacks, thread joins)."""
    for _ in range(5):
        await asyncio.sleep(0.02)


def _live_bytes() -> int:
    """Memory traced now, after a full collection: what is reachable, not garbage in
    reference cycles that the collector frees whenever its thresholds happen to trip (which
    would make the two phases differ by chance, not by buffering)."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _new_tasks(before: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task not in before and not task.done()]


async def _write_big(store: es.EventStore, stream: str, count: int) -> None:
    payload = "x" * BIG
    for start in range(0, count, 10):
        await store.append(
            stream, [es.NewEvent("Big", {"p": payload, "i": start + i}) for i in range(10)]
        )


@store_test
async def test_a_stalled_subscriber_does_not_buffer_without_bound(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A subscriber that stops reading while 8 MB are appended holds at most about a page.

    Memory growth (tracemalloc) while appending with a stalled live subscription is compared
    with the same appends without one; where the subscription exposes its buffer, that holds at
    most ``page_size`` events. When it reads again, it gets every event once, in order.
    """
    reader = await ctx.connect(page_size=PAGE)
    await _write_big(store, ctx.stream(), 20)  # warm up caches and connections
    tracemalloc.start()
    try:
        base = _live_bytes()
        await _write_big(store, ctx.stream(), STALLED_EVENTS)
        await asyncio.sleep(0.3)
        without = _live_bytes() - base
        marker = await ctx.marker()
        stream = ctx.stream()
        async with reader.subscribe(after=marker) as subscription:
            await store.append(stream, [es.NewEvent("First", {})])
            waiting = asyncio.create_task(anext(subscription))
            first = await asyncio.wait_for(waiting, budget(10))
            assert first.stream_id == stream
            base = _live_bytes()
            await _write_big(store, stream, STALLED_EVENTS)
            await asyncio.sleep(0.5)  # time for any background prefetch to fill up
            with_stalled = _live_bytes() - base
            buffer = getattr(subscription, "_buffer", None)
            if buffer is not None:
                assert len(buffer) <= PAGE, f"the subscription buffers {len(buffer)} events"
            bound = 3 * 1024 * 1024 + 4 * PAGE * BIG
            assert with_stalled - without < bound, (
                f"memory grew by {with_stalled / 1e6:.1f} MB with a stalled subscriber, "
                f"{without / 1e6:.1f} MB without one"
            )
            tracemalloc.stop()
            seen = []
            async with asyncio.timeout(budget(30)):
                async for event in subscription:
                    if event.stream_id == stream:
                        seen.append(event.data["i"])
                        if len(seen) == STALLED_EVENTS:
                            break
            assert seen == list(range(STALLED_EVENTS))
    finally:
        tracemalloc.stop()


@store_test
async def test_closing_the_store_leaves_no_task_behind(ctx: StoreContext) -> None:
    """After ``close()``, no task the store (or a subscription of it) started is still running."""
    before = set(asyncio.all_tasks())
    store = es.connect(ctx.url)
    async with store:
        marker = await ctx.marker(store)
        stream = ctx.stream()
        await store.append(stream, [es.NewEvent("T", {})])
        async with store.subscribe(after=marker) as subscription:
            consumer = asyncio.create_task(anext(subscription))
            await asyncio.wait_for(consumer, budget(10))
            waiting = asyncio.create_task(anext(subscription))  # live, waiting for news
            await asyncio.sleep(0.1)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        _ = [e async for e in store.read_all(after=marker)]
    await _settle()
    left = _new_tasks(before)
    assert not left, f"tasks still running after close: {left!r}"


@store_test
async def test_leaving_a_subscription_leaves_no_task_behind(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A live subscription's tasks end when its ``async with`` is left.

    A store may keep one watcher for all its subscriptions (a LISTEN connection, say), started
    by the first: a first subscription comes and goes before the count, so only what each
    subscription leaves behind is counted.
    """

    async def one_subscription() -> None:
        marker = await ctx.marker()
        async with store.subscribe(after=marker) as subscription:
            await store.append(ctx.stream(), [es.NewEvent("T", {})])
            await asyncio.wait_for(anext(subscription), budget(10))
            waiting = asyncio.create_task(anext(subscription))  # live, waiting for news
            await asyncio.sleep(0.05)
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)

    await one_subscription()
    await _settle()
    before = set(asyncio.all_tasks())
    for _ in range(3):
        await one_subscription()
    await _settle()
    left = _new_tasks(before)
    assert not left, f"tasks still running after the subscription ended: {left!r}"


@store_test
async def test_opening_and_closing_repeatedly_leaks_no_connection_or_thread(
    ctx: StoreContext,
) -> None:
    """Cycles of open, use, subscribe and close do not accumulate file descriptors (files,
    sockets) or threads."""

    async def cycle() -> None:
        async with es.connect(ctx.url) as store:
            result = await store.append(ctx.stream(), [es.NewEvent("T", {})])
            async with store.subscribe(after=result.position) as subscription:
                await store.append(ctx.stream(), [es.NewEvent("T", {})])
                await asyncio.wait_for(anext(subscription), budget(10))
            await store.stream_version(ctx.stream())

    await cycle()  # first use may create lasting shared things (pools, executors)
    await _settle()
    fds, threads = open_fd_count(), thread_count()
    for _ in range(6):
        await cycle()
    await _settle()
    await asyncio.sleep(0.3)
    if fds is not None:
        now = open_fd_count()
        assert now is not None
        assert now - fds <= 2, f"file descriptors: {fds} -> {now}"
    assert thread_count() - threads <= 2, f"threads: {threads} -> {thread_count()}"
