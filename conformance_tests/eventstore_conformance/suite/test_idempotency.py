"""Idempotent retries: the same batch again is a no-op; any other reuse of an id is an error."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    collect,
    ids_of,
    new_events,
    requires,
    store_test,
)


@requires(idempotency="window")
@store_test
async def test_retrying_the_same_batch_returns_the_original_result(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Appending a written batch again returns the original ``AppendResult``, writes nothing."""
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    batch = new_events(3)
    original = await store.append(stream, batch, expected_version=1)
    marker = await ctx.marker()
    again = await store.append(stream, batch, expected_version=1)
    assert again == original
    assert await store.stream_version(stream) == 4
    assert ids_of(await collect(store.read_stream(stream, from_version=2))) == ids_of(batch)
    later = {e.id for e in await collect(store.read_all(after=marker))}
    assert not later & set(ids_of(batch)), "the retry wrote events again"


@pytest.mark.parametrize(
    "expected",
    [es.ANY, es.NO_STREAM, es.STREAM_EXISTS, 0, 1, 2, 99],
    ids=["ANY", "NO_STREAM", "STREAM_EXISTS", "0", "1", "2", "99"],
)
@requires(idempotency="window")
@store_test
async def test_retrying_the_same_batch_succeeds_whatever_the_expected_version(
    store: es.EventStore, ctx: StoreContext, expected: es.ExpectedVersion
) -> None:
    """A retry is recognised before the version check, even after later appends."""
    stream = ctx.stream()
    batch = new_events(2)
    original = await store.append(stream, batch, expected_version=es.NO_STREAM)
    await store.append(stream, new_events(1))  # the stream moved on since
    again = await store.append(stream, batch, expected_version=expected)
    assert again == original
    assert await store.stream_version(stream) == 3


