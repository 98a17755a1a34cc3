"""Many concurrent writers in one process: no lost version, no skipped or repeated event."""

from __future__ import annotations

import asyncio

import pytest

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    budget,
    collect,
    ids_of,
    requires,
    store_test,
)
from eventstore_conformance.observers import check_streams, watch_while_writing
from eventstore_conformance.workers import Committed, WriterSpec, run_writer

WRITERS = 8
APPENDS = 8


async def _race_exact_versions(stores: list[es.EventStore], stream: str) -> tuple[list[int], int]:
    """Writers append one event each time with the exact version, re-reading on conflict."""
    versions: list[int] = []
    conflicts = 0

    async def writer(index: int) -> None:
        nonlocal conflicts
        store = stores[index % len(stores)]
        for n in range(APPENDS):
            event = es.NewEvent("Raced", {"writer": index, "n": n})
            while True:
                current = await store.stream_version(stream)
                try:
                    result = await store.append(stream, [event], expected_version=current)
                except es.ConcurrencyError as error:
                    assert error.expected == current  # noqa: PT017
                    assert error.actual != current, "a conflict at the expected version"  # noqa: PT017
                    conflicts += 1
                    await asyncio.sleep(0)
                    continue
                assert result.version == current + 1
                versions.append(result.version)
                break

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    return versions, conflicts


@store_test
async def test_concurrent_writers_with_exact_versions_never_lose_a_version(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Tasks racing on one stream: every success gets its own version, none overwritten."""
    stream = ctx.stream()
    versions, _ = await _race_exact_versions([store], stream)
    total = WRITERS * APPENDS
    assert sorted(versions) == list(range(1, total + 1)), "two appends got the same version"
    events = await collect(store.read_stream(stream))
    assert [e.version for e in events] == list(range(1, total + 1))
    assert len({e.id for e in events}) == total
    assert await store.stream_version(stream) == total


@requires(concurrency="multi-writer")
@store_test
async def test_writers_on_several_connections_never_lose_a_version(ctx: StoreContext) -> None:
    """The same race across three connections to the store (three writers)."""
    stores = [await ctx.connect() for _ in range(3)]
    stream = ctx.stream()
    versions, _ = await _race_exact_versions(stores, stream)
    total = WRITERS * APPENDS
    assert sorted(versions) == list(range(1, total + 1)), "two appends got the same version"
    events = await collect(stores[0].read_stream(stream))
    assert [e.version for e in events] == list(range(1, total + 1))
    assert len({e.id for e in events}) == total


@store_test
async def test_concurrent_no_stream_appends_create_the_stream_once(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Of many tasks appending with ``NO_STREAM`` to one new stream, exactly one succeeds."""
    stream = ctx.stream()
    batches = [[es.NewEvent("Created", {"by": i})] for i in range(10)]
    results = await asyncio.gather(
        *(store.append(stream, b, expected_version=es.NO_STREAM) for b in batches),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, es.AppendResult)]
    lost = [r for r in results if isinstance(r, es.ConcurrencyError)]
    assert len(won) == 1, f"{len(won)} appends created the stream"
    assert len(lost) == len(batches) - 1, f"unexpected outcomes: {results!r}"
    assert all(error.actual >= 1 for error in lost)
    assert await store.stream_version(stream) == 1


@store_test
async def test_concurrent_batches_with_any_stay_whole_and_contiguous(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Batches appended at once with ``ANY`` are all kept, each contiguous and in order."""
    stream = ctx.stream()
    batches = [[es.NewEvent("B", {"batch": b, "i": i}) for i in range(3)] for b in range(12)]
    results = await asyncio.gather(*(store.append(stream, b) for b in batches))
    assert sorted(r.version for r in results) == [3 * (k + 1) for k in range(12)]
    events = await collect(store.read_stream(stream))
    assert len(events) == 36
    for batch, result in zip(batches, results, strict=True):
        stored = events[result.version - 3 : result.version]
        assert ids_of(stored) == ids_of(batch), "a batch was interleaved with another"
        assert stored[-1].position == result.position


@store_test
async def test_readers_miss_nothing_while_tasks_commit_concurrently(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Subscribers and a pager see every event once, in order, while tasks commit."""
    marker = await ctx.marker()
    spec = WriterSpec(
        name="w0", category=ctx.category, hot_stream=ctx.stream(), tasks=6, appends=10
    )

    async def write() -> list[Committed]:
        committed, _ = await run_writer([store], spec)
        return committed

    committed = await watch_while_writing(
        readers=[store],
        after=marker,
        category=ctx.category,
        write=write,
        total_order=ctx.capabilities.global_order == "total",
    )
    await check_streams(store, committed)


@requires(concurrency="multi-writer")
@store_test
async def test_readers_miss_nothing_while_several_connections_commit(ctx: StoreContext) -> None:
    """The same with writers on three connections and readers on three others."""
    writers = [await ctx.connect() for _ in range(3)]
    readers = [await ctx.connect() for _ in range(3)]
    marker = await ctx.marker(writers[0])
    hot = ctx.stream()

    async def write() -> list[Committed]:
        reports = await asyncio.gather(
            *(
                run_writer(
                    [w],
                    WriterSpec(
                        name=f"c{i}", category=ctx.category, hot_stream=hot, tasks=3, appends=8
                    ),
                )
                for i, w in enumerate(writers)
            )
        )
        return [c for committed, _ in reports for c in committed]

    committed = await watch_while_writing(
        readers=readers,
        after=marker,
        category=ctx.category,
        write=write,
        total_order=ctx.capabilities.global_order == "total",
    )
    await check_streams(readers[0], committed)


@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@store_test
async def test_a_subscription_delivers_exactly_once_in_order_under_concurrent_writers(
    store: es.EventStore, ctx: StoreContext, filtered: bool
) -> None:
    """Catch-up events, then live ones written by racing tasks: each once, in stream order."""
    stream = ctx.stream()
    marker = await ctx.marker()
    await store.append(stream, [es.NewEvent("Before", {"i": i}) for i in range(5)])
    event_filter = es.EventFilter(categories=[ctx.category]) if filtered else None
    received: list[es.RecordedEvent] = []
    async with store.subscribe(after=marker, filter=event_filter) as subscription:
        writers = asyncio.gather(
            *(
                store.append(stream, [es.NewEvent("Live", {"w": w, "i": i})])
                for w in range(4)
                for i in range(5)
            )
        )
        try:
            async with asyncio.timeout(budget(15)):
                async for event in subscription:
                    if event.stream_id == stream:
                        received.append(event)
                    if len(received) == 25:
                        break
        except TimeoutError:
            raise AssertionError(f"only {len(received)} of 25 events arrived") from None
        finally:
            await asyncio.gather(writers, return_exceptions=True)
    assert [e.version for e in received] == list(range(1, 26))
    assert len({e.id for e in received}) == 25
