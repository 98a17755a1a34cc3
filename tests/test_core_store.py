"""The core's own machinery, on small adapters made for the purpose: push-fed subscriptions,
the background task from open to close, the watcher's life, the append decision."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence

import pytest
from eventstore_memory import MemoryEventStore, MemoryOptions

import eventstore_core as es
from eventstore_core.adapter import (
    CAUGHT_UP,
    BackendUnavailableError,
    CaughtUp,
    EventFilter,
    ExpectedVersion,
    ParsedUrl,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    StoreOptions,
    Written,
)
from eventstore_core.config import parse_url
from eventstore_core.tasks import Supervised


def _open_store(cls: type[MemoryEventStore], name: str, **options: object) -> MemoryEventStore:
    url: ParsedUrl = parse_url(f"memory://{name}")
    return cls(url, MemoryOptions.model_validate(options))


class PushStore(MemoryEventStore):
    """Memory storage whose subscriptions are fed by a push stream, like a server's."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self.pushes: list[Position | None] = []  # the ``after`` of every _push call
        self.break_after: int | None = None  # raise BackendUnavailableError after N events
        self.pulled = 0  # events the feed has handed over so far

    async def _push(  # type: ignore[override]
        self, after: Position | None, filter: EventFilter | None
    ) -> AsyncIterator[RecordedEvent | CaughtUp]:
        self.pushes.append(after)
        sent = 0
        cursor = after
        # Resend the last event before ``after`` too: the core must drop what it has seen.
        if cursor is not None and cursor.parts[0] > 1:
            cursor = Position((cursor.parts[0] - 1,))
        caught_up = False
        while True:
            generation = self._notifier.generation
            page = await self._read_all_page(cursor, filter, 100)
            for event in page:
                if self.break_after is not None and sent >= self.break_after:
                    self.break_after = None
                    raise BackendUnavailableError("the server went away")
                sent += 1
                self.pulled += 1
                cursor = event.position
                yield event
            if not page:
                if not caught_up:
                    caught_up = True
                    yield CAUGHT_UP
                await self._notifier.wait(generation, 60)


async def _append(store: es.EventStore, stream: str, count: int) -> list[es.NewEvent]:
    events = [es.NewEvent("T", {"n": i}) for i in range(count)]
    await store.append(stream, events)
    return events


async def test_a_push_fed_subscription_catches_up_goes_live_on_caught_up_and_delivers_live() -> (
    None
):
    async with _open_store(PushStore, "push-live", poll_interval=3600) as store:
        old = await _append(store, "A-1", 3)
        async with store.subscribe() as subscription:
            got = [await anext(subscription) for _ in range(3)]
            assert [e.id for e in got] == [e.id for e in old]
            waiting = asyncio.ensure_future(anext(subscription))
            await asyncio.sleep(0.01)
            assert subscription.is_live  # CAUGHT_UP arrived with nothing left to deliver
            [new] = await _append(store, "A-1", 1)
            assert (await asyncio.wait_for(waiting, 2)).id == new.id


async def test_a_broken_push_stream_resumes_after_the_last_event_without_repeats() -> None:
    async with _open_store(PushStore, "push-break", reconnect_timeout=5) as store:
        written = await _append(store, "A-1", 10)
        assert isinstance(store, PushStore)
        store.break_after = 4
        async with store.subscribe() as subscription:
            got = [await anext(subscription) for _ in range(10)]
        assert [e.id for e in got] == [e.id for e in written]
        assert len(store.pushes) == 2
        assert store.pushes[1] == got[3].position  # resumed after the last event read


async def test_a_push_feed_is_read_only_as_fast_as_the_consumer_reads() -> None:
    async with _open_store(PushStore, "push-slow") as store:
        assert isinstance(store, PushStore)
        await _append(store, "A-1", 50)
        async with store.subscribe() as subscription:
            await anext(subscription)
            await asyncio.sleep(0.05)
            assert store.pulled <= 2  # one delivered, at most one read ahead


async def test_closing_from_another_task_ends_a_push_subscription_waiting_for_news() -> None:
    async with _open_store(PushStore, "push-close") as store:
        subscription = await store.subscribe().start()
        consumer = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0.02)
        await subscription.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(consumer, 2)


