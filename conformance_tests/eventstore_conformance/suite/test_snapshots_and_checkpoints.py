"""Snapshots (the latest wins) and checkpoints (save, load, overwrite, resume by name)."""

from __future__ import annotations

import pytest

import eventstore_core as es
from eventstore_conformance.harness import StoreContext, new_events, requires, store_test


@requires(snapshots=True)
@store_test
async def test_load_snapshot_returns_none_when_there_is_none(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A stream never snapshotted (written or not) has no snapshot."""
    assert await store.load_snapshot(ctx.stream()) is None
    stream = ctx.stream()
    await store.append(stream, new_events(1))
    assert await store.load_snapshot(stream) is None


@requires(snapshots=True)
@store_test
async def test_a_snapshot_round_trips(store: es.EventStore, ctx: StoreContext) -> None:
    """Stream id, version, type and data read back as saved."""
    stream = ctx.stream()
    data = {"total": 10, "lines": [{"sku": "é", "qty": 2}], "open": True, "note": None}
    await store.save_snapshot(es.Snapshot(stream, 3, "OrderState", data))
    snapshot = await store.load_snapshot(stream)
    assert snapshot is not None
    assert (snapshot.stream_id, snapshot.version, snapshot.type) == (stream, 3, "OrderState")
    assert dict(snapshot.data) == data


@requires(snapshots=True)
@store_test
async def test_the_latest_snapshot_wins(store: es.EventStore, ctx: StoreContext) -> None:
    """After snapshots at versions 2, 5 and 9, loading returns version 9."""
    stream = ctx.stream()
    for version in (2, 5, 9):
        await store.save_snapshot(es.Snapshot(stream, version, "S", {"v": version}))
    snapshot = await store.load_snapshot(stream)
    assert snapshot is not None
    assert (snapshot.version, dict(snapshot.data)) == (9, {"v": 9})


@requires(snapshots=True)
@store_test
async def test_an_older_snapshot_saved_later_never_replaces_a_newer_one(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Saving version 9, then 5 (a slow or replaying writer), still loads version 9; a newer
    one saved after that (12) replaces it."""
    stream = ctx.stream()
    await store.save_snapshot(es.Snapshot(stream, 9, "S", {"v": 9}))
    await store.save_snapshot(es.Snapshot(stream, 5, "S", {"v": 5}))
    snapshot = await store.load_snapshot(stream)
    assert snapshot is not None
    assert (snapshot.version, dict(snapshot.data)) == (9, {"v": 9}), (
        f"an older snapshot replaced a newer one: loaded version {snapshot.version}"
    )
    await store.save_snapshot(es.Snapshot(stream, 12, "S", {"v": 12}))
    snapshot = await store.load_snapshot(stream)
    assert snapshot is not None
    assert snapshot.version == 12


@requires(snapshots=True)
@store_test
async def test_saving_a_snapshot_again_at_the_same_version_replaces_it(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The last snapshot saved for a version is the one loaded."""
    stream = ctx.stream()
    await store.save_snapshot(es.Snapshot(stream, 4, "S", {"first": True}))
    await store.save_snapshot(es.Snapshot(stream, 4, "S2", {"second": True}))
    snapshot = await store.load_snapshot(stream)
    assert snapshot is not None
    assert (snapshot.type, dict(snapshot.data)) == ("S2", {"second": True})


@requires(snapshots=True)
@store_test
async def test_snapshots_are_kept_per_stream(store: es.EventStore, ctx: StoreContext) -> None:
    """A snapshot of one stream is not returned for another."""
    a, b = ctx.stream(), ctx.stream()
    await store.save_snapshot(es.Snapshot(a, 1, "S", {"s": "a"}))
    await store.save_snapshot(es.Snapshot(b, 7, "S", {"s": "b"}))
    snapshot_a = await store.load_snapshot(a)
    assert snapshot_a is not None
    assert dict(snapshot_a.data) == {"s": "a"}


@store_test
async def test_load_checkpoint_returns_none_when_there_is_none(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A name never saved has no checkpoint."""
    assert await store.load_checkpoint("conf-none-" + ctx.category) is None


@store_test
async def test_a_checkpoint_round_trips_a_position(store: es.EventStore, ctx: StoreContext) -> None:
    """``load_checkpoint`` returns a ``Position`` equal to the one saved."""
    result = await store.append(ctx.stream(), new_events(1))
    name = "conf-" + ctx.category
    await store.save_checkpoint(name, result.position)
    loaded = await store.load_checkpoint(name)
    assert isinstance(loaded, es.Position)
    assert loaded == result.position


@store_test
async def test_saving_a_checkpoint_again_overwrites_it(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The last saved position wins (also when it moves backwards, as on a replay)."""
    first = await store.append(ctx.stream(), new_events(1))
    second = await store.append(ctx.stream(), new_events(1))
    name = "conf-" + ctx.category
    await store.save_checkpoint(name, first.position)
    await store.save_checkpoint(name, str(second.position))
    assert await store.load_checkpoint(name) == second.position
    await store.save_checkpoint(name, first.position)
    assert await store.load_checkpoint(name) == first.position


@store_test
async def test_checkpoints_are_kept_per_name(store: es.EventStore, ctx: StoreContext) -> None:
    """Two names hold two positions."""
    first = await store.append(ctx.stream(), new_events(1))
    second = await store.append(ctx.stream(), new_events(1))
    await store.save_checkpoint("conf-a-" + ctx.category, first.position)
    await store.save_checkpoint("conf-b-" + ctx.category, second.position)
    assert await store.load_checkpoint("conf-a-" + ctx.category) == first.position
    assert await store.load_checkpoint("conf-b-" + ctx.category) == second.position


@requires(snapshots=True)
@store_test
async def test_a_snapshot_of_max_snapshot_bytes_is_accepted_and_one_byte_more_refused(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The declared ``max_snapshot_bytes`` is real: a snapshot whose encoded data is exactly
    that size is stored and read back; one byte more raises ``InvalidEventError`` before
    anything is sent, and the stored snapshot stays."""
    limit = store.capabilities.max_snapshot_bytes
    if limit > 64 * 1024 * 1024:
        pytest.skip(f"max_snapshot_bytes={limit} is too large to build a snapshot of")
    stream = ctx.stream()
    payload = "x" * (limit - len('{"p":""}'))
    await store.save_snapshot(es.Snapshot(stream, 1, "Big", {"p": payload}))
    loaded = await store.load_snapshot(stream)
    assert loaded is not None
    assert loaded.version == 1
    assert len(loaded.data["p"]) == len(payload)
    with pytest.raises(es.InvalidEventError, match="snapshot"):
        await store.save_snapshot(es.Snapshot(stream, 2, "Big", {"p": payload + "x"}))
    after = await store.load_snapshot(stream)
    assert after is not None
    assert after.version == 1


@store_test
async def test_a_store_without_snapshots_refuses_them_clearly(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Where ``capabilities.snapshots`` is False, both calls raise
    ``UnsupportedOperationError`` (never a raw error, never a silent no-op)."""
    if store.capabilities.snapshots:
        pytest.skip("the store declares snapshots")
    with pytest.raises(es.UnsupportedOperationError):
        await store.save_snapshot(es.Snapshot(ctx.stream(), 1, "S", {}))
    with pytest.raises(es.UnsupportedOperationError):
        await store.load_snapshot(ctx.stream())
