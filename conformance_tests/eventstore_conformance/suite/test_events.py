"""Recorded events: every field round-trips; positions order, hash and turn into tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    assert_strictly_increasing,
    collect,
    new_events,
    requires,
    store_test,
)

ROUND_TRIP_DATA = {
    "str": 'Grüße, 世界, emoji 🎉, quote " and backslash \\',
    "int": 42,
    "negative": -7,
    "big": 2**53 + 1,
    "float": 3.25,
    "bool": True,
    "false": False,
    "null": None,
    "list": [1, "two", None, {"three": 3}],
    "nested": {"a": {"b": {"c": []}}},
    "empty": {},
}


@store_test
async def test_every_field_of_an_event_round_trips(store: es.EventStore, ctx: StoreContext) -> None:
    """Type, data, metadata, id, correlation and causation ids read back as written."""
    stream = ctx.stream()
    event_id = uuid.uuid4()
    written = es.NewEvent(
        "OrderPlaced",
        ROUND_TRIP_DATA,
        metadata={"user": "u1", "tags": ["a", "b"], "n": 1.5},
        id=event_id,
        correlation_id="corr-" + uuid.uuid4().hex,
        causation_id="cause-" + uuid.uuid4().hex,
    )
    await store.append(stream, [written])
    [event] = await collect(store.read_stream(stream))
    assert isinstance(event, es.RecordedEvent)
    assert event.stream_id == stream
    assert event.version == 1
    assert event.id == event_id
    assert isinstance(event.id, uuid.UUID)
    assert event.type == "OrderPlaced"
    assert dict(event.data) == ROUND_TRIP_DATA
    assert dict(event.metadata) == {"user": "u1", "tags": ["a", "b"], "n": 1.5}
    assert event.correlation_id == written.correlation_id
    assert event.causation_id == written.causation_id


@store_test
async def test_read_all_returns_the_same_event_as_read_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Both reads return equal ``RecordedEvent`` values."""
    marker = await ctx.marker()
    stream = ctx.stream()
    await store.append(stream, [es.NewEvent("T", ROUND_TRIP_DATA, metadata={"m": 1})])
    [from_stream] = await collect(store.read_stream(stream))
    [from_all] = await ctx.ours(marker)
    assert from_all == from_stream


@store_test
async def test_absent_optional_fields_read_back_empty(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """No metadata reads back as ``{}``; no correlation or causation id as None."""
    stream = ctx.stream()
    await store.append(stream, [es.NewEvent("T", {})])
    [event] = await collect(store.read_stream(stream))
    assert dict(event.data) == {}
    assert dict(event.metadata) == {}
    assert event.correlation_id is None
    assert event.causation_id is None


@store_test
async def test_recorded_at_is_an_aware_utc_datetime(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``recorded_at`` is timezone-aware, in UTC, and close to now."""
    stream = ctx.stream()
    before = datetime.now(UTC)
    await store.append(stream, [es.NewEvent("T", {})])
    [event] = await collect(store.read_stream(stream))
    assert isinstance(event.recorded_at, datetime)
    assert event.recorded_at.tzinfo is not None, "recorded_at is naive"
    assert event.recorded_at.utcoffset() == timedelta(0)
    # Generous: a server's clock may differ a little from ours.
    assert abs(event.recorded_at - before) < timedelta(minutes=5)


@store_test
async def test_a_stream_id_of_255_characters_round_trips(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The limit is 255 characters, not bytes: 255 multi-byte characters are accepted."""
    prefix = ctx.stream()
    stream = prefix + "é漢🎉" * ((255 - len(prefix)) // 3)
    stream += "x" * (255 - len(stream))
    assert len(stream) == 255
    event_type = "Typé漢🎉" * 42 + "abc"
    assert len(event_type) == 255
    await store.append(stream, [es.NewEvent(event_type, {})])
    [event] = await collect(store.read_stream(stream))
    assert (event.stream_id, event.type) == (stream, event_type)


@store_test
async def test_positions_are_totally_ordered_and_hashable(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Positions compare with ``<``/``==``, hash, and sort into reading order."""
    marker = await ctx.marker()
    for _ in range(3):
        await store.append(ctx.stream(), new_events(2))
    events = await ctx.ours(marker)
    positions = [e.position for e in events]
    assert all(isinstance(p, es.Position) for p in positions)
    assert len(set(positions)) == len(positions) == 6
    assert sorted(positions) == positions
    assert_strictly_increasing(positions, "read_all")
    assert positions[0] > marker
    assert {positions[0]: "first"}[positions[0]] == "first"
    again = await ctx.ours(marker)
    assert [e.position for e in again] == positions
    assert {hash(e.position) for e in again} == {hash(p) for p in positions}


@store_test
async def test_a_position_token_round_trips(store: es.EventStore, ctx: StoreContext) -> None:
    """``Position.parse(str(p)) == p``, and a checkpoint saved as a token loads as ``p``."""
    result = await store.append(ctx.stream(), new_events(1))
    token = str(result.position)
    assert isinstance(token, str)
    assert token
    assert es.Position.parse(token) == result.position
    name = "conf-token-" + ctx.category
    await store.save_checkpoint(name, token)
    assert await store.load_checkpoint(name) == result.position


@store_test
async def test_positions_increase_with_versions_in_a_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Later events of a stream have greater positions."""
    stream = ctx.stream()
    for _ in range(3):
        await store.append(stream, new_events(2))
    events = await collect(store.read_stream(stream))
    assert_strictly_increasing([e.position for e in events], "read_stream")


@requires(durable=True)
@store_test
async def test_events_survive_closing_every_connection(ctx: StoreContext) -> None:
    """A durable store still has the events after the writing connection closed."""
    stream = ctx.stream()
    writer = es.connect(ctx.url)
    async with writer:
        await writer.append(stream, new_events(3))
    async with es.connect(ctx.url) as reader:
        assert await reader.stream_version(stream) == 3