async def test_a_consumer_that_gives_up_waiting_loses_nothing() -> None:
    for cls in (PushStore, MemoryEventStore):
        store = _open_store(cls, f"give-up-{cls.__name__}")
        async with store, store.subscribe() as subscription:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(subscription), 0.05)
            [event] = await _append(store, "A-1", 1)
            assert (await asyncio.wait_for(anext(subscription), 2)).id == event.id


class TailingStore(MemoryEventStore):
    """Memory storage with a background task that fails twice, then runs until cancelled."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self.starts = 0
        self.cancelled = False
        self.running = asyncio.Event()

    async def _background(self) -> None:
        self.starts += 1
        if self.starts <= 2:
            raise OSError("lost the log")
        self.running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_the_background_task_runs_from_open_to_close_and_is_restarted_on_failure() -> None:
    store = _open_store(TailingStore, "tailing")
    assert isinstance(store, TailingStore)
    assert store.starts == 0  # connect does no I/O and starts nothing
    await store.open()
    await asyncio.wait_for(store.running.wait(), 5)
    assert store.starts == 3
    await store.close()
    assert store.cancelled
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any("background task" in name for name in names)


async def test_a_stop_that_surfaces_as_an_error_still_stops_the_background_task() -> None:
    # A library that turns the cancellation into an error of its own: the stop still holds
    # (before, the task was restarted as after a failure, and stop() waited for good).
    runs = 0
    disguise = True

    async def run() -> None:
        nonlocal runs
        runs += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if disguise:
                raise RuntimeError("cancelled, said otherwise") from None
            raise

    supervised = Supervised(run, "the test's task")
    supervised.start()
    await asyncio.sleep(0)
    # Not `await stop()` under a timeout: a task that never ends would hold the test too.
    stopping = asyncio.ensure_future(supervised.stop())
    await asyncio.wait([stopping], timeout=5)
    disguise = False  # (so that a restarted task can be stopped after a failure)
    if not stopping.done():
        for task in supervised._stopping:  # cancelled already: cancel the restarted run
            task.cancel()
        await stopping
        pytest.fail(f"stop() did not end: the task was restarted ({runs} runs)")
    assert runs == 1
    assert not supervised.running


async def test_a_stop_during_a_task_group_failure_still_stops_the_background_task() -> None:
    # The Kafka close that hung: a child of the run's TaskGroup fails, the group cancels its
    # parent, and the stop lands before the parent wakes. Python 3.11 merges the two
    # cancellations into one, which the group swallows, and raises only the child's error.
    runs = 0
    supervised: Supervised

    async def fail() -> None:
        # Runs right after the group's own done callback (which cancels the parent), before
        # the parent's wake-up: the moment of the hang, made deterministic.
        me = asyncio.current_task()
        assert me is not None
        me.add_done_callback(lambda _: supervised.cancel())
        raise RuntimeError("a child failed")

    async def run() -> None:
        nonlocal runs
        runs += 1
        async with asyncio.TaskGroup() as group:
            group.create_task(asyncio.Event().wait())
            if runs == 1:
                group.create_task(fail())

    supervised = Supervised(run, "the test's task")
    supervised.start()
    async with asyncio.timeout(5):
        while runs == 0 or supervised.running:  # noqa: ASYNC110 (nothing signals either)
            await asyncio.sleep(0.01)
        await supervised.stop()
    assert runs == 1


class WatchingStore(MemoryEventStore):
    """Memory storage whose watcher counts how often it runs."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self.watching = 0

    async def _watch(self) -> None:
        self.watching += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.watching -= 1


async def test_the_watcher_runs_only_while_subscriptions_exist_even_unclosed_ones() -> None:
    async with _open_store(WatchingStore, "watching") as store:
        assert isinstance(store, WatchingStore)
        one = await store.subscribe().start()
        two = await store.subscribe().start()
        await asyncio.sleep(0)
        assert store.watching == 1  # one watcher per store
        await one.close()
        await asyncio.sleep(0)
        assert store.watching == 1
        del two  # dropped without close()
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)
        assert store.watching == 0
        again = await store.subscribe().start()
        await asyncio.sleep(0)
        assert store.watching == 1  # restarted for a new subscription
        await again.close()


