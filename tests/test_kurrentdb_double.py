"""The KurrentDB protocol double keeps the server's rules, seen through kurrentdbclient.

These pin down, in CI, the rules the adapter relies on (each from KurrentDB's source, see the
double's modules); the double as a whole is judged by kurrentdbclient's own test suite
(docs/backends/kurrentdb.md). With ``EVENTSTORE_TEST_KURRENTDB_URL`` the same tests run
against a real server, which is how a difference would show.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eventstore_kurrentdb.double import KurrentDBDouble
from kurrentdbclient import AsyncKurrentDBClient, NewEvent, NewRecord, StreamState, StreamStateCheck
from kurrentdbclient.events import CaughtUp, Checkpoint, NewEvents
from kurrentdbclient.exceptions import (
    ConsistencyChecksFailedError,
    NotFoundError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)
from kurrentdbclient.protos.v1 import shared_pb2
from kurrentdbclient.protos.v1 import streams_pb2 as v1
from kurrentdbclient.protos.v2.streams import streams_pb2 as v2

from eventstore_core.local.kurrentdb import url_from_environment


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[AsyncKurrentDBClient]:
    """A client of a real server when one is given, else of a double of this module's own."""
    async with KurrentDBDouble() as double:
        connected = AsyncKurrentDBClient(url_from_environment() or double.url)
        await connected.connect()
        yield connected
        await connected.close()


def _name() -> str:
    return f"double-{uuid.uuid4().hex}"


def _event(kind: str = "E") -> NewEvent:
    return NewEvent(type=kind, data=b"{}")


async def test_revisions_are_zero_based_and_positions_sparse_and_increasing(
    client: AsyncKurrentDBClient,
) -> None:
    stream = _name()
    first = await client.append_to_stream(
        stream, events=[_event(), _event()], current_version=StreamState.NO_STREAM
    )
    events = await client.get_stream(stream)
    assert [e.stream_position for e in events] == [0, 1]
    assert events[0].commit_position < events[1].commit_position == first
    assert events[1].commit_position - events[0].commit_position > 1
    assert all(e.commit_position == e.prepare_position for e in events)


async def test_reading_all_forwards_includes_the_start_and_backwards_excludes_it(
    client: AsyncKurrentDBClient,
) -> None:
    stream = _name()
    position = await client.append_to_stream(
        stream, events=[_event(), _event()], current_version=StreamState.NO_STREAM
    )
    forwards = [e async for e in await client.read_all(commit_position=position, limit=1)]
    assert forwards[0].commit_position == position
    backwards = [
        e async for e in await client.read_all(commit_position=position, backwards=True, limit=1)
    ]
    assert backwards[0].commit_position < position


async def test_idempotency_follows_the_servers_checks(client: AsyncKurrentDBClient) -> None:
    stream = _name()
    batch = [_event(), _event()]
    position = await client.append_to_stream(
        stream, events=batch, current_version=StreamState.NO_STREAM
    )
    # A retry with ANY (the id cache) and with NO_STREAM (the index) writes nothing.
    assert await client.append_to_stream(stream, events=batch, current_version=StreamState.ANY) == (
        position
    )
    assert (
        await client.append_to_stream(stream, events=batch, current_version=StreamState.NO_STREAM)
        == position
    )
    # Part of the batch, then something new: refused ("CorruptedIdempotency").
    with pytest.raises(WrongCurrentVersionError):
        await client.append_to_stream(
            stream, events=[batch[1], _event()], current_version=StreamState.ANY
        )
    assert len(await client.get_stream(stream)) == 2


async def test_a_soft_deleted_stream_reads_as_missing_and_is_recreated_by_the_next_append(
    client: AsyncKurrentDBClient,
) -> None:
    stream = _name()
    await client.append_to_stream(stream, events=[_event()], current_version=StreamState.NO_STREAM)
    await client.delete_stream(stream, current_version=0)
    with pytest.raises(NotFoundError):
        await client.get_stream(stream)
    metadata, _ = await client.get_stream_metadata(stream)
    assert metadata["$tb"] == 2**63 - 1
    await client.append_to_stream(stream, events=[_event()], current_version=StreamState.NO_STREAM)
    assert [e.stream_position for e in await client.get_stream(stream)] == [1]


async def test_a_tombstoned_stream_can_be_neither_read_nor_written(
    client: AsyncKurrentDBClient,
) -> None:
    stream = _name()
    await client.append_to_stream(stream, events=[_event()], current_version=StreamState.NO_STREAM)
    await client.tombstone_stream(stream, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeletedError):
        await client.get_stream(stream)
    with pytest.raises(StreamIsDeletedError):
        await client.append_to_stream(stream, events=[_event()], current_version=StreamState.ANY)


async def test_max_count_hides_older_events_from_stream_reads(
    client: AsyncKurrentDBClient,
) -> None:
    stream = _name()
    await client.append_to_stream(
        stream, events=[_event() for _ in range(5)], current_version=StreamState.NO_STREAM
    )
    await client.set_stream_metadata(stream, metadata={"$maxCount": 2})
    assert [e.stream_position for e in await client.get_stream(stream)] == [3, 4]