@requires(idempotency="window")
@store_test
async def test_retrying_a_batch_many_times_concurrently_writes_it_once(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Concurrent retries of one batch all return the same result; one copy is stored."""
    import asyncio

    stream = ctx.stream()
    batch = new_events(3)
    results = await asyncio.gather(
        *(store.append(stream, batch) for _ in range(8)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"retries failed: {errors!r}"
    assert len(set(results)) == 1
    assert ids_of(await collect(store.read_stream(stream))) == ids_of(batch)


@requires(unique_event_ids="store")
@store_test
async def test_reusing_an_event_id_in_another_stream_raises_duplicate_event_id(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The same batch appended to a different stream is not a retry: nothing is written."""
    batch = new_events(2)
    await store.append(ctx.stream(), batch)
    other = ctx.stream()
    with pytest.raises(es.DuplicateEventIdError):
        await store.append(other, batch)
    assert await store.stream_version(other) == 0


@requires(unique_event_ids="stream")
@store_test
async def test_reusing_an_event_id_in_a_new_batch_raises_duplicate_event_id(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A new event carrying a written event's id is refused, in the same stream too."""
    stream = ctx.stream()
    [written] = new_events(1)
    await store.append(stream, [written])
    reuse = es.NewEvent("T", {"other": True}, id=written.id)
    with pytest.raises(es.DuplicateEventIdError):
        await store.append(stream, [reuse])
    assert await store.stream_version(stream) == 1


@requires(unique_event_ids="stream")
@store_test
async def test_a_batch_partly_overlapping_a_written_one_raises_and_writes_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Old ids mixed with new ones: ``DuplicateEventIdError``, and the new ones are not written."""
    stream = ctx.stream()
    written = new_events(2)
    await store.append(stream, written)
    fresh = new_events(2)
    with pytest.raises(es.DuplicateEventIdError):
        await store.append(stream, [written[1], *fresh])
    with pytest.raises(es.DuplicateEventIdError):
        await store.append(stream, [*fresh, written[0]])
    assert await store.stream_version(stream) == 2
    # The fresh events were not written (nor reserved): they append normally now.
    assert (await store.append(stream, fresh, expected_version=2)).version == 4


@requires(unique_event_ids="stream")
@store_test
async def test_retrying_part_of_a_written_batch_raises_duplicate_event_id(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Only the very same batch is a retry: its first two events alone are an id reuse."""
    stream = ctx.stream()
    batch = new_events(3)
    await store.append(stream, batch)
    with pytest.raises(es.DuplicateEventIdError):
        await store.append(stream, batch[:2])


@requires(idempotency="window")
@store_test
async def test_a_retry_through_another_connection_returns_the_original_result(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Idempotency belongs to the store, not to a connection: a second connection's retry of a
    batch the first one wrote returns the original result and writes nothing."""
    other = await ctx.connect()
    stream = ctx.stream()
    batch = new_events(2)
    original = await store.append(stream, batch, expected_version=es.NO_STREAM)
    assert await other.append(stream, batch, expected_version=es.NO_STREAM) == original
    assert await other.stream_version(stream) == 2


@requires(unique_event_ids="stream")
@store_test
async def test_an_id_reused_through_another_connection_raises_duplicate_event_id(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Event ids are unique in the store, whichever connection wrote them."""
    other = await ctx.connect()
    stream = ctx.stream()
    [written] = new_events(1)
    await store.append(stream, [written])
    with pytest.raises(es.DuplicateEventIdError):
        await other.append(stream, [es.NewEvent("T", {"other": True}, id=written.id)])
    assert await store.stream_version(stream) == 1


@requires(idempotency="window")
@store_test
async def test_a_retry_with_any_through_another_connection_writes_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """With ``ANY`` (no version check to stop it), a second connection's retry of a batch is
    still recognised by its ids: the original result, no second copy at versions 3-4."""
    other = await ctx.connect()
    stream = ctx.stream()
    batch = new_events(2)
    original = await store.append(stream, batch)
    marker = await ctx.marker()
    assert await other.append(stream, batch) == original
    assert await store.stream_version(stream) == 2
    later = {e.id for e in await collect(store.read_all(after=marker))}
    assert not later & set(ids_of(batch)), "the retry wrote the events again"


@requires(idempotency="window")
@store_test
async def test_a_retry_through_a_new_connection_after_the_first_closed_writes_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The writer's connection is gone (a restarted process retrying): a fresh connection's
    retry returns the original result."""
    stream = ctx.stream()
    batch = new_events(3)
    first = await ctx.connect()
    original = await first.append(stream, batch)
    await first.close()
    fresh = await ctx.connect()
    assert await fresh.append(stream, batch) == original
    assert await store.stream_version(stream) == 3


@requires(idempotency="window", concurrency="multi-writer")
@store_test
async def test_concurrent_retries_through_several_connections_write_a_batch_once(
    ctx: StoreContext,
) -> None:
    """Three connections retrying one batch at once: one copy is stored, every retry gets the
    same result."""
    import asyncio

    stores = [await ctx.connect() for _ in range(3)]
    stream = ctx.stream()
    batch = new_events(2)
    results = await asyncio.gather(
        *(stores[i % 3].append(stream, batch) for i in range(6)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, f"retries failed: {errors!r}"
    assert len(set(results)) == 1
    assert ids_of(await collect(stores[0].read_stream(stream))) == ids_of(batch)


@requires(unique_event_ids="store")
@store_test
async def test_an_id_reused_in_another_stream_through_another_connection_raises(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Ids are unique in the store, across streams and connections: a second connection
    appending a written batch to another stream gets ``DuplicateEventIdError``."""
    other = await ctx.connect()
    batch = new_events(2)
    await store.append(ctx.stream(), batch)
    elsewhere = ctx.stream()
    with pytest.raises(es.DuplicateEventIdError):
        await other.append(elsewhere, batch)
    assert await store.stream_version(elsewhere) == 0


#: Rounds of the id race, and streams racing in each (enough for every pair of partitions
#: of a partitioned store to meet in some round, whatever its hash of stream ids).
ID_RACE_ROUNDS = 20
ID_RACE_STREAMS = 9


@requires(unique_event_ids="store")
@store_test
async def test_one_id_reused_at_once_in_many_streams_is_accepted_exactly_once(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Appends racing to write one event id into different streams (through several
    connections where the store has several writers): exactly one is accepted, every other
    raises ``DuplicateEventIdError``, and the id is stored once. A partitioned store must
    break the tie between partitions too."""
    stores = [store]
    if ctx.capabilities.concurrency == "multi-writer":
        stores += [await ctx.connect() for _ in range(2)]
    for round_ in range(ID_RACE_ROUNDS):
        event_id = uuid.uuid4()
        streams = [ctx.stream() for _ in range(ID_RACE_STREAMS)]
        results = await asyncio.gather(
            *(
                stores[i % len(stores)].append(
                    stream, [es.NewEvent("Raced", {"round": round_, "i": i}, id=event_id)]
                )
                for i, stream in enumerate(streams)
            ),
            return_exceptions=True,
        )
        unexpected = [
            r
            for r in results
            if isinstance(r, BaseException) and not isinstance(r, es.DuplicateEventIdError)
        ]
        assert not unexpected, f"round {round_}: {unexpected!r}"
        accepted = [
            s for s, r in zip(streams, results, strict=True) if isinstance(r, es.AppendResult)
        ]
        assert len(accepted) == 1, (
            f"round {round_}: {len(accepted)} of {len(streams)} appends reusing one id won"
        )
        versions = [await store.stream_version(stream) for stream in streams]
        assert sorted(versions) == [0] * (len(streams) - 1) + [1], f"round {round_}: {versions}"


@requires(idempotency="permanent")
@store_test
async def test_a_retry_at_the_current_version_after_later_appends_writes_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A retry whose expected version happens to equal the stream's version now (the stream
    moved on since the first attempt) is still recognised as a retry: no second copy."""
    stream = ctx.stream()
    batch = new_events(2)
    original = await store.append(stream, batch, expected_version=es.NO_STREAM)
    await store.append(stream, new_events(3), expected_version=2)
    again = await store.append(stream, batch, expected_version=5)
    assert again == original
    assert await store.stream_version(stream) == 5


@store_test
async def test_a_repeated_id_within_one_batch_raises_and_writes_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Two events of one batch with the same id: ``DuplicateEventIdError``, nothing written."""
    stream = ctx.stream()
    [event] = new_events(1)
    with pytest.raises(es.DuplicateEventIdError):
        await store.append(stream, [event, es.NewEvent("T", {}), event])
    assert await store.stream_version(stream) == 0
