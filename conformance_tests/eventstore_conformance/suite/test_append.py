"""Writing: 1-based versions, ``expected_version``, atomic batches, declared limits."""

from __future__ import annotations

import pytest

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    collect,
    ids_of,
    new_events,
    store_test,
)


@store_test
async def test_the_first_event_of_a_stream_has_version_one(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Versions are 1-based: the first append to a new stream returns version 1."""
    stream = ctx.stream()
    result = await store.append(stream, [es.NewEvent("T", {})])
    assert result.version == 1
    [event] = await collect(store.read_stream(stream))
    assert event.version == 1


@store_test
async def test_a_stream_without_events_has_version_zero(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``stream_version`` of a stream that was never written is 0."""
    assert await store.stream_version(ctx.stream()) == 0


@store_test
async def test_stream_version_is_the_version_of_the_last_event(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """After appends of 2 and 3 events the stream is at version 5."""
    stream = ctx.stream()
    await store.append(stream, new_events(2))
    await store.append(stream, new_events(3))
    assert await store.stream_version(stream) == 5


@store_test
async def test_append_result_has_the_version_and_position_of_the_last_event(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``AppendResult`` reports the last appended event's version and position."""
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    result = await store.append(stream, new_events(3))
    assert isinstance(result, es.AppendResult)
    assert result.version == 4
    events = await collect(store.read_stream(stream))
    assert result.position == events[-1].position
    assert isinstance(result.position, es.Position)


@store_test
async def test_a_batch_is_written_contiguously_in_order(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A batch's events get consecutive versions, in the order given."""
    stream = ctx.stream()
    batch = new_events(5)
    await store.append(stream, batch)
    events = await collect(store.read_stream(stream))
    assert ids_of(events) == ids_of(batch)
    assert [e.version for e in events] == [1, 2, 3, 4, 5]
    assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4]


@store_test
async def test_streams_have_independent_versions(store: es.EventStore, ctx: StoreContext) -> None:
    """Appending to one stream does not move another stream's version."""
    a, b = ctx.stream(), ctx.stream()
    await store.append(a, new_events(3))
    result = await store.append(b, new_events(1))
    assert result.version == 1
    assert await store.stream_version(a) == 3


@store_test
async def test_expected_version_any_appends_whatever_the_version(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``es.ANY`` (the default) appends to a new and to an existing stream."""
    stream = ctx.stream()
    assert (await store.append(stream, new_events(1), expected_version=es.ANY)).version == 1
    assert (await store.append(stream, new_events(1), expected_version=es.ANY)).version == 2
    assert (await store.append(stream, new_events(1))).version == 3


@store_test
async def test_no_stream_appends_to_a_new_stream(store: es.EventStore, ctx: StoreContext) -> None:
    """``es.NO_STREAM`` succeeds on a stream without events."""
    result = await store.append(ctx.stream(), new_events(2), expected_version=es.NO_STREAM)
    assert result.version == 2


@store_test
async def test_no_stream_conflicts_with_an_existing_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``es.NO_STREAM`` on a stream with events raises ``ConcurrencyError`` (actual 1)."""
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    with pytest.raises(es.ConcurrencyError) as info:
        await store.append(stream, new_events(1), expected_version=es.NO_STREAM)
    assert info.value.actual == 1
    assert info.value.expected is es.NO_STREAM
    assert await store.stream_version(stream) == 1


@store_test
async def test_stream_exists_conflicts_with_a_new_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``es.STREAM_EXISTS`` on a stream without events raises ``ConcurrencyError`` (actual 0)."""
    stream = ctx.stream()
    with pytest.raises(es.ConcurrencyError) as info:
        await store.append(stream, new_events(1), expected_version=es.STREAM_EXISTS)
    assert info.value.actual == 0
    assert info.value.expected is es.STREAM_EXISTS
    assert await store.stream_version(stream) == 0


@store_test
async def test_stream_exists_appends_to_an_existing_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``es.STREAM_EXISTS`` succeeds once the stream has an event."""
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    result = await store.append(stream, new_events(1), expected_version=es.STREAM_EXISTS)
    assert result.version == 2


@store_test
async def test_an_exact_expected_version_appends_when_it_matches(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """An ``int`` expected version equal to the stream's version succeeds."""
    stream = ctx.stream()
    await store.append(stream, new_events(2), expected_version=0)
    result = await store.append(stream, new_events(1), expected_version=2)
    assert result.version == 3


@pytest.mark.parametrize("expected", [0, 1, 3, 100])
@store_test
async def test_an_exact_expected_version_conflicts_when_it_differs(
    store: es.EventStore, ctx: StoreContext, expected: int
) -> None:
    """An ``int`` expected version lower or higher than the stream's raises, writes nothing."""
    stream = ctx.stream()
    await store.append(stream, new_events(2))
    with pytest.raises(es.ConcurrencyError) as info:
        await store.append(stream, new_events(1), expected_version=expected)
    assert (info.value.expected, info.value.actual) == (expected, 2)
    assert await store.stream_version(stream) == 2


@store_test
async def test_expected_version_zero_requires_a_stream_without_events(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``expected_version=0`` succeeds on a new stream, then conflicts."""
    stream = ctx.stream()
    assert (await store.append(stream, new_events(1), expected_version=0)).version == 1
    with pytest.raises(es.ConcurrencyError):
        await store.append(stream, new_events(1), expected_version=0)


@store_test
async def test_a_conflicting_batch_writes_nothing(store: es.EventStore, ctx: StoreContext) -> None:
    """A batch that fails its version check leaves no trace, in the stream or the global log."""
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    marker = await ctx.marker()
    batch = new_events(3)
    with pytest.raises(es.ConcurrencyError):
        await store.append(stream, batch, expected_version=7)
    assert await store.stream_version(stream) == 1
    assert len(await collect(store.read_stream(stream))) == 1
    later = {event.id for event in await collect(store.read_all(after=marker))}
    assert not later & set(ids_of(batch))


@store_test
async def test_a_conflicting_batch_does_not_consume_its_event_ids(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """After a conflict, the same batch appends normally with the right expected version."""
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    batch = new_events(2)
    with pytest.raises(es.ConcurrencyError):
        await store.append(stream, batch, expected_version=es.NO_STREAM)
    result = await store.append(stream, batch, expected_version=1)
    assert result.version == 3
    assert ids_of(await collect(store.read_stream(stream, from_version=2))) == ids_of(batch)


@store_test
async def test_an_event_of_max_event_bytes_is_accepted(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The declared ``max_event_bytes`` is real: an event of exactly that size is stored."""
    limit = store.capabilities.max_event_bytes
    if limit > 8 * 1024 * 1024:
        limit = 8 * 1024 * 1024  # a large declared limit: check a large event, not the limit
    event_type = "Big"
    # Encoded size = data + metadata + type: {"p":"..."} is 8 bytes plus the payload; {} is 2.
    payload = "x" * (limit - 8 - 2 - len(event_type))
    stream = ctx.stream()
    event = es.NewEvent(event_type, {"p": payload})
    await store.append(stream, [event])
    [stored] = await collect(store.read_stream(stream))
    assert stored.data == {"p": payload}


@store_test
async def test_a_batch_of_max_append_events_is_accepted(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The declared ``max_append_events`` is real: a batch of that many events is stored."""
    count = min(store.capabilities.max_append_events, 5_000)
    stream = ctx.stream()
    batch = new_events(count)
    result = await store.append(stream, batch)
    assert result.version == count
    events = await collect(store.read_stream(stream))
    assert ids_of(events) == ids_of(batch)
