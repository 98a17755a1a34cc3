"""Two appends made through kurrentdbclient's own channel, where its async API falls short.

- ``Streams.Append``: ``AsyncKurrentDBClient.append_to_stream`` always uses ``BatchAppend``,
  whose answer carries only a commit position. ``Append`` answers the stream's new revision
  and the position (``AppendResp.Success``: ``current_revision`` from the write's last event
  number, ``position`` from its commit position, for a new write and for one the server
  recognised as a retry alike; src/KurrentDB.Core/Services/Transport/Grpc/Streams.Append.cs,
  ``ReturnCommitAt`` in Services/RequestManager/Managers/RequestManagerBase.cs). An append with
  ANY or STREAM_EXISTS then learns its version without a second call.
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
    MaximumAppendSizeExceededError,
    StreamIsDeletedError,
    WrongCurrentVersionError,
)
from kurrentdbclient.protos.v1 import shared_pb2, streams_pb2
from kurrentdbclient.protos.v2.streams import streams_pb2 as v2_streams_pb2
from kurrentdbclient.v2streams import AppendRequestIterator

__all__ = ["Unimplemented", "append", "append_records", "multi_append", "supported"]


class Unimplemented(Exception):  # noqa: N818 (the gRPC status it stands for)
    """The server does not serve this call (an older version)."""


def supported(client: AsyncKurrentDBClient) -> bool:
    """Whether this version of the client has the parts used here (else use its own calls)."""
    connection = client.connection
    return all(
        hasattr(service, "_stub") and hasattr(service, "_metadata")
        for service in (connection.streams, getattr(connection, "v2streams", None))
    ) and hasattr(client, "_call_metadata")


def _call_options(client: AsyncKurrentDBClient, service: Any, timeout: float) -> dict[str, Any]:
    return {
        "timeout": timeout,
        "metadata": service._metadata(client._call_metadata, requires_leader=True),
        "credentials": client._call_credentials,
    }


def _append_requests(
    stream_name: str, current_version: int | ClientStreamState, events: Sequence[NewEvent]
) -> list[streams_pb2.AppendReq]:
    options = streams_pb2.AppendReq.Options(
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=stream_name.encode())
    )
    if isinstance(current_version, int):
        options.revision = current_version
    elif current_version is ClientStreamState.NO_STREAM:
        options.no_stream.CopyFrom(shared_pb2.Empty())
    elif current_version is ClientStreamState.EXISTS:
        options.stream_exists.CopyFrom(shared_pb2.Empty())
    else:
        options.any.CopyFrom(shared_pb2.Empty())
    requests = [streams_pb2.AppendReq(options=options)]
    requests.extend(
        streams_pb2.AppendReq(
            proposed_message=streams_pb2.AppendReq.ProposedMessage(
                id=shared_pb2.UUID(string=str(event.id)),
                metadata={"type": event.type, "content-type": event.content_type},
                custom_metadata=event.metadata,
                data=event.data,
            )
        )
        for event in events
    )
    return requests


def _append_error(error: grpc.RpcError, stream_name: str) -> KurrentDBClientError:
    """``Streams.Append``'s refusals as the client's exceptions for BatchAppend's."""
    if isinstance(error, grpc.aio.AioRpcError):
        code, details = error.code(), error.details() or ""
        # RpcExceptions.MaxAppendSizeExceeded / MaxAppendEventSizeExceeded (INVALID_ARGUMENT),
        # which the client's mapping would leave a retried GrpcError.
        if code == grpc.StatusCode.INVALID_ARGUMENT and "Maximum Append" in details:
            return MaximumAppendSizeExceededError(details)
        # RpcExceptions.StreamDeleted: "Event stream 's' is deleted." (FAILED_PRECONDITION).
        if code == grpc.StatusCode.FAILED_PRECONDITION and details.endswith("is deleted."):
            return StreamIsDeletedError(f"Stream {stream_name!r} is deleted")
    return handle_rpc_error(error)


@retrygrpc
@autoreconnect
async def append(
    client: AsyncKurrentDBClient,
    stream_name: str,
    events: Sequence[NewEvent],
    current_version: int | ClientStreamState,
    timeout: float,  # noqa: ASYNC109 (passed to gRPC as the call deadline)
) -> tuple[int, int | None]:
    """``Streams.Append``: ``(last revision, commit position)`` of the write (the position is
    ``None`` when the server answers none). Raises ``WrongCurrentVersionError`` as the client's
    ``append_to_stream`` does."""
    service = client.connection.streams
    requests = _append_requests(stream_name, current_version, events)
    try:
        response = await service._stub.Append(
            iter(requests), **_call_options(client, service, timeout)
        )
    except grpc.RpcError as error:
        raise _append_error(error, stream_name) from None
    if response.WhichOneof("result") == "success":
        success = response.success
        revision = (
            success.current_revision
            if success.WhichOneof("current_revision_option") == "current_revision"
            else -1
        )
        position = (
            success.position.commit_position
            if success.WhichOneof("position_option") == "position"
            else None
        )
        return revision, position
    wrong = response.wrong_expected_version
    if wrong.WhichOneof("current_revision_option") == "current_revision":
        actual: int | ClientStreamState = wrong.current_revision
        message = f"Stream position of last event is {wrong.current_revision} not {current_version}"
    else:
        actual = ClientStreamState.NO_STREAM
        message = f"Stream {stream_name!r} does not exist"
    raise WrongCurrentVersionError(
        message, stream_name=stream_name, actual_version=actual, expected_version=current_version
    )


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
