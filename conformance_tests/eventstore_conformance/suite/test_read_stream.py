"""``read_stream``: forward, backwards, ``from_version``, ``limit``, missing streams, paging."""

from __future__ import annotations

import pytest

import eventstore_core as es
from eventstore_conformance.harness import StoreContext, collect, new_events, requires, store_test


async def _stream_of(store: es.EventStore, ctx: StoreContext, count: int) -> str:
    stream = ctx.stream()
    await store.append(stream, new_events(count))
    return stream


def _versions(events: list[es.RecordedEvent]) -> list[int]:
    return [event.version for event in events]


@store_test
async def test_read_stream_reads_forward_from_version_one(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """By default every event of the stream, ascending."""
    stream = await _stream_of(store, ctx, 5)
    events = await collect(store.read_stream(stream))
    assert _versions(events) == [1, 2, 3, 4, 5]
    assert all(event.stream_id == stream for event in events)


@store_test
async def test_read_stream_from_version_is_inclusive(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``from_version=3`` starts at version 3."""
    stream = await _stream_of(store, ctx, 5)
    assert _versions(await collect(store.read_stream(stream, from_version=3))) == [3, 4, 5]


@requires(backwards_reads=True)
@store_test
async def test_read_stream_backwards_starts_at_the_last_event(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``backwards=True`` without ``from_version`` reads from the last event down."""
    stream = await _stream_of(store, ctx, 4)
    assert _versions(await collect(store.read_stream(stream, backwards=True))) == [4, 3, 2, 1]


@requires(backwards_reads=True)
@store_test
async def test_read_stream_backwards_from_version_is_inclusive(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``backwards=True, from_version=3`` yields 3, 2, 1."""
    stream = await _stream_of(store, ctx, 5)
    events = await collect(store.read_stream(stream, from_version=3, backwards=True))
    assert _versions(events) == [3, 2, 1]


@requires(backwards_reads=True)
@store_test
async def test_read_stream_backwards_from_beyond_the_end_starts_at_the_last_event(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A backwards ``from_version`` past the end reads from the last event."""
    stream = await _stream_of(store, ctx, 3)
    events = await collect(store.read_stream(stream, from_version=10, backwards=True))
    assert _versions(events) == [3, 2, 1]


@pytest.mark.parametrize(("backwards", "expected"), [(False, [1, 2]), (True, [5, 4])])
@store_test
async def test_read_stream_limit_caps_the_number_of_events(
    store: es.EventStore, ctx: StoreContext, backwards: bool, expected: list[int]
) -> None:
    """``limit=2`` yields the first two events in reading order."""
    stream = await _stream_of(store, ctx, 5)
    events = await collect(store.read_stream(stream, backwards=backwards, limit=2))
    assert _versions(events) == expected


@store_test
async def test_read_stream_limit_zero_yields_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``limit=0`` is valid and yields no event."""
    stream = await _stream_of(store, ctx, 2)
    assert await collect(store.read_stream(stream, limit=0)) == []


@pytest.mark.parametrize("backwards", [False, True])
@store_test
async def test_reading_a_missing_stream_yields_nothing(
    store: es.EventStore, ctx: StoreContext, backwards: bool
) -> None:
    """A stream that was never written reads as empty, not as an error."""
    assert await collect(store.read_stream(ctx.stream(), backwards=backwards)) == []


@store_test
async def test_reading_past_the_end_of_a_stream_yields_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``from_version`` beyond the last version yields nothing."""
    stream = await _stream_of(store, ctx, 2)
    assert await collect(store.read_stream(stream, from_version=3)) == []


@store_test
async def test_read_stream_returns_only_its_own_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Streams whose ids share a prefix (``X-1``, ``X-10``, ``X-1-a``) are not mixed up."""
    base = ctx.stream()
    for suffix in ("", "0", "-a", "_"):
        await store.append(base + suffix, new_events(2, suffix=suffix))
    events = await collect(store.read_stream(base))
    assert [event.data["suffix"] for event in events] == ["", ""]
    assert await store.stream_version(base + "0") == 2


@pytest.mark.parametrize("backwards", [False, True])
@store_test
async def test_read_stream_pages_through_a_stream_longer_than_a_page(
    ctx: StoreContext, backwards: bool
) -> None:
    """With ``page_size=3``, a 10-event stream still reads whole, in order, once each."""
    store = await ctx.connect(page_size=3)
    stream = ctx.stream()
    for _ in range(2):
        await store.append(stream, new_events(5))
    versions = _versions(await collect(store.read_stream(stream, backwards=backwards)))
    expected = list(range(1, 11))
    assert versions == (expected[::-1] if backwards else expected)
    limited = await collect(store.read_stream(stream, from_version=2, limit=7))
    assert _versions(limited) == [2, 3, 4, 5, 6, 7, 8]


@store_test
async def test_read_stream_versions_match_append_results(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Each event reads back with the version and position its append reported."""
    stream = ctx.stream()
    results = [await store.append(stream, new_events(1)) for _ in range(4)]
    events = await collect(store.read_stream(stream))
    assert [(e.version, e.position) for e in events] == [(r.version, r.position) for r in results]


@store_test
async def test_a_store_without_backwards_reads_refuses_them_clearly(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Where ``capabilities.backwards_reads`` is False, ``read_stream(backwards=True)`` raises
    ``UnsupportedOperationError`` at the call."""
    if store.capabilities.backwards_reads:
        pytest.skip("the store declares backwards reads")
    with pytest.raises(es.UnsupportedOperationError):
        store.read_stream(ctx.stream(), backwards=True)