async def test_a_filtered_subscription_sends_checkpoints_then_caught_up(
    client: AsyncKurrentDBClient,
) -> None:
    start = await client.get_commit_position(filter_exclude=())
    stream = _name()
    await client.append_to_stream(
        stream, events=[_event("Skip") for _ in range(4)], current_version=StreamState.NO_STREAM
    )
    subscription = await client.subscribe_to_all(
        commit_position=start,
        filter_include=["Wanted"],
        include_checkpoints=True,
        include_caught_up=True,
        window_size=2,
        checkpoint_interval_multiplier=1,
        timeout=10,
    )
    seen: list[str] = []
    async for item in subscription:
        seen.append(type(item).__name__)
        if isinstance(item, CaughtUp):
            break
    await subscription.stop()
    assert seen.count(Checkpoint.__name__) >= 2
    assert seen[-1] == CaughtUp.__name__
    assert "RecordedEvent" not in seen


async def test_the_multi_stream_append_is_atomic(client: AsyncKurrentDBClient) -> None:
    taken, fresh = _name(), _name()
    await client.append_to_stream(taken, events=[_event()], current_version=StreamState.NO_STREAM)
    with pytest.raises(WrongCurrentVersionError):
        await client.multi_append_to_stream(
            [
                NewEvents(fresh, [_event()], StreamState.NO_STREAM),
                NewEvents(taken, [_event()], StreamState.NO_STREAM),
            ]
        )
    with pytest.raises(NotFoundError):
        await client.get_stream(fresh)


async def test_append_records_is_atomic_across_streams_and_names_the_failed_check(
    client: AsyncKurrentDBClient,
) -> None:
    """AppendRecords (26.1+): one request, records naming their streams, checks for expected
    states; one failed check and nothing is written."""
    taken, fresh, other = _name(), _name(), _name()
    await client.append_to_stream(taken, events=[_event()], current_version=StreamState.NO_STREAM)
    records = [NewRecord(fresh, "E", b"{}"), NewRecord(other, "E", b"{}")]
    with pytest.raises(ConsistencyChecksFailedError) as refused:
        await client.append_records(
            [*records, NewRecord(taken, "E", b"{}")],
            [
                StreamStateCheck(fresh, StreamState.NO_STREAM),
                StreamStateCheck(taken, StreamState.NO_STREAM),
            ],
        )
    (failure,) = refused.value.failures
    assert failure.check_index == 1
    assert failure.stream_state_failure is not None
    assert failure.stream_state_failure.actual_state == 0
    with pytest.raises(NotFoundError):
        await client.get_stream(fresh)
    result = await client.append_records(records, [StreamStateCheck(fresh, StreamState.NO_STREAM)])
    assert {(s.stream_name, s.stream_position) for s in result.stream_positions} == {
        (fresh, 0),
        (other, 0),
    }
    assert result.commit_position == (await client.get_stream(other))[0].commit_position
    # The same request again is a retry: the original answer, nothing written.
    again = await client.append_records(records, [StreamStateCheck(fresh, StreamState.NO_STREAM)])
    assert again.commit_position == result.commit_position
    assert len(await client.get_stream(fresh)) == 1


async def _abandon_half_way(call_for: Any, first: list[Any]) -> None:
    """Start a client-streaming call, send ``first``, then cancel it while the rest is due."""
    asked_for_more = asyncio.Event()
    never = asyncio.Event()

    async def requests() -> AsyncIterator[Any]:
        for request in first:
            yield request
        asked_for_more.set()  # gRPC asks for the next one once the previous ones are written
        await never.wait()

    call = call_for(requests())
    await asked_for_more.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_request_stream_the_client_abandons_half_way_writes_nothing(
    client: AsyncKurrentDBClient,
) -> None:
    """KurrentDB reads a streamed request with MoveNext, which throws on a reset stream: a
    cancelled Append writes none of the events sent so far, a cancelled multi-stream append
    none of its streams (the double once wrote them, as if the request had ended there)."""
    connection = client.connection
    abandoned: list[str] = []
    for _ in range(5):  # each one is a race the old double lost only most of the time
        batch, first = _name(), _name()
        abandoned += [batch, first]
        options = v1.AppendReq.Options(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=batch.encode()),
            no_stream=shared_pb2.Empty(),
        )
        message = v1.AppendReq.ProposedMessage(
            id=shared_pb2.UUID(string=str(uuid.uuid4())),
            metadata={"type": "E", "content-type": "application/json"},
            data=b"{}",
        )
        await _abandon_half_way(
            connection.streams._stub.Append,
            [v1.AppendReq(options=options), v1.AppendReq(proposed_message=message)],
        )
        record = v2.AppendRecord(
            record_id=str(uuid.uuid4()), schema=v2.SchemaInfo(name="E"), data=b"{}"
        )
        await _abandon_half_way(
            connection.v2streams._stub.AppendSession,
            [v2.AppendRequest(stream=first, records=[record], expected_revision=-1)],
        )
    # A later call on the same connection: the server has seen the resets by then.
    await client.append_to_stream(_name(), events=[_event()], current_version=StreamState.NO_STREAM)
    for stream in abandoned:
        with pytest.raises(NotFoundError):
            await client.get_stream(stream)


def test_the_command_line_says_it_is_a_double_and_binds_loopback() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "eventstore_kurrentdb.double", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
    finally:
        process.terminate()
        _, banner = process.communicate(timeout=10)
    assert listening.startswith("listening: insecure 127.0.0.1:")
    assert "DOUBLE" in banner
    assert "not KurrentDB" in banner