class RacingStore(MemoryEventStore):
    """Refuses the first attempts as if another writer had just moved the stream."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self.refusals = 0
        self.calls = 0

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        self.calls += 1
        if self.calls <= self.refusals:
            return Refused(actual=self.calls)  # moved, but still within ANY / STREAM_EXISTS
        return await super()._append(stream_id, events, expected_version)


async def test_the_core_retries_an_append_refused_by_a_race_it_would_now_accept() -> None:
    async with _open_store(RacingStore, "racing") as store:
        assert isinstance(store, RacingStore)
        store.refusals = 2
        result = await store.append("A-1", [es.NewEvent("T", {})], expected_version=es.ANY)
        assert (result.version, store.calls) == (1, 3)
        # A hot stream: many lost races in a row are ridden out (backoff, a time budget).
        store.calls, store.refusals = 0, 30
        result = await store.append("A-1", [es.NewEvent("T", {})], expected_version=es.ANY)
        assert (result.version, store.calls) == (2, 31)


async def test_a_refusal_outside_the_expected_range_is_a_concurrency_error() -> None:
    async with _open_store(RacingStore, "racing-conflict") as store:
        assert isinstance(store, RacingStore)
        store.refusals = 1
        with pytest.raises(es.ConcurrencyError) as caught:
            await store.append("A-1", [es.NewEvent("T", {})], expected_version=es.NO_STREAM)
        assert (caught.value.expected, caught.value.actual, store.calls) == (es.NO_STREAM, 1, 1)


class BareStore(MemoryEventStore):
    """A store that declares neither snapshots nor backwards reads."""

    capabilities = es.Capabilities(
        concurrency="multi-writer",
        idempotency="permanent",
        unique_event_ids="store",
        global_order="total",
        live_subscriptions="push",
        max_event_bytes=1024,
        max_append_events=10,
        max_append_bytes=2000,
        snapshots=False,
        backwards_reads=False,
        shared_across_processes=False,
        durable=False,
    )


async def test_operations_a_store_does_not_declare_raise_unsupported_operation() -> None:
    async with _open_store(BareStore, "bare") as store:
        with pytest.raises(es.UnsupportedOperationError, match="snapshots"):
            await store.save_snapshot(es.Snapshot("A-1", 1, "S", {}))
        with pytest.raises(es.UnsupportedOperationError, match="snapshots"):
            await store.load_snapshot("A-1")
        with pytest.raises(es.UnsupportedOperationError, match="backwards"):
            store.read_stream("A-1", backwards=True)


async def test_a_partitioned_memory_store_resumes_exactly_from_saved_tokens() -> None:
    url = "memory://resume-partitioned?partitions=4"
    async with es.connect(url) as store:
        streams = [f"S{i}-1" for i in range(16)]
        written = []
        for round_ in range(5):
            for stream in streams:
                event = es.NewEvent("T", {"r": round_})
                await store.append(stream, [event])
                written.append(event.id)
        seen: list[es.RecordedEvent] = []
        async for event in store.read_all(limit=37):
            seen.append(event)
        token = str(seen[-1].position)
        assert "@" in token
        rest = [e async for e in store.read_all(after=token)]
        ids = [e.id for e in seen + rest]
        assert sorted(ids) == sorted(written)
        assert len(ids) == len(set(ids))
        # Not commit order: partitions are read one after another.
        assert ids != written


async def test_a_batch_over_max_append_bytes_is_refused_before_anything_is_written() -> None:
    async with _open_store(BareStore, "bare-bytes") as store:
        # Three events of 1,000 bytes each: each within max_event_bytes, the sum is not.
        events = [es.NewEvent("T", {"p": "x" * (1000 - 14)}) for _ in range(3)]
        with pytest.raises(es.InvalidEventError, match="max_append_bytes"):
            await store.append("A-1", events)
        assert await store.stream_version("A-1") == 0
        assert (await store.append("A-1", events[:2])).version == 2
