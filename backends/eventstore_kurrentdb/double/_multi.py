"""``kurrentdb.protocol.v2.streams.StreamsService.AppendSession``: the multi-stream append.

From src/KurrentDB.Api.V2/Modules/Streams/StreamsService.cs (KurrentDB 25.1+): each request
names a stream, its records and an optional expected revision (absent means ANY; -1 NO_STREAM,
-2 ANY, -4 EXISTS); a stream may appear once per session (``StreamAlreadyInAppendSession``);
the whole session is one ``WriteEvents`` to many streams, so it is atomic and every stream is
checked with the rules of ``IndexWriter.CheckCommit`` (see ``_log``). A record's properties are
stored as property metadata, which a v1 read shows as a JSON object of the properties plus
``$schema.name`` and ``$schema.format`` (``EventRecord.SynthesizeMetadataFromProperties``,
src/KurrentDB.Core/Data/EventRecord.cs). Errors carry rich ``google.rpc.Status`` details
(``ApiErrors.cs``): ``StreamRevisionConflictErrorDetails`` (FAILED_PRECONDITION),
``StreamTombstonedErrorDetails`` (FAILED_PRECONDITION), ``AppendTransactionSizeExceeded``
(ABORTED). The response carries the commit position and each stream's last revision.

``AppendRecords`` (KurrentDB 26.1+, the same file): one unary request whose records each name
their stream and whose checks give streams' expected states (a stream no check names is
ANY); the same one ``WriteEvents`` to many streams, so the same rules. A failed check is an
``AppendConsistencyViolationErrorDetails`` (FAILED_PRECONDITION) with the check's index,
expected and actual state (-6 tombstoned, ``ApiErrors.AppendConsistencyViolation``); a record
over ``MaxAppendEventSize`` ``AppendRecordSizeExceeded``, a request over ``MaxAppendSize``
``AppendTransactionSizeExceeded``. The double writes each stream's records together, streams
in the order their first check or record names them (the server keeps the records' own
order; the two differ only for requests that interleave streams), and like ``AppendSession``
reports the first stream that failed, where the server lists every violation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format, struct_pb2
from google.rpc import status_pb2
from kurrentdbclient.protos.v2.streams import errors_pb2, streams_pb2, streams_pb2_grpc

from eventstore_kurrentdb.double._auth import Authenticator
from eventstore_kurrentdb.double._log import (
    ANY,
    AppendTooLarge,
    Log,
    ProposedEvent,
    StreamDeleted,
    StreamWrite,
    WrongExpectedVersion,
)
from eventstore_kurrentdb.double._requests import client_finished


async def _abort_rich(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str, detail: Any
) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code.value[0], message=message, details=[packed])
    await context.abort(
        code, message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
    )


def _metadata_of(record: streams_pb2.AppendRecord) -> bytes:
    props = struct_pb2.Struct()
    for key, value in record.properties.items():
        props.fields[key].CopyFrom(value)
    properties: dict[str, Any] = json_format.MessageToDict(props)
    properties["$schema.name"] = record.schema.name
    properties["$schema.format"] = (
        "Json" if record.schema.format == streams_pb2.SCHEMA_FORMAT_JSON else "Bytes"
    )
    return json.dumps(properties, separators=(",", ":")).encode()


def _size_of(record: streams_pb2.AppendRecord) -> int:
    # AppendRecordExtensions.CalculateSizeOnDisk: data + properties (as a Struct) + schema name.
    props = struct_pb2.Struct()
    for key, value in record.properties.items():
        props.fields[key].CopyFrom(value)
    size: int = props.ByteSize()
    return len(record.data) + size + len(record.schema.name.encode())


def _proposed(record: streams_pb2.AppendRecord) -> ProposedEvent:
    return ProposedEvent(
        event_id=uuid.UUID(record.record_id) if record.record_id else uuid.uuid4(),
        type=record.schema.name,
        data=bytes(record.data),
        metadata=_metadata_of(record),
        is_json=record.schema.format == streams_pb2.SCHEMA_FORMAT_JSON,
    )


#: ``ActualStreamCondition.Tombstoned`` in a consistency violation.
_TOMBSTONED = -6


class MultiStreamServicer(streams_pb2_grpc.StreamsServiceServicer):
    """The v2 Streams service: ``AppendSession`` and ``AppendRecords`` over one :class:`Log`."""

    def __init__(self, log: Log, auth: Authenticator, *, append_records: bool = True) -> None:
        self._log = log
        self._auth = auth
        self._append_records = append_records

    async def _refuse_if_too_large(
        self, context: grpc.aio.ServicerContext[Any, Any], total: int
    ) -> None:
        """Abort the call as the server does once a request's records pass the size limit."""
        if total > self._log.max_append_size:
            await _abort_rich(
                context,
                grpc.StatusCode.ABORTED,
                f"Transaction size ({total}) exceeded the maximum allowed size of "
                f"{self._log.max_append_size}.",
                errors_pb2.AppendTransactionSizeExceededErrorDetails(
                    size=total, max_size=self._log.max_append_size
                ),
            )

    async def AppendSession(  # noqa: N802 (the gRPC method's name)
        self,
        request_iterator: AsyncIterator[streams_pb2.AppendRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> streams_pb2.AppendSessionResponse:
        await self._auth.check(context)
        writes: list[StreamWrite] = []
        seen: set[str] = set()
        total = 0
        async for request in request_iterator:
            if request.stream.lower() in seen:
                await _abort_rich(
                    context,
                    grpc.StatusCode.ABORTED,
                    f"Stream '{request.stream}' already has a different group of messages in "
                    "this session.",
                    errors_pb2.StreamAlreadyInAppendSessionErrorDetails(stream=request.stream),
                )
            seen.add(request.stream.lower())
            events = []
            for record in request.records:
                total += _size_of(record)
                await self._refuse_if_too_large(context, total)
                events.append(_proposed(record))
            expected = request.expected_revision if request.HasField("expected_revision") else ANY
            writes.append(StreamWrite(request.stream, expected, events))
        await client_finished(context)
        if not writes:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Append session started, but no append requests were sent before ending the "
                "session.",
            )
        try:
            # The byte limit was checked above with the v2 sizes; the log's own check uses the
            # v1 sizes of the stored metadata, so it is lifted for this write.
            result = self._log.write(writes, check_size=False)
        except WrongExpectedVersion as error:
            await _abort_rich(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Append failed due to a revision conflict on stream '{error.stream}'. "
                f"Expected revision: {error.expected}. Actual revision: {error.current}.",
                errors_pb2.StreamRevisionConflictErrorDetails(
                    stream=error.stream,
                    expected_revision=error.expected,
                    actual_revision=error.current,
                ),
            )
            raise
        except StreamDeleted as error:
            await _abort_rich(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Stream '{error.stream}' has been tombstoned.",
                errors_pb2.StreamTombstonedErrorDetails(stream=error.stream),
            )
            raise
        except AppendTooLarge:  # pragma: no cover (checked above)
            raise
        return streams_pb2.AppendSessionResponse(
            output=[
                streams_pb2.AppendResponse(stream=w.stream, stream_revision=last)
                for w, last in zip(writes, result.last_revisions, strict=True)
            ],
            position=result.position,
        )

    async def AppendRecords(  # noqa: N802 (the gRPC method's name)
        self,
        request: streams_pb2.AppendRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> streams_pb2.AppendRecordsResponse:
        await self._auth.check(context)
        if not self._append_records:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        if not request.records:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Records must not be empty.")
        # Streams by name, case-insensitively, in the order they are first named.
        index: dict[str, int] = {}
        names: list[str] = []
        expected: list[int] = []
        events: list[list[ProposedEvent]] = []

        def stream_index(name: str, state: int) -> int:
            if name.lower() not in index:
                index[name.lower()] = len(names)
                names.append(name)
                expected.append(state)
                events.append([])
            return index[name.lower()]

        for check in request.checks:
            if check.WhichOneof("type") == "stream_state":
                stream_index(check.stream_state.stream, check.stream_state.expected_state)
        total = 0
        for record in request.records:
            total += _size_of(record)
            await self._refuse_if_too_large(context, total)
            events[stream_index(record.stream, ANY)].append(_proposed(record))
        writes = [
            StreamWrite(name, state, batch)
            for name, state, batch in zip(names, expected, events, strict=True)
        ]
        # The server's WriteEvents carries the call's cancellation token: a call cancelled
        # before its write is not written.
        await client_finished(context)
        try:
            result = self._log.write(writes, check_size=False)
        except (WrongExpectedVersion, StreamDeleted) as error:
            failed = (
                error.index
                if isinstance(error, WrongExpectedVersion)
                else index[error.stream.lower()]
            )
            actual = _TOMBSTONED if isinstance(error, StreamDeleted) else error.current
            violation = errors_pb2.ConsistencyViolation(check_index=failed)
            violation.stream_state.CopyFrom(
                errors_pb2.ConsistencyViolation.StreamStateViolation(
                    stream=names[failed], expected_state=expected[failed], actual_state=actual
                )
            )
            await _abort_rich(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "Failed to append transaction due to consistency violations.",
                errors_pb2.AppendConsistencyViolationErrorDetails(violations=[violation]),
            )
            raise
        return streams_pb2.AppendRecordsResponse(
            revisions=[
                streams_pb2.StreamRevision(stream=write.stream, revision=last)
                for write, last in zip(writes, result.last_revisions, strict=True)
                if write.events
            ],
            position=result.position,
        )
