"""A server restart while writers append and a subscription is live.

The project's harness owns the server, so it provides the restart (the
``eventstore_restartable`` fixture of :mod:`eventstore_conformance.faults`; without one, the
test skips). Writers retry each append after ``BackendUnavailableError`` with the same event
ids, as the contract recommends; the subscription must ride through the restart within
``reconnect_timeout``. Afterwards every acknowledged event has reached the subscriber exactly
once, in global order, and each stream's events in version order.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import eventstore_core as es
from eventstore_conformance.faults import Restartable
from eventstore_conformance.harness import (
    assert_strictly_increasing,
    extend_deadline,
    store_test,
    wait_for,
)

WRITERS = 4
#: Acknowledged appends to see before the restart, and again after it.
BEFORE, AFTER = 40, 40


@store_test
async def test_a_restart_under_load_loses_no_acknowledged_event_and_repeats_none(
    eventstore_restartable: Restartable | None,
) -> None:
    """Every event acknowledged before, during or after a restart reaches a live subscriber
    exactly once, in order; appends fail only with ``BackendUnavailableError`` meanwhile.

    A store whose idempotency is a window (not ``permanent``) may write a second copy of an
    append retried across the restart; no other event may appear twice, and no position."""
    if eventstore_restartable is None:
        pytest.skip("the harness provides no restartable server for this store")
    url = eventstore_restartable.url
    writer_store = es.connect(url, reconnect_timeout=60)
    reader_store = es.connect(url, reconnect_timeout=60)
    await writer_store.open()
    await reader_store.open()
    category = "ConfRestart" + uuid.uuid4().hex[:12]
    acked: list[uuid.UUID] = []
    by_stream: dict[str, list[uuid.UUID]] = {}
    delivered: list[es.RecordedEvent] = []
    retried: set[uuid.UUID] = set()
    unavailable = 0
    stop = asyncio.Event()
    try:
        await writer_store.setup()
        marker = (await writer_store.append(f"{category}Marker-1", [es.NewEvent("M", {})])).position

        async def writer(n: int) -> None:
            nonlocal unavailable
            stream = f"{category}-{n}"
            i = 0
            while not stop.is_set():
                event = es.NewEvent("Written", {"n": n, "i": i})
                async with asyncio.timeout(90):
                    while True:
                        try:
                            await writer_store.append(stream, [event])
                            break
                        except es.BackendUnavailableError:
                            unavailable += 1
                            retried.add(event.id)
                            await asyncio.sleep(0.05)
                acked.append(event.id)
                by_stream.setdefault(stream, []).append(event.id)
                i += 1

        async def consume() -> None:
            event_filter = es.EventFilter(categories=[category])
            async with reader_store.subscribe(after=marker, filter=event_filter) as subscription:
                async for event in subscription:
                    delivered.append(event)

        consumer = asyncio.create_task(consume())
        writers = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
        await wait_for(lambda: len(acked) >= BEFORE, 60, f"{BEFORE} appends before the restart")
        restart_began = time.monotonic()
        await asyncio.to_thread(eventstore_restartable.restart)
        # The restart itself is the harness's time, not the store's.
        extend_deadline(time.monotonic() - restart_began)
        restarted_at = len(acked)
        await wait_for(
            lambda: len(acked) >= restarted_at + AFTER or consumer.done(),
            90,
            f"{AFTER} appends after the restart",
        )
        stop.set()
        await asyncio.gather(*writers)
        seen = lambda: {e.id for e in delivered} >= set(acked) or consumer.done()  # noqa: E731
        await wait_for(seen, 90, "the subscriber to receive every acknowledged event")
        assert not consumer.done(), f"the subscription ended: {consumer.exception()!r}"
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    finally:
        stop.set()
        await writer_store.close()
        await reader_store.close()
    ids = [e.id for e in delivered]
    copies: dict[uuid.UUID, list[str]] = {}
    for event in delivered:
        copies.setdefault(event.id, []).append(str(event.position))
    positions = [str(e.position) for e in delivered]
    assert len(positions) == len(set(positions)), "the subscription delivered a position twice"
    twice = {id_: at for id_, at in copies.items() if len(at) > 1}
    if writer_store.capabilities.idempotency != "permanent":
        # A window of idempotency may not outlive the restart (KurrentDB's cache is in
        # memory): a retry of an append that landed just before it may be written again.
        # Only such retries may have two copies.
        twice = {id_: at for id_, at in twice.items() if id_ not in retried}
    assert not twice, f"events written twice (id: positions): {twice}"
    missing = set(acked) - set(ids)
    # Whether the subscriber stalled (the missing ones came after its last event) or
    # stepped over them (events of the same streams after them were delivered).
    last = delivered[-1].position if delivered else None
    assert not missing, (
        f"{len(missing)} acknowledged events missing (the subscriber got {len(delivered)}, "
        f"the last at {last}): " + _describe(missing, by_stream, retried, restarted_at, acked)
    )
    assert_strictly_increasing([e.position for e in delivered], "delivery order")
    for stream, stream_ids in by_stream.items():
        # The first copy of each event counts (a second one is only allowed as said above).
        got = list(dict.fromkeys(e.id for e in delivered if e.stream_id == stream))
        assert got == stream_ids, f"{stream}: delivered out of version order"


def _describe(
    missing: set[uuid.UUID],
    by_stream: dict[str, list[uuid.UUID]],
    retried: set[uuid.UUID],
    restarted_at: int,
    acked: list[uuid.UUID],
) -> str:
    """Where the missing events were written: stream, index, when, and whether retried."""
    order = {id_: n for n, id_ in enumerate(acked)}
    described = []
    for stream, stream_ids in by_stream.items():
        for index, id_ in enumerate(stream_ids):
            if id_ in missing:
                when = "before" if order[id_] < restarted_at else "after"  # the restart's end
                how = "retried" if id_ in retried else "first try"
                described.append(f"{stream}[{index}] (acked {when} the restart ended, {how})")
    return ", ".join(described[:20]) + (" ..." if len(described) > 20 else "")
