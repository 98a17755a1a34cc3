"""Appends made through kurrentdbclient's own channel, where its async API falls short.

- ``Streams.BatchAppend``: ``AsyncKurrentDBClient.append_to_stream`` makes this call and keeps
  only the commit position of its answer. The answer also carries the stream's new revision
  (``BatchAppendResp.Success.Completed(commit, prepare, LastEventNumbers.Single)``, for a new
  write and for one the server recognised as a retry alike;
  src/KurrentDB.Core/Services/Transport/Grpc/Streams.BatchAppend.cs and BatchAppendResp.cs).
  The same call made here keeps both: an append with ANY or STREAM_EXISTS learns its version
  without a second call, whatever its size. The request is the client's own
  (``_construct_batch_append_req``), as are its refusals (``_convert_batch_append_resp``).
- ``StreamsService.AppendSession`` (the 25.1+ multi-stream append):
  ``AsyncKurrentDBClient.multi_append_to_stream`` catches ``asyncio.CancelledError`` and raises
  an exception in its place: ``CancelledByClientError``, which the client's ``retrygrpc``
  answers by sending the whole append again half a second later (the caller's cancellation
  is lost), or, once its request iterator has run to its end, the ``StopIteration`` it
  recorded there, which Python turns into ``RuntimeError('coroutine raised StopIteration')``.
  Here a cancellation stays a cancellation.

- ``StreamsService.AppendRecords`` (KurrentDB 26.1+): the same atomic multi-stream write as
  ``AppendSession`` (one ``WriteEvents`` with the same checks, StreamsService.cs), in one
  message: each record names its stream, each stream's expected state is a consistency
  check. ``AppendSession`` sends one message per stream, and strict mode has a stream per
  event. A server without it answers ``UNIMPLEMENTED`` (:class:`Unimplemented`, raised
  before the client's retry would send it again).

All go through the client's ``autoreconnect`` and ``retrygrpc`` decorators, so a lost
connection is re-established, and an append re-sent once after a gRPC error, exactly as for
the client's own calls (hence ``maybe_applied=True`` on every write failure, see ``_errors``).
Errors become the client's exceptions, as its own calls raise them. The stubs, call metadata
and credentials are the client's (``connection.streams``, ``connection.v2streams``), so TLS,
credentials, ``requires-leader`` and the connection name are the same as its own calls'.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from kurrentdbclient import AsyncKurrentDBClient, NewEvent
from kurrentdbclient import StreamState as ClientStreamState
from kurrentdbclient.asyncio_client import autoreconnect, retrygrpc
from kurrentdbclient.common import handle_rpc_error
from kurrentdbclient.events import NewEvents
from kurrentdbclient.exceptions import (
    ConsistencyChecksFailedError,
    KurrentDBClientError,
    WrongCurrentVersionError,
)
from kurrentdbclient.protos.v2.streams import streams_pb2 as v2_streams_pb2
from kurrentdbclient.v2streams import AppendRequestIterator

__all__ = ["Unimplemented", "append_records", "batch_append", "multi_append", "supported"]


class Unimplemented(Exception):  # noqa: N818 (the gRPC status it stands for)
    """The server does not serve this call (an older version)."""


def supported(client: AsyncKurrentDBClient) -> bool:
    """Whether this version of the client has the parts used here (else use its own calls)."""
    connection = client.connection
    return (
        all(
            hasattr(service, "_stub") and hasattr(service, "_metadata")
            for service in (connection.streams, getattr(connection, "v2streams", None))
        )
        and all(
            hasattr(connection.streams, name)
            for name in ("_construct_batch_append_req", "_convert_batch_append_resp")
        )
        and hasattr(client, "_call_metadata")
    )


def _call_options(client: AsyncKurrentDBClient, service: Any, timeout: float) -> dict[str, Any]:
    return {
        "timeout": timeout,
        "metadata": service._metadata(client._call_metadata, requires_leader=True),
        "credentials": client._call_credentials,
    }


@retrygrpc
@autoreconnect
async def batch_append(
    client: AsyncKurrentDBClient,
    stream_name: str,
    events: Sequence[NewEvent],
    current_version: int | ClientStreamState,
    timeout: float,  # noqa: ASYNC109 (passed to gRPC as the call deadline)
) -> tuple[int | None, int]:
    """``Streams.BatchAppend`` as the client's ``append_to_stream`` makes it, answering
    ``(last revision, commit position)`` (the revision is ``None`` if the server names none).
    Raises ``WrongCurrentVersionError`` and the rest as ``append_to_stream`` does."""
    service = client.connection.streams
    request = service._construct_batch_append_req(
        stream_name=stream_name,
        current_version=current_version,
        events=events,
        timeout=timeout,
        correlation_id=uuid.uuid4(),
    )
    call = service._stub.BatchAppend(iter([request]), **_call_options(client, service, timeout))
    try:
        async for response in call:
            if response.WhichOneof("result") != "success":
                service._convert_batch_append_resp(response, stream_name, current_version)
                break  # pragma: no cover (the conversion of an error raises it)
            success = response.success
            revision = (
                success.current_revision
                if success.WhichOneof("current_revision_option") == "current_revision"
                else None
            )
            position: int = success.position.commit_position
            return revision, position
    except grpc.RpcError as error:
        raise handle_rpc_error(error) from None
    finally:
        # One request, one answer: end the call (the server holds a batch stream open).
        call.cancel()
    raise KurrentDBClientError("BatchAppend ended without an answer")


@retrygrpc
@autoreconnect
async def multi_append(
    client: AsyncKurrentDBClient,
    events: Iterable[NewEvents],
    timeout: float,  # noqa: ASYNC109 (passed to gRPC as the call deadline)
) -> int:
    """``StreamsService.AppendSession``: the commit position of the atomic multi-stream write."""
    service = client.connection.v2streams
    # Built before anything is sent: a request that cannot be built fails here, whole.
    requests = _session_requests(events)
    try:
        response = await service._stub.AppendSession(
            iter(requests), **_call_options(client, service, timeout)
        )
    except grpc.RpcError as error:
        raise handle_rpc_error(error) from None
    position: int = response.position
    return position


def _session_requests(events: Iterable[NewEvents]) -> list[v2_streams_pb2.AppendRequest]:
    """One ``AppendSession`` request per stream, built by the client's own iterator.

    The iterator is asked exactly once per stream and never run to its end: it keeps the
    ``StopIteration`` that ends it (``errored``), whose traceback holds its frame and so the
    iterator itself, a cycle that kept every request's payload alive until the cyclic garbage
    collector ran (13 MB of garbage per 8 MB appended, seen by the suite's stalled-subscriber
    test as memory growth whenever a collection fell in one phase and not the other).
    """
    streams = list(events)
    iterator = AppendRequestIterator(streams)
    return [next(iterator) for _ in streams]


def _records_request(events: Iterable[NewEvents]) -> v2_streams_pb2.AppendRecordsRequest:
    """The multi-stream append as one AppendRecords request: the AppendSession requests' own
    records, each naming its stream, and each stream's expected revision as a check (in the
    same order, so the server writes the streams in the same order)."""
    request = v2_streams_pb2.AppendRecordsRequest()
    for session_request in _session_requests(events):
        request.checks.add().stream_state.CopyFrom(
            v2_streams_pb2.ConsistencyCheck.StreamStateCheck(
                stream=session_request.stream, expected_state=session_request.expected_revision
            )
        )
        for record in session_request.records:
            record.stream = session_request.stream
            request.records.append(record)
    return request


@retrygrpc
@autoreconnect
async def append_records(
    client: AsyncKurrentDBClient,
    events: Iterable[NewEvents],
    timeout: float,  # noqa: ASYNC109 (passed to gRPC as the call deadline)
) -> int:
    """``StreamsService.AppendRecords``: the commit position of the atomic multi-stream write.
    A failed check raises ``WrongCurrentVersionError`` for its stream, as ``multi_append``
    does; a server without the call raises :class:`Unimplemented`."""
    service = client.connection.v2streams
    request = _records_request(events)
    try:
        response = await service._stub.AppendRecords(
            request, **_call_options(client, service, timeout)
        )
    except grpc.RpcError as error:
        if isinstance(error, grpc.aio.AioRpcError) and (
            error.code() == grpc.StatusCode.UNIMPLEMENTED
        ):
            raise Unimplemented(error.details() or "AppendRecords") from None
        translated = handle_rpc_error(error)
        if isinstance(translated, ConsistencyChecksFailedError) and translated.failures:
            failure = translated.failures[0].stream_state_failure
            raise WrongCurrentVersionError(
                str(translated),
                stream_name=failure.stream_name if failure else "",
                actual_version=failure.actual_state if failure else None,
                expected_version=failure.expected_state if failure else None,
            ) from None
        raise translated from None
    position: int = response.position
    return position
