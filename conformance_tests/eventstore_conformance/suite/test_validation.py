"""Bad input is rejected with ``InvalidEventError`` naming the field, and nothing is written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import eventstore_core as es
from eventstore_conformance.harness import StoreContext, collect, store_test

BAD_NAMES: dict[str, object] = {
    "empty": "",
    "too-long": "x" * 256,
    "nul": "Order\x00-1",
    "newline": "Order\n-1",
    "escape": "Order-\x1b",
    # Not only ASCII controls: DEL and the C1 controls (U+0080..U+009F) are controls too, and
    # a lone surrogate is not a character at all (it cannot even be encoded as UTF-8).
    "del": "Order\x7f-1",
    "c1-next-line": "Order\x85-1",
    "c1-csi": "\x9bOrder-1",
    "lone-surrogate": "Order-\ud800",
    "dollar-prefix": "$Order-1",
    "int": 42,
    "none": None,
    "bytes": b"Order-1",
}

BAD_DATA: dict[str, object] = {
    "object": {"x": object()},
    "set": {"x": {1, 2}},
    "bytes-value": {"x": b"raw"},
    "not-a-mapping": ["x"],
    "a-string": "x",
}

BAD_EXPECTED: dict[str, object] = {
    "negative": -1,
    "str": "1",
    "float": 1.0,
    "bool": True,
    "none": None,
}

BAD_LIMITS: dict[str, object] = {"negative": -1, "str": "5", "float": 1.5}


async def _assert_nothing_written(
    store: es.EventStore, before: es.Position, ids: set[uuid.UUID]
) -> None:
    """Fail if any of ``ids`` appears in the global log after ``before``."""
    written = {event.id for event in await collect(store.read_all(after=before))}
    assert not written & ids, "an invalid append wrote events"


async def _rejects(
    ctx: StoreContext, stream_id: object, events: Any, expected_version: object, field: str
) -> None:
    """Append bad input: expect ``InvalidEventError`` naming ``field``, and nothing written."""
    store = ctx.store
    marker = await ctx.marker()
    ids = (
        {e.id for e in events if isinstance(e, es.NewEvent)} if isinstance(events, list) else set()
    )
    with pytest.raises(es.InvalidEventError) as info:
        await store.append(stream_id, events, expected_version=expected_version)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    named = f"{info.value} {getattr(info.value, 'field', '') or ''}"
    assert field in named, f"the error does not name {field!r}: {info.value}"
    await _assert_nothing_written(store, marker, ids)


@pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@store_test
async def test_append_rejects_an_invalid_stream_id(ctx: StoreContext, bad: object) -> None:
    """Stream ids are non-empty str of <= 255 characters, no control characters, no ``$``."""
    await _rejects(ctx, bad, [es.NewEvent("T", {})], es.ANY, "stream_id")


@pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@store_test
async def test_append_rejects_an_invalid_event_type(ctx: StoreContext, bad: object) -> None:
    """Event types follow the stream id rules; the whole batch is refused."""
    events = [es.NewEvent("Fine", {}), es.NewEvent(bad, {})]  # type: ignore[arg-type]
    await _rejects(ctx, ctx.stream(), events, es.ANY, "type")


@pytest.mark.parametrize("bad", list(BAD_DATA.values()), ids=list(BAD_DATA))
@store_test
async def test_append_rejects_data_that_is_not_json(ctx: StoreContext, bad: object) -> None:
    """``data`` must be a JSON-serialisable mapping."""
    events = [es.NewEvent("Fine", {}), es.NewEvent("T", bad)]  # type: ignore[arg-type]
    await _rejects(ctx, ctx.stream(), events, es.ANY, "data")


@pytest.mark.parametrize("bad", list(BAD_DATA.values()), ids=list(BAD_DATA))
@store_test
async def test_append_rejects_metadata_that_is_not_json(ctx: StoreContext, bad: object) -> None:
    """``metadata`` must be a JSON-serialisable mapping."""
    events = [es.NewEvent("Fine", {}), es.NewEvent("T", {}, metadata=bad)]  # type: ignore[arg-type]
    await _rejects(ctx, ctx.stream(), events, es.ANY, "metadata")


@store_test
async def test_append_rejects_an_event_over_max_event_bytes(ctx: StoreContext) -> None:
    """An event one byte over the declared ``max_event_bytes`` is refused before sending."""
    limit = ctx.capabilities.max_event_bytes
    if limit > 64 * 1024 * 1024:
        pytest.skip(f"max_event_bytes={limit} is too large to build an event over it")
    event_type = "Big"
    payload = "x" * (limit - 8 - 2 - len(event_type) + 1)
    events = [es.NewEvent("Fine", {}), es.NewEvent(event_type, {"p": payload})]
    await _rejects(ctx, ctx.stream(), events, es.ANY, "max_event_bytes")


@store_test
async def test_append_rejects_a_batch_over_max_append_events(ctx: StoreContext) -> None:
    """A batch of ``max_append_events + 1`` events is refused before sending."""
    limit = ctx.capabilities.max_append_events
    if limit > 100_000:
        pytest.skip(f"max_append_events={limit} is too large to build a batch over it")
    events = [es.NewEvent("T", {}) for _ in range(limit + 1)]
    await _rejects(ctx, ctx.stream(), events, es.ANY, "max_append_events")


@store_test
async def test_append_rejects_a_batch_over_max_append_bytes(ctx: StoreContext) -> None:
    """Where a backend declares ``max_append_bytes``, a batch of events each within
    ``max_event_bytes`` whose sum is one byte over it is refused before sending, and a batch
    of exactly that size is stored."""
    limit = ctx.capabilities.max_append_bytes
    if limit is None:
        pytest.skip("the store declares no max_append_bytes")
    per_event = min(ctx.capabilities.max_event_bytes, limit)
    count = -(-limit // per_event) + 1
    if count > ctx.capabilities.max_append_events:
        pytest.skip("max_append_bytes cannot be exceeded within max_append_events")
    share = limit // count
    overhead = len(b'{"p":""}') + len(b"{}") + len("Big")
    events = [es.NewEvent("Big", {"p": "x" * (share - overhead)}) for _ in range(count)]
    spare = limit - sum(share - overhead + overhead for _ in range(count))
    events[-1] = es.NewEvent("Big", {"p": "x" * (share - overhead + spare)})
    stream = ctx.stream()
    written = await ctx.store.append(stream, events)
    assert written.version == count
    over = [*events[:-1], es.NewEvent("Big", {"p": "x" * (share - overhead + spare + 1)})]
    await _rejects(ctx, ctx.stream(), over, es.ANY, "max_append_bytes")


@store_test
async def test_append_rejects_an_empty_batch(ctx: StoreContext) -> None:
    """Appending no events is an error, not a no-op."""
    await _rejects(ctx, ctx.stream(), [], es.ANY, "events")


@pytest.mark.parametrize("bad", [None, "events"], ids=["none", "str"])
@store_test
async def test_append_rejects_events_that_are_not_a_sequence(
    ctx: StoreContext, bad: object
) -> None:
    """``events`` must be a sequence of ``NewEvent``."""
    await _rejects(ctx, ctx.stream(), bad, es.ANY, "events")


@store_test
async def test_append_rejects_a_single_event_not_in_a_list(ctx: StoreContext) -> None:
    """A bare ``NewEvent`` (not in a list) is refused rather than guessed at."""
    await _rejects(ctx, ctx.stream(), es.NewEvent("T", {}), es.ANY, "events")


@pytest.mark.parametrize("bad", list(BAD_EXPECTED.values()), ids=list(BAD_EXPECTED))
@store_test
async def test_append_rejects_an_invalid_expected_version(ctx: StoreContext, bad: object) -> None:
    """``expected_version`` is ``ANY``, ``NO_STREAM``, ``STREAM_EXISTS`` or an ``int >= 0``."""
    await _rejects(ctx, ctx.stream(), [es.NewEvent("T", {})], bad, "expected_version")


async def _raises_invalid(make: Callable[[], AsyncIterator[Any]], field: str) -> None:
    """Reading with bad arguments raises ``InvalidEventError`` (at the call or when iterated)."""
    with pytest.raises(es.InvalidEventError) as info:
        await collect(make())
    named = f"{info.value} {getattr(info.value, 'field', '') or ''}"
    assert field in named, f"the error does not name {field!r}: {info.value}"


@pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@store_test
async def test_read_stream_rejects_an_invalid_stream_id(store: es.EventStore, bad: object) -> None:
    """``read_stream`` checks the stream id like ``append``."""
    await _raises_invalid(lambda: store.read_stream(bad), "stream_id")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@store_test
async def test_stream_version_rejects_an_invalid_stream_id(
    store: es.EventStore, bad: object
) -> None:
    """``stream_version`` checks the stream id like ``append``."""
    with pytest.raises(es.InvalidEventError):
        await store.stream_version(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, "1", 1.0], ids=["zero", "negative", "str", "float"])
@store_test
async def test_read_stream_rejects_an_invalid_from_version(
    store: es.EventStore, ctx: StoreContext, bad: object
) -> None:
    """Forward reads start at version 1 or later; the version is an ``int``."""
    await _raises_invalid(
        lambda: store.read_stream(ctx.stream(), from_version=bad),  # type: ignore[arg-type]
        "from_version",
    )


@pytest.mark.parametrize("bad", list(BAD_LIMITS.values()), ids=list(BAD_LIMITS))
@store_test
async def test_read_stream_rejects_an_invalid_limit(
    store: es.EventStore, ctx: StoreContext, bad: object
) -> None:
    """``limit`` is None or an ``int >= 0``."""
    await _raises_invalid(
        lambda: store.read_stream(ctx.stream(), limit=bad),  # type: ignore[arg-type]
        "limit",
    )


@pytest.mark.parametrize("bad", list(BAD_LIMITS.values()), ids=list(BAD_LIMITS))
@store_test
async def test_read_all_rejects_an_invalid_limit(store: es.EventStore, bad: object) -> None:
    """``limit`` is None or an ``int >= 0``."""
    await _raises_invalid(lambda: store.read_all(limit=bad), "limit")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["not-a-position", "", "-1", "1.5", 42, object()], ids=lambda v: repr(v)[:20]
)
@store_test
async def test_read_all_rejects_an_invalid_after(store: es.EventStore, bad: object) -> None:
    """``after`` is a ``Position``, a token made by ``str(position)``, or None."""
    await _raises_invalid(lambda: store.read_all(after=bad), "after")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["Order", {"categories": ["Order"]}, ["Order"]], ids=repr)
@store_test
async def test_read_all_rejects_an_invalid_filter(store: es.EventStore, bad: object) -> None:
    """``filter`` is an ``es.EventFilter`` or None."""
    await _raises_invalid(lambda: store.read_all(filter=bad), "filter")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["event_types", "categories"])
def test_event_filter_rejects_a_bare_string(field: str) -> None:
    """``EventFilter(event_types="Order")`` is refused: a str is not a list of names."""
    with pytest.raises(es.InvalidEventError):
        es.EventFilter(**{field: "Order"})


@store_test
async def test_subscribe_rejects_invalid_arguments(store: es.EventStore) -> None:
    """``subscribe`` checks ``after``, ``filter`` and ``name`` (at the call or on start)."""

    async def first(**kwargs: Any) -> None:
        async with store.subscribe(**kwargs) as subscription:
            await anext(subscription)

    for kwargs in (
        {"after": "not-a-position"},
        {"filter": "Order"},
        {"name": ""},
        {"name": "projector\x85"},
    ):
        with pytest.raises(es.InvalidEventError):
            await first(**kwargs)


@pytest.mark.parametrize(
    "bad", ["", "$checkpoint", "a\x00b", "a\x7fb", "a\x85b", "a\ud800b", 42], ids=repr
)
@store_test
async def test_checkpoints_reject_an_invalid_name(store: es.EventStore, bad: object) -> None:
    """Checkpoint names follow the stream id rules."""
    with pytest.raises(es.InvalidEventError):
        await store.save_checkpoint(bad, es.Position((1,)))  # type: ignore[arg-type]
    with pytest.raises(es.InvalidEventError):
        await store.load_checkpoint(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, "not-a-position", 7], ids=repr)
@store_test
async def test_save_checkpoint_rejects_an_invalid_position(
    store: es.EventStore, ctx: StoreContext, bad: object
) -> None:
    """A checkpoint is a ``Position`` or its token."""
    name = "conf-" + ctx.category
    with pytest.raises(es.InvalidEventError):
        await store.save_checkpoint(name, bad)  # type: ignore[arg-type]
    assert await store.load_checkpoint(name) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda s: es.Snapshot("", 1, "S", {}),
        lambda s: es.Snapshot("$" + s, 1, "S", {}),
        lambda s: es.Snapshot(s, -1, "S", {}),
        lambda s: es.Snapshot(s, 1, "", {}),
        lambda s: es.Snapshot(s, 1, "S", {"x": object()}),
        lambda s: es.Snapshot(s + "\x7f", 1, "S", {}),
        lambda s: es.Snapshot(s, 1, "S\x85", {}),
    ],
    ids=[
        "empty-stream",
        "dollar-stream",
        "negative-version",
        "empty-type",
        "not-json",
        "del-in-stream",
        "c1-in-type",
    ],
)
@store_test
async def test_save_snapshot_rejects_invalid_snapshots(
    store: es.EventStore, ctx: StoreContext, make: Callable[[str], es.Snapshot]
) -> None:
    """Snapshots are checked like events; a refused one is not saved."""
    stream = ctx.stream()
    with pytest.raises(es.InvalidEventError):
        await store.save_snapshot(make(stream))
    assert await store.load_snapshot(stream) is None
