"""A lost answer: the server got the write, the client never heard back.

The suite puts a TCP proxy (:mod:`eventstore_conformance.faults`) between a store and its
server, lets an append through, and drops the server's answer. The append may not report
success it cannot know of, and may not report that nothing happened either: it raises
``BackendUnavailableError`` with ``maybe_applied=True`` (or, if the adapter's own retry found
the batch stored, returns its result). Retrying the same append then leaves exactly one copy.
"""

from __future__ import annotations

import uuid

import pytest

import eventstore_core as es
from eventstore_conformance.faults import ProxiedStore
from eventstore_conformance.harness import StoreContext, collect, new_events, requires, store_test


def _markers(events: list[es.NewEvent]) -> list[bytes]:
    # An event id as a driver may send it: 16 raw bytes (binary protocols) or its text.
    ids = [event.id for event in events]
    return [i.bytes for i in ids] + [str(i).encode() for i in ids]


async def _one_copy(store: es.EventStore, stream: str, events: list[es.NewEvent]) -> None:
    stored = await collect(store.read_stream(stream))
    assert [e.id for e in stored] == [e.id for e in events], (
        f"expected exactly one copy of the batch, found {len(stored)} events"
    )


@requires(idempotency="window")
@store_test
async def test_a_lost_answer_with_no_way_back_says_maybe_applied(
    store: es.EventStore, ctx: StoreContext, eventstore_proxy: ProxiedStore
) -> None:
    """The answer to an append is lost and the adapter cannot reconnect to retry: the error
    says ``maybe_applied=True``; once the server is reachable, the same append returns the
    original result and the stream holds one copy."""
    proxy = eventstore_proxy.proxy
    proxied = es.connect(eventstore_proxy.url)
    await proxied.open()
    try:
        stream = ctx.stream()
        await proxied.append(stream, new_events(1))  # warm: the connection and statements
        events = new_events(3, run=uuid.uuid4().hex)
        proxy.lose_answer_after(*_markers(events), then_refuse=True)
        with pytest.raises(es.BackendUnavailableError) as info:
            await proxied.append(stream, events)
        assert proxy.answers_lost == 1, "the proxy never saw the append"
        assert info.value.maybe_applied, f"maybe_applied is False after a sent write: {info.value}"
        proxy.refuse(False)
        result = await proxied.append(stream, events)
        assert result.version == 4
    finally:
        await proxied.close()
    stored = await collect(store.read_stream(stream))
    assert [e.id for e in stored[1:]] == [e.id for e in events], "not exactly one copy"


@requires(idempotency="window")
@store_test
async def test_a_lost_answer_then_a_retry_of_the_same_append_leaves_one_copy(
    store: es.EventStore, ctx: StoreContext, eventstore_proxy: ProxiedStore
) -> None:
    """The answer is lost but reconnecting works: the append returns (the adapter's own retry
    recognised the batch) or raises ``maybe_applied=True``; retrying leaves one copy."""
    proxy = eventstore_proxy.proxy
    proxied = es.connect(eventstore_proxy.url)
    await proxied.open()
    try:
        for round_ in range(5):
            stream = ctx.stream()
            events = new_events(1 + round_ % 3)
            proxy.lose_answer_after(*_markers(events))
            try:
                first = await proxied.append(stream, events)
            except es.BackendUnavailableError as error:
                assert error.maybe_applied, f"maybe_applied is False after a sent write: {error}"  # noqa: PT017
                first = None
            again = await proxied.append(stream, events)
            assert first is None or first == again
            assert again.version == len(events)
            await _one_copy(store, stream, events)
        assert proxy.answers_lost == 5
    finally:
        await proxied.close()
