"""``event_store.client.streams.Streams``: Read, Append, BatchAppend, Delete, Tombstone.

Behaviour, by the server file it comes from (src/KurrentDB.Core/Services/Transport/):

- ``Grpc/Streams.Read.cs`` picks an enumerator by (stream or $all, count or subscription,
  direction, filter); other combinations are invalid arguments. Events are sent as
  ``ReadEvent`` with ``commit_position`` set; ids as strings or structured, as asked.
- ``Enumerators/Enumerator.ReadStreamForwards.cs`` / ``Backwards``: from a revision inclusive;
  a stream that does not exist answers ``stream_not_found``; a tombstoned one fails with
  ``FAILED_PRECONDITION`` "Event stream '...' is deleted." (``RpcExceptions.StreamDeleted``).
- ``Enumerator.ReadAllForwards.cs``: from a position inclusive; ``ReadAllBackwards``: strictly
  before it. ``$all`` reads never show ``$epoch-information`` (``DefaultAllFilterStrategy`` in
  Storage/ReaderIndex/EventFilter.cs); filters match a regex anywhere (``Regex.IsMatch``) or a
  list of prefixes, on the stream name or the event type. From 25.1 a position that is not a
  record's is refused (``ReadResponseException.InvalidPosition``).
- ``Enumerator.AllSubscription(Filtered).cs`` and ``StreamSubscription.cs``: confirmation first,
  then events strictly after the start point, then (filtered ``$all`` only) a checkpoint when
  catch-up ends, ``caught_up``, and live events; a filtered subscription also sends a
  checkpoint every ``max * checkpointIntervalMultiplier`` events it considered. The double's
  checkpoints carry the position of the last record considered, which is always a valid
  place to resume from (the server may also use the position where its next page starts).
- ``Grpc/Streams.Append.cs``: the request is the options, then one message per event, and is
  written only once the client has finished it (``_requests``). A success answers the
  write's last revision (``no_stream`` if none) and its commit position, for a new write and
  for one recognised as a retry alike (``ReturnCommitAt`` in RequestManagerBase.cs hands
  both the same way); a wrong expected version is an ``AppendResp.wrong_expected_version``
  with the current and the 20.6.0 fields; a deleted stream fails with ``FAILED_PRECONDITION``
  "Event stream '...' is deleted." and an append over ``MaxAppendSize`` with
  ``INVALID_ARGUMENT`` "Maximum Append Size of N Exceeded." (``RpcExceptions``).
- ``Grpc/Streams.BatchAppend.cs``: wrong expected versions are a ``Status`` with
  ``WrongExpectedVersion`` details and code ``ALREADY_EXISTS`` (``Grpc/Status.cs``); deleted
  streams a ``StreamDeleted`` status (code ``NOT_FOUND``); an append over ``MaxAppendSize``
  ``MaximumAppendSizeExceeded`` (``INVALID_ARGUMENT``).
- ``Grpc/Streams.Delete.cs``: wrong expected versions fail with ``FAILED_PRECONDITION`` and the
  message the client parses ("Delete failed due to WrongExpectedVersion. Stream: s, Expected
  version: e, Actual version: a", ``RpcExceptions.WrongExpectedVersion``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from functools import lru_cache
from typing import Any

import grpc
from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from kurrentdbclient.protos.v1 import shared_pb2, status_pb2, streams_pb2, streams_pb2_grpc

from eventstore_kurrentdb.double._auth import Authenticator
from eventstore_kurrentdb.double._log import (
    ANY,
    DELETED_STREAM,
    NO_STREAM,
    STREAM_EXISTS,
    AppendTooLarge,
    Log,
    ProposedEvent,
    Record,
    StreamDeleted,
    StreamWrite,
    WrongExpectedVersion,
)
from eventstore_kurrentdb.double._requests import client_finished

Options = streams_pb2.ReadReq.Options
_EXCLUDED_FROM_ALL = "$epoch-information"
#: ``Enumerator.DefaultReadBatchSize``: the window when a filter asks for ``count``.
_DEFAULT_WINDOW = 32
#: google.rpc.Code values used in BatchAppend statuses.
_CODE_ALREADY_EXISTS = 6
_CODE_NOT_FOUND = 5
_CODE_INVALID_ARGUMENT = 3


def _shared_empty() -> shared_pb2.Empty:
    return shared_pb2.Empty()


def expected_from(which: str | None, revision: int) -> int:
    """A request's expected-revision oneof as the server's internal number."""
    if which in ("revision", "stream_position"):
        return revision
    if which == "no_stream":
        return NO_STREAM
    if which == "stream_exists":
        return STREAM_EXISTS
    return ANY


def proposed(message: Any) -> ProposedEvent:
    """A ``ProposedMessage`` (Append or BatchAppend) as a log event."""
    metadata = dict(message.metadata)
    return ProposedEvent(
        event_id=_uuid_of(message.id),
        type=metadata.get("type", ""),
        data=bytes(message.data),
        metadata=bytes(message.custom_metadata),
        is_json=metadata.get("content-type", "application/json") == "application/json",
    )


def _uuid_of(value: shared_pb2.UUID) -> uuid.UUID:
    if value.WhichOneof("value") == "string":
        return uuid.UUID(value.string)
    most = value.structured.most_significant_bits & (2**64 - 1)
    least = value.structured.least_significant_bits & (2**64 - 1)
    return uuid.UUID(int=(most << 64) | least)


def _uuid_message(value: uuid.UUID, as_string: bool) -> shared_pb2.UUID:
    if as_string:
        return shared_pb2.UUID(string=str(value))
    most, least = value.int >> 64, value.int & (2**64 - 1)
    return shared_pb2.UUID(
        structured=shared_pb2.UUID.Structured(
            most_significant_bits=most - (1 << 64) if most >= 1 << 63 else most,
            least_significant_bits=least - (1 << 64) if least >= 1 << 63 else least,
        )
    )


def read_event(record: Record, as_string: bool) -> streams_pb2.ReadResp:
    """One event of a read or a subscription."""
    content_type = "application/json" if record.is_json else "application/octet-stream"
    recorded = streams_pb2.ReadResp.ReadEvent.RecordedEvent(
        id=_uuid_message(record.event_id, as_string),
        stream_identifier=shared_pb2.StreamIdentifier(stream_name=record.stream.encode()),
        stream_revision=record.revision,
        prepare_position=record.position,
        commit_position=record.position,
        metadata={
            "type": record.type,
            "content-type": content_type,
            "created": str(record.created),
        },
        custom_metadata=record.metadata,
        data=record.data,
    )
    return streams_pb2.ReadResp(
        event=streams_pb2.ReadResp.ReadEvent(event=recorded, commit_position=record.position)
    )


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def record_filter(options: Options) -> Callable[[Record], bool] | None:
    """The filter of a ``$all`` read, or ``None`` without one (``no_filter``)."""
    if options.WhichOneof("filter_option") != "filter":
        return None
    filter_options = options.filter
    on = filter_options.WhichOneof("filter")
    expression = (
        filter_options.stream_identifier if on == "stream_identifier" else filter_options.event_type
    )
    field: Callable[[Record], str] = (
        (lambda r: r.stream) if on == "stream_identifier" else (lambda r: r.type)
    )
    if expression.regex:
        pattern = _regex(expression.regex)
        return lambda r: pattern.search(field(r)) is not None
    prefixes = tuple(expression.prefix)
    return lambda r: field(r).startswith(prefixes)


def _in_all(record: Record) -> bool:
    return record.stream != _EXCLUDED_FROM_ALL


def _checkpoint(position: int) -> streams_pb2.ReadResp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return streams_pb2.ReadResp(
        checkpoint=streams_pb2.ReadResp.Checkpoint(
            commit_position=position, prepare_position=position, timestamp=stamp
        )
    )


def _caught_up(*, position: int | None = None, revision: int | None = None) -> streams_pb2.ReadResp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    caught_up = streams_pb2.ReadResp.CaughtUp(timestamp=stamp)
    if position is not None:
        caught_up.position.CopyFrom(
            streams_pb2.ReadResp.Position(commit_position=position, prepare_position=position)
        )
    if revision is not None and revision >= 0:
        caught_up.stream_revision = revision
    return streams_pb2.ReadResp(caught_up=caught_up)


def _status(code: int, message: str, detail: Any) -> status_pb2.Status:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return status_pb2.Status(code=code, message=message, details=packed)  # type: ignore[arg-type]


def wrong_expected_version_detail(expected: int, current: int) -> shared_pb2.WrongExpectedVersion:
    """``WrongExpectedVersion.Create``: the current revision and what was expected."""
    detail = shared_pb2.WrongExpectedVersion()
    if current < 0:
        detail.current_no_stream.CopyFrom(empty_pb2.Empty())
    else:
        detail.current_stream_revision = current
    if expected >= 0:
        detail.expected_stream_position = expected
    elif expected == NO_STREAM:
        detail.expected_no_stream.CopyFrom(empty_pb2.Empty())
    elif expected == STREAM_EXISTS:
        detail.expected_stream_exists.CopyFrom(empty_pb2.Empty())
    else:
        detail.expected_any.CopyFrom(empty_pb2.Empty())
    return detail


class StreamsServicer(streams_pb2_grpc.StreamsServicer):
    """The Streams service over one :class:`Log`."""

    def __init__(self, log: Log, auth: Authenticator) -> None:
        self._log = log
        self._auth = auth

    # -- Read -------------------------------------------------------------------------

    async def Read(  # noqa: N802 (the gRPC method's name)
        self, request: streams_pb2.ReadReq, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        await self._auth.check(context)
        options = request.options
        as_string = options.uuid_option.WhichOneof("content") == "string"
        backwards = options.read_direction == Options.Backwards
        on_all = options.WhichOneof("stream_option") == "all"
        subscribe = options.WhichOneof("count_option") == "subscription"
        filtered = options.WhichOneof("filter_option") == "filter"
        if (subscribe and backwards) or (filtered and not on_all):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid combination of options")
        if on_all and options.all.WhichOneof("all_option") == "position":
            position = options.all.position.commit_position
            if not self._log.is_valid_position(position):
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "Trying to read from an invalid position."
                )
        if not on_all:
            name = options.stream.stream_identifier.stream_name.decode()
            if self._log.is_tombstoned(name):
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION, f"Event stream '{name}' is deleted."
                )
        if subscribe:
            responses = (
                self._subscribe_all(options, as_string)
                if on_all
                else self._subscribe_stream(options, as_string)
            )
            async for response in responses:
                yield response
            return
        limit = options.count
        if on_all:
            for response in self._read_all(options, backwards, limit, as_string):
                yield response
        else:
            for response in self._read_stream(options, backwards, limit, as_string):
                yield response

    def _read_stream(
        self, options: Options, backwards: bool, limit: int, as_string: bool
    ) -> Iterator[streams_pb2.ReadResp]:
        stream = options.stream
        name = stream.stream_identifier.stream_name.decode()
        records = self._log.visible_records(name)
        if records is None:
            yield streams_pb2.ReadResp(
                stream_not_found=streams_pb2.ReadResp.StreamNotFound(
                    stream_identifier=stream.stream_identifier
                )
            )
            return
        which = stream.WhichOneof("revision_option")
        if backwards:
            start = stream.revision if which == "revision" else DELETED_STREAM
            chosen = [r for r in reversed(records) if r.revision <= start]
        else:
            start = stream.revision if which == "revision" else 0
            chosen = [r for r in records if r.revision >= start]
            if which == "end":
                chosen = []
        for record in chosen[:limit]:
            yield read_event(record, as_string)

    def _read_all(
        self, options: Options, backwards: bool, limit: int, as_string: bool
    ) -> Iterator[streams_pb2.ReadResp]:
        which = options.all.WhichOneof("all_option")
        allowed = record_filter(options)
        log = self._log
        if backwards:
            stop = (
                log.index_from(options.all.position.commit_position)
                if which == "position"
                else len(log)
            )
            if which == "start":
                stop = 0
            indexes: range = range(stop - 1, -1, -1)
        else:
            start = (
                log.index_from(options.all.position.commit_position) if which == "position" else 0
            )
            if which == "end":
                start = len(log)
            indexes = range(start, len(log))
        sent = 0
        for index in indexes:
            if sent >= limit:
                return
            record = log.record_at(index)
            if not _in_all(record) or (allowed is not None and not allowed(record)):
                continue
            sent += 1
            yield read_event(record, as_string)

    async def _subscribe_all(
        self, options: Options, as_string: bool
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        log = self._log
        yield streams_pb2.ReadResp(
            confirmation=streams_pb2.ReadResp.SubscriptionConfirmation(
                subscription_id=str(uuid.uuid4())
            )
        )
        which = options.all.WhichOneof("all_option")
        last_considered: int | None = None
        if which == "position":
            last_considered = options.all.position.commit_position
            index = log.index_after(last_considered)
        elif which == "end":
            index = len(log)
            last_considered = log.record_at(index - 1).position if index else None
        else:
            index = 0
        allowed = record_filter(options)
        interval = 0
        if allowed is not None:
            window = options.filter.max if options.filter.WhichOneof("window") == "max" else 0
            interval = max(
                1, (window or _DEFAULT_WINDOW) * max(1, options.filter.checkpointIntervalMultiplier)
            )
        # Starting at (or past) the end goes live at once, without a catch-up checkpoint.
        catching_up = index < len(log)
        considered = 0
        caught_up = False
        while True:
            changed = log.changed()
            for record in log.iter_from(index):
                index += 1
                considered += 1
                last_considered = record.position
                if _in_all(record) and (allowed is None or allowed(record)):
                    yield read_event(record, as_string)
                if interval and considered >= interval:
                    considered %= interval
                    yield _checkpoint(record.position)
            if not caught_up:
                if catching_up and interval and last_considered is not None:
                    yield _checkpoint(last_considered)
                yield _caught_up(position=last_considered)
                caught_up = True
            await changed.wait()

    async def _subscribe_stream(
        self, options: Options, as_string: bool
    ) -> AsyncIterator[streams_pb2.ReadResp]:
        log = self._log
        stream = options.stream
        name = stream.stream_identifier.stream_name.decode()
        yield streams_pb2.ReadResp(
            confirmation=streams_pb2.ReadResp.SubscriptionConfirmation(
                subscription_id=str(uuid.uuid4())
            )
        )
        which = stream.WhichOneof("revision_option")
        if which == "revision":
            after = stream.revision
        elif which == "end":
            after = log.last_revision(name)
        else:
            after = -1
        caught_up = False
        while True:
            changed = log.changed()
            records = log.visible_records(name) or []
            for record in records:
                if record.revision > after and record.revision != DELETED_STREAM:
                    yield read_event(record, as_string)
                    after = record.revision
            if not caught_up:
                yield _caught_up(revision=after)
                caught_up = True
            if log.is_tombstoned(name):
                return
            await changed.wait()

    # -- Append -----------------------------------------------------------------------

    async def Append(  # noqa: N802
        self,
        request_iterator: AsyncIterator[streams_pb2.AppendReq],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> streams_pb2.AppendResp:
        await self._auth.check(context)
        name = ""
        expected = ANY
        events: list[ProposedEvent] = []
        async for request in request_iterator:
            if request.WhichOneof("content") == "options":
                options = request.options
                name = options.stream_identifier.stream_name.decode()
                expected = expected_from(
                    options.WhichOneof("expected_stream_revision"), options.revision
                )
            else:
                events.append(proposed(request.proposed_message))
        await client_finished(context)
        try:
            result = self._log.write([StreamWrite(name, expected, events)])
        except WrongExpectedVersion as error:
            # Both the current fields and the 20.6.0 ones, as Streams.Append.cs fills them.
            wrong = streams_pb2.AppendResp.WrongExpectedVersion()
            if error.current < 0:
                wrong.current_no_stream.CopyFrom(_shared_empty())
                wrong.no_stream_20_6_0.CopyFrom(_shared_empty())
            else:
                wrong.current_revision = error.current
                wrong.current_revision_20_6_0 = error.current
            if expected >= 0:
                wrong.expected_revision = expected
                wrong.expected_revision_20_6_0 = expected
            elif expected == NO_STREAM:
                wrong.expected_no_stream.CopyFrom(_shared_empty())
                wrong.expected_revision_20_6_0 = 2**64 - 1  # ulong.MaxValue
            elif expected == STREAM_EXISTS:
                wrong.expected_stream_exists.CopyFrom(_shared_empty())
                wrong.stream_exists_20_6_0.CopyFrom(_shared_empty())
            else:
                wrong.expected_any.CopyFrom(_shared_empty())
                wrong.any_20_6_0.CopyFrom(_shared_empty())
            return streams_pb2.AppendResp(wrong_expected_version=wrong)
        except StreamDeleted:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"Event stream '{name}' is deleted."
            )
        except AppendTooLarge as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Maximum Append Size of {error.limit} Exceeded."
            )
        success = streams_pb2.AppendResp.Success(
            position=streams_pb2.AppendResp.Position(
                commit_position=result.position, prepare_position=result.position
            )
        )
        last = result.last_revisions[0]
        if last < 0:
            success.no_stream.CopyFrom(_shared_empty())
        else:
            success.current_revision = last
        return streams_pb2.AppendResp(success=success)

    async def BatchAppend(  # noqa: N802
        self,
        request_iterator: AsyncIterator[streams_pb2.BatchAppendReq],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[streams_pb2.BatchAppendResp]:
        await self._auth.check(context)
        pending: dict[str, tuple[streams_pb2.BatchAppendReq.Options, list[ProposedEvent]]] = {}
        async for request in request_iterator:
            key = request.correlation_id.SerializeToString().hex()
            if request.HasField("options"):
                pending[key] = (request.options, [])
            if key not in pending:
                continue
            options, events = pending[key]
            events.extend(proposed(m) for m in request.proposed_messages)
            if not request.is_final:
                continue
            del pending[key]
            yield self._batch_append(request.correlation_id, options, events)

    def _batch_append(
        self,
        correlation_id: shared_pb2.UUID,
        options: streams_pb2.BatchAppendReq.Options,
        events: list[ProposedEvent],
    ) -> streams_pb2.BatchAppendResp:
        name = options.stream_identifier.stream_name.decode()
        which = options.WhichOneof("expected_stream_position")
        expected = expected_from(which, options.stream_position)
        response = streams_pb2.BatchAppendResp(
            correlation_id=correlation_id, stream_identifier=options.stream_identifier
        )
        try:
            result = self._log.write([StreamWrite(name, expected, events)])
        except WrongExpectedVersion as error:
            response.error.CopyFrom(
                _status(
                    _CODE_ALREADY_EXISTS,
                    "WrongExpectedVersion",
                    wrong_expected_version_detail(expected, error.current),
                )
            )
            return response
        except StreamDeleted:
            response.error.CopyFrom(
                _status(
                    _CODE_NOT_FOUND,
                    "StreamDeleted",
                    shared_pb2.StreamDeleted(stream_identifier=options.stream_identifier),
                )
            )
            return response
        except AppendTooLarge as error:
            response.error.CopyFrom(
                _status(
                    _CODE_INVALID_ARGUMENT,
                    "MaximumAppendSizeExceeded",
                    shared_pb2.MaximumAppendSizeExceeded(maxAppendSize=error.limit),
                )
            )
            return response
        last = result.last_revisions[0]
        if last < 0:
            response.success.no_stream.CopyFrom(empty_pb2.Empty())
        else:
            response.success.current_revision = last
        response.success.position.CopyFrom(
            shared_pb2.AllStreamPosition(
                commit_position=result.position, prepare_position=result.position
            )
        )
        return response

    # -- Delete and Tombstone ---------------------------------------------------------

    async def Delete(  # noqa: N802
        self, request: streams_pb2.DeleteReq, context: grpc.aio.ServicerContext[Any, Any]
    ) -> streams_pb2.DeleteResp:
        await self._auth.check(context)
        options = request.options
        name = options.stream_identifier.stream_name.decode()
        expected = expected_from(options.WhichOneof("expected_stream_revision"), options.revision)
        position = await self._delete(context, "Delete", name, expected, hard=False)
        return streams_pb2.DeleteResp(
            position=streams_pb2.DeleteResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def Tombstone(  # noqa: N802
        self, request: streams_pb2.TombstoneReq, context: grpc.aio.ServicerContext[Any, Any]
    ) -> streams_pb2.TombstoneResp:
        await self._auth.check(context)
        options = request.options
        name = options.stream_identifier.stream_name.decode()
        expected = expected_from(options.WhichOneof("expected_stream_revision"), options.revision)
        position = await self._delete(context, "Delete", name, expected, hard=True)
        return streams_pb2.TombstoneResp(
            position=streams_pb2.TombstoneResp.Position(
                commit_position=position, prepare_position=position
            )
        )

    async def _delete(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        operation: str,
        name: str,
        expected: int,
        *,
        hard: bool,
    ) -> int:
        try:
            if hard:
                return self._log.tombstone(name, expected)
            return self._log.soft_delete(name, expected)
        except WrongExpectedVersion as error:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{operation} failed due to WrongExpectedVersion. Stream: {name}, "
                f"Expected version: {expected}, Actual version: {error.current}",
                trailing_metadata=(
                    ("exception", "wrong-expected-version"),
                    ("stream-name", name),
                    ("expected-version", str(expected)),
                    ("actual-version", str(error.current)),
                ),
            )
        except StreamDeleted:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"Event stream '{name}' is deleted."
            )
        raise AssertionError("unreachable")  # pragma: no cover
