"""``read_all``: global order strictly after ``after``, tokens, paging, limits, filters."""

from __future__ import annotations

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    assert_strictly_increasing,
    collect,
    ids_of,
    new_events,
    requires,
    store_test,
)


@store_test
async def test_read_all_yields_events_strictly_after_the_given_position(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Events at or before ``after`` are not returned; every later one is."""
    stream = ctx.stream()
    first = await store.append(stream, new_events(2))
    later = new_events(3)
    await store.append(stream, later)
    events = [
        e for e in await collect(store.read_all(after=first.position)) if e.stream_id == stream
    ]
    assert ids_of(events) == ids_of(later)
    assert all(e.position > first.position for e in events)


@store_test
async def test_read_all_yields_events_of_every_stream(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """The global log holds every stream's events."""
    marker = await ctx.marker()
    streams = [ctx.stream() for _ in range(3)]
    for stream in streams:
        await store.append(stream, new_events(2))
    events = await collect(store.read_all(after=marker))
    for stream in streams:
        assert [e.version for e in events if e.stream_id == stream] == [1, 2]


@requires(global_order="total")
@store_test
async def test_read_all_follows_commit_order_across_streams(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Sequential appends to different streams read back in the order they were committed.

    24 streams, so that on a partitioned store they do not all share one partition by chance
    and make this pass where the order is not total: with 8, three partitions did so about
    once in 2,200 runs (seen: a strict xfail passed); with 24, once in 10**11."""
    marker = await ctx.marker()
    streams = [ctx.stream() for _ in range(24)]
    appended: list[es.NewEvent] = []
    for stream in [*streams, *reversed(streams)]:
        batch = new_events(1)
        await store.append(stream, batch)
        appended += batch
    events = await ctx.ours(marker)
    assert ids_of(events) == ids_of(appended)
    assert_strictly_increasing([e.position for e in events], "read_all")


@store_test
async def test_read_all_keeps_each_stream_in_version_order(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Within one stream, global order is version order (on every backend)."""
    marker = await ctx.marker()
    stream = ctx.stream()
    for _ in range(3):
        await store.append(stream, new_events(2))
    events = [e for e in await ctx.ours(marker) if e.stream_id == stream]
    assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
    assert_strictly_increasing([e.position for e in events], "one stream")


@store_test
async def test_read_all_accepts_a_string_token_as_after(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``after=str(position)`` reads exactly what ``after=position`` reads."""
    marker = await ctx.marker()
    for _ in range(3):
        await store.append(ctx.stream(), new_events(2))
    by_position = await ctx.ours(marker)
    by_token = await ctx.ours(str(marker))
    assert ids_of(by_token) == ids_of(by_position)
    assert len(by_token) == 6


@store_test
async def test_resuming_from_a_token_gives_exactly_the_rest(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Read some, keep ``str(last.position)``, resume later: no gap, no repeat."""
    marker = await ctx.marker()
    for _ in range(4):
        await store.append(ctx.stream(), new_events(3))
    everything = await ctx.ours(marker)
    only_ours = es.EventFilter(categories=[ctx.category])
    head = await collect(store.read_all(after=marker, filter=only_ours, limit=5))
    token = str(head[-1].position)
    assert isinstance(token, str)
    rest = await collect(store.read_all(after=token, filter=only_ours))
    assert ids_of(head + rest) == ids_of(everything)
    assert len(everything) == 12


@store_test
async def test_read_all_limit_caps_the_number_of_events(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """``limit=n`` yields the first n events after ``after``; ``limit=0`` yields none."""
    marker = await ctx.marker()
    stream = ctx.stream()
    await store.append(stream, new_events(5))
    events = await collect(store.read_all(after=marker, limit=3))
    assert [(e.stream_id, e.version) for e in events] == [(stream, 1), (stream, 2), (stream, 3)]
    assert await collect(store.read_all(after=marker, limit=0)) == []


@store_test
async def test_read_all_after_the_last_event_yields_nothing(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Reading after the newest event yields nothing (until something is committed)."""
    stream = ctx.stream()
    result = await store.append(stream, new_events(2))
    events = [
        e for e in await collect(store.read_all(after=result.position)) if e.stream_id == stream
    ]
    assert events == []


@store_test
async def test_read_all_pages_through_more_events_than_a_page(ctx: StoreContext) -> None:
    """With ``page_size=3``, 11 events read whole, once each, in order."""
    store = await ctx.connect(page_size=3)
    marker = await ctx.marker(store)
    stream = ctx.stream()
    for size in (4, 1, 3, 3):
        await store.append(stream, new_events(size))
    events = [e for e in await collect(store.read_all(after=marker)) if e.stream_id == stream]
    assert [e.version for e in events] == list(range(1, 12))


@store_test
async def test_read_all_filters_by_event_type(store: es.EventStore, ctx: StoreContext) -> None:
    """``EventFilter(event_types=[...])`` keeps only events of those types."""
    marker = await ctx.marker()
    stream = ctx.stream()
    kinds = ["Placed", "Paid", "Shipped", "Paid", "Placed", "Cancelled"]
    await store.append(stream, [es.NewEvent(kind, {"i": i}) for i, kind in enumerate(kinds)])
    wanted = es.EventFilter(event_types=["Paid", "Cancelled"])
    events = [e for e in await collect(store.read_all(after=marker, filter=wanted))]
    ours = [e for e in events if e.stream_id == stream]
    assert [e.data["i"] for e in ours] == [1, 3, 5]
    assert all(e.type in ("Paid", "Cancelled") for e in events)


@store_test
async def test_read_all_filters_by_category(store: es.EventStore, ctx: StoreContext) -> None:
    """The category of ``Order-42`` is ``Order``: the part before the first ``-``."""
    marker = await ctx.marker()
    category = ctx.category
    in_category = [f"{category}-1", f"{category}-2-x", category]
    not_in_category = [f"{category}x-1", f"x{category}-1", f"{category}_1"]
    for stream in in_category + not_in_category:
        await store.append(stream, [es.NewEvent("T", {"stream": stream})])
    events = await collect(
        store.read_all(after=marker, filter=es.EventFilter(categories=[category]))
    )
    # (Sorted: the order of events of different streams is the commit-order test's business.)
    assert sorted(e.stream_id for e in events) == sorted(in_category)
    assert all(e.category == category for e in events)


@store_test
async def test_read_all_filters_by_type_and_category_together(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """With both lists, an event must match both."""
    marker = await ctx.marker()
    ours, other = ctx.stream(), ctx.stream("Other" + ctx.category)
    for stream in (ours, other):
        await store.append(stream, [es.NewEvent("A", {}), es.NewEvent("B", {})])
    both = es.EventFilter(event_types=["B"], categories=[ctx.category])
    events = await collect(store.read_all(after=marker, filter=both))
    assert [(e.stream_id, e.type) for e in events] == [(ours, "B")]


@store_test
async def test_a_filter_matching_sparse_events_still_reads_them_all(ctx: StoreContext) -> None:
    """Filtering happens before paging: rare matches among many events are all found."""
    store = await ctx.connect(page_size=2)
    marker = await ctx.marker(store)
    stream = ctx.stream()
    types = ["Noise"] * 20
    for i in (0, 7, 8, 19):
        types[i] = "Rare"
    await store.append(stream, [es.NewEvent(t, {"i": i}) for i, t in enumerate(types)])
    rare = es.EventFilter(event_types=["Rare"], categories=[ctx.category])
    events = await collect(store.read_all(after=marker, filter=rare))
    assert [e.data["i"] for e in events] == [0, 7, 8, 19]
    limited = await collect(store.read_all(after=marker, filter=rare, limit=3))
    assert [e.data["i"] for e in limited] == [0, 7, 8]
