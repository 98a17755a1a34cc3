"""``kurrentdb://``, ``kurrentdb+discover://``, ``esdb://``, ``esdb+discover://``: KurrentDB.

The adapter runs on kurrentdbclient's :class:`~kurrentdbclient.AsyncKurrentDBClient` (the
maintained successor of esdbclient; it serves EventStoreDB 23.10/24.10 and KurrentDB 25+).

What the server gives, and what the adapter adds
================================================

- **Order and positions.** ``$all`` is one totally ordered log; an event's position is its
  ``(commit, prepare)`` pair. Reading ``$all`` forwards from a position includes the event at
  it, so a page "after P" reads from P and drops P. Subscriptions start strictly after P.
- **Versions.** Revisions are 0-based (see ``_codec``). Every append is one BatchAppend
  call, whose answer carries the stream's new revision and the position. An append with ANY /
  STREAM_EXISTS makes that call itself (``_rpc``) to keep the revision, which the client's
  ``append_to_stream`` drops: its version comes in the same call. Any other goes through
  ``append_to_stream``, and its version follows from its exact or NO_STREAM expectation.
  (With a client too old for ``_rpc``, an append with ANY reads its last event back.)
- **Cancellation** stays cancellation: strict mode's multi-stream append is made through
  ``_rpc`` too, because the client's own turns a cancelled call into a re-sent append or a
  raw ``RuntimeError``.
- **Live subscriptions** are the server's catch-up subscriptions (``_push``): events, then
  ``caught_up``, then live events as they commit, filtered on the server.
- **Idempotency, default mode** (``idempotency=server``): what the server does, declared as
  it is. A retry with ANY or STREAM_EXISTS is recognised only while its ids are in the
  server's bounded in-memory cache (8 MiB, gone on restart); with NO_STREAM or an exact
  version it is recognised for good, but a retry sent with the stream's *new* version, or to
  another stream, is written again; an id reused in a new event of the same stream may be
  taken for a retry and silently dropped. Hence ``idempotency="window"``,
  ``unique_event_ids="none"``.
- **Idempotency, strict mode** (``idempotency=strict``, KurrentDB 25.1+): every append is one
  multi-stream append (``AppendRecords``, one message, on 26.1+; ``AppendSession``, one
  message per stream, on 25.x) that also writes, per event, a marker event into its
  own stream ``$es-id-<event id>`` expecting NO_STREAM. The append is atomic, so a stored id
  always has its marker; a reused id makes the marker's stream exist and the whole append is
  refused (the server's strong check reads the index, so this holds forever, across restarts
  and across streams). The marker records where its batch went; the adapter reads the stored
  events back and the core tells a retry of the same batch (the original result) from any other
  reuse (:class:`DuplicateEventIdError`). Declared ``idempotency="permanent"``,
  ``unique_event_ids="store"``. The cost (measured in docs/backends/kurrentdb.md): one more
  event and one more stream per event.
- **Snapshots and checkpoints** live in the library's reserved ``$es-snapshot-<stream>`` and
  ``$es-checkpoint-<name>`` streams, bounded with ``$maxCount``; as system streams they never
  appear in a user's reads.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from kurrentdbclient import AsyncKurrentDBClient, NewEvent
from kurrentdbclient import RecordedEvent as ClientRecordedEvent
from kurrentdbclient import StreamState as ClientStreamState
from kurrentdbclient.connection_spec import (
    VALID_CONNECTION_QUERY_STRING_FIELDS,
    ConnectionSpec,
)
from kurrentdbclient.events import CaughtUp as ClientCaughtUp
from kurrentdbclient.events import NewEvents
from kurrentdbclient.exceptions import NotFoundError, WrongCurrentVersionError
from pydantic import Field, model_validator

from eventstore_core.adapter import (
    CAUGHT_UP,
    Capabilities,
    CaughtUp,
    ConfigurationError,
    EventFilter,
    EventStore,
    EventStoreError,
    ExpectedVersion,
    ParsedUrl,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    StoreOptions,
    StreamState,
    Written,
    serialization,
)
from eventstore_kurrentdb import _rpc
from eventstore_kurrentdb._codec import (
    CHECKPOINT_PREFIX,
    MARKER_PREFIX,
    SNAPSHOT_PREFIX,
    client_event,
    client_expected,
    client_side_filter,
    decode_snapshot,
    encode_snapshot,
    recorded_event,
    server_filter,
    strict_client_event,
    version_of,
    wanted,
)
from eventstore_kurrentdb._errors import translated
from eventstore_kurrentdb._reads import guarded, last_event, read_events

__all__ = ["KurrentDBEventStore", "KurrentDBOptions"]

#: The server's default ``MaxAppendSize`` up to KurrentDB 25.0 is 1 MiB for a whole append (an
#: event counts ``data + metadata + 2 * len(type)``). Leave room for the metadata keys the
#: adapter adds and for the type counted twice.
MAX_EVENT_BYTES: Final = 1024 * 1024 - 16 * 1024
MAX_APPEND_EVENTS: Final = 1000
MAX_SNAPSHOT_BYTES: Final = MAX_EVENT_BYTES
#: The same limit for the whole append, refused by the core before sending. In strict mode a
#: marker event (an empty event of a short type) rides along with every event: allow it 128 B.
MAX_APPEND_BYTES: Final = MAX_EVENT_BYTES
STRICT_MAX_APPEND_BYTES: Final = MAX_EVENT_BYTES - 128 * (MAX_APPEND_EVENTS // 2)
#: How many events the library's own streams keep (``$maxCount``).
CHECKPOINT_MAX_COUNT: Final = 2
SNAPSHOT_MAX_COUNT: Final = 3
_MARKER_TYPE: Final = "$es-id"
_CHECKPOINT_TYPE: Final = "$es-checkpoint"
_SNAPSHOT_TYPE: Final = "$es-snapshot"
#: Marker event ids are derived from what makes a batch the same batch, so that only a retry
#: of the very same batch finds all its markers already written.
_MARKER_NAMESPACE: Final = uuid.UUID("6b1f1c1e-5d0a-4f38-9a57-0c2f4f7d1e01")
_CLIENT_FIELDS: Final = {name.upper(): name for name in VALID_CONNECTION_QUERY_STRING_FIELDS}
_SNAPSHOT_RETRIES: Final = 10
#: How far back the default mode looks for a refused batch's ids (see _refused_in_window).
_TAIL_WINDOW: Final = 100


class KurrentDBOptions(StoreOptions):
    """Options of ``kurrentdb://`` stores.

    The client's own connection-string fields (``tls``, ``tlsVerifyCert``, ``nodePreference``,
    ``connectionName``, ``defaultDeadline``, ``keepAliveInterval``, ``tlsCaFile`` ...) may be
    given in the URL too; they are passed to kurrentdbclient unchanged, and only they are.
    """

    idempotency: Literal["server", "strict"] = "server"
    """``server``: the server's own idempotency (a window); ``strict``: permanent, store-wide
    uniqueness of event ids through marker streams (KurrentDB 25.1+)."""
    timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds each call to the server may take."""
    client_options: dict[str, str] = Field(default_factory=dict)
    """kurrentdbclient's connection-string fields, gathered from the URL's query string."""

    @model_validator(mode="before")
    @classmethod
    def _gather_client_options(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        mine = dict(data)
        client = dict(mine.pop("client_options", None) or {})
        for key in list(mine):
            name = _CLIENT_FIELDS.get(str(key).upper())
            if name is not None:
                client[name] = str(mine.pop(key))
        mine["client_options"] = client
        return mine


class KurrentDBEventStore(EventStore):
    """The event store on KurrentDB / EventStoreDB."""

    Options: ClassVar[type[StoreOptions]] = KurrentDBOptions
    options: KurrentDBOptions
    capabilities = Capabilities(
        concurrency="multi-writer",
        idempotency="window",
        unique_event_ids="none",
        global_order="total",
        live_subscriptions="push",
        max_event_bytes=MAX_EVENT_BYTES,
        max_append_events=MAX_APPEND_EVENTS,
        max_append_bytes=MAX_APPEND_BYTES,
        max_snapshot_bytes=MAX_SNAPSHOT_BYTES,
    )
    #: Positions are (commit, prepare): a token of another shape is refused at the call.
    position_parts = 2

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        assert isinstance(options, KurrentDBOptions)
        self._strict = options.idempotency == "strict"
        if self._strict:
            self.capabilities = Capabilities(
                concurrency="multi-writer",
                idempotency="permanent",
                unique_event_ids="store",
                global_order="total",
                live_subscriptions="push",
                max_event_bytes=STRICT_MAX_APPEND_BYTES,
                # A marker rides along with every event.
                max_append_events=MAX_APPEND_EVENTS // 2,
                max_append_bytes=STRICT_MAX_APPEND_BYTES,
                max_snapshot_bytes=MAX_SNAPSHOT_BYTES,
            )
        self._parsed_url = url
        self._client_uri = _client_uri(url, options.client_options)
        try:
            # The client's own parser, now, so that a bad URL (or a TLS one without the user
            # and password the client requires) fails in connect, with no I/O.
            ConnectionSpec(self._client_uri)
        except ValueError as error:
            raise _invalid_url(url, error) from None
        self._client: AsyncKurrentDBClient | None = None
        self._timeout = options.timeout
        self._bounded: set[str] = set()
        #: Whether the client's channel serves the adapter's own calls (``_rpc``).
        self._rpc = False
        #: Whether the server may serve AppendRecords (until it answers UNIMPLEMENTED).
        self._append_records = True

    # -- lifecycle -------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            self._client = AsyncKurrentDBClient(self._client_uri)
        except ValueError as error:
            raise _invalid_url(self._parsed_url, error) from None
        with translated(writing=False, what=f"connecting to {self.url}"):
            await self._client.connect()
        self._rpc = _rpc.supported(self._client)

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _setup(self) -> None:
        # Streams need no schema; the library's own streams are bounded when first written.
        return None

    @property
    def client(self) -> AsyncKurrentDBClient:
        """The underlying kurrentdbclient client (the store must be open)."""
        if self._client is None:
            raise RuntimeError("the store is not open")
        return self._client

    # -- appending -------------------------------------------------------------------

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected: ExpectedVersion
    ) -> Written | Refused:
        if self._strict:
            return await self._append_strict(stream_id, events, expected)
        client_events = [client_event(event) for event in events]
        current_version = client_expected(expected)
        try:
            with translated(writing=True, what=f"appending to {stream_id!r}"):
                if self._rpc and _version_unknown(expected):
                    # The same BatchAppend as the client's, keeping the revision it answers:
                    # no read-back for ANY.
                    revision, commit = await _rpc.batch_append(
                        self.client, stream_id, client_events, current_version, self._timeout
                    )
                    if revision is not None:
                        return Written(version=revision + 1, position=Position.of(commit, commit))
                    return await self._written(stream_id, commit, expected, len(events))
                commit = await self.client.append_to_stream(
                    stream_id,
                    events=client_events,
                    current_version=current_version,
                    timeout=self._timeout,
                )
        except WrongCurrentVersionError as error:
            return await self._refused_in_window(
                stream_id, events, version_of(error.actual_version)
            )
        return await self._written(stream_id, commit, expected, len(events))

    async def _refused_in_window(
        self, stream_id: str, events: Sequence[PreparedEvent], actual: int
    ) -> Refused:
        """A refusal in the default mode: is it a retry the server did not recognise?

        The server refuses a retry whose expected version points elsewhere (a revision the
        batch is not at, or past the end), and a batch whose head its id cache knows. Look for
        the batch's ids among the stream's latest events (a window, like the server's cache):
        found in order and contiguous, they are taken as the batch written before, so the core
        returns the original result; found in part, the core raises DuplicateEventIdError.
        Without a record of batches this cannot tell a whole earlier batch from part of a
        larger one, which is why the default mode declares ``unique_event_ids="none"``.
        """
        ids = {event.id for event in events}
        tail = await self._read_stream_page(
            stream_id, None, backwards=True, limit=max(_TAIL_WINDOW, 4 * len(events))
        )
        found = sorted((event for event in tail if event.id in ids), key=lambda e: e.version)
        if not found:
            return Refused(actual=actual)
        contiguous = found[-1].version - found[0].version + 1 == len(found)
        bounds = (
            {event.id: (found[0].version, found[-1].version) for event in found}
            if contiguous
            else {}
        )
        return Refused(actual=actual, existing=found, batch_bounds=bounds)

    async def _append_strict(
        self, stream_id: str, events: Sequence[PreparedEvent], expected: ExpectedVersion
    ) -> Written | Refused:
        count = len(events)
        # Markers first: a refused append reports the first stream that failed, and an id
        # already stored must win over a wrong expected version. The user's events come last,
        # so the position the append answers is that of the batch's last event.
        requests = [
            NewEvents(
                stream_name=MARKER_PREFIX + str(event.id),
                events=[
                    NewEvent(
                        type=_MARKER_TYPE,
                        data=serialization.dumps(
                            {"stream": stream_id, "index": index, "count": count}
                        ),
                        id=_marker_id(stream_id, event, index, count),
                    )
                ],
                current_version=ClientStreamState.NO_STREAM,
            )
            for index, event in enumerate(events)
        ]
        requests.append(
            NewEvents(
                stream_name=stream_id,
                events=[strict_client_event(event) for event in events],
                current_version=client_expected(expected),
            )
        )
        try:
            with translated(writing=True, what=f"appending to {stream_id!r}"):
                if self._rpc:
                    # Not the client's multi_append_to_stream: it turns a cancellation into a
                    # re-sent append or a RuntimeError (see _rpc).
                    commit = await self._multi_append(requests)
                else:
                    commit = await self.client.multi_append_to_stream(
                        requests, timeout=self._timeout
                    )
        except WrongCurrentVersionError:
            # Whichever stream refused (a marker: an id is stored; the user's stream: its
            # version), read what is stored: the refusal does not always name its stream
            # (after the client re-sent the append), and guessing from the error turned a
            # stored batch into a lost race that ended as ConcurrencyError.
            return await self._refused_by_ids(stream_id, events)
        return await self._written(stream_id, commit, expected, count)

    async def _multi_append(self, requests: list[NewEvents]) -> int:
        """One atomic multi-stream write: AppendRecords (one message, 26.1+) where the server
        has it, else AppendSession (one message per stream)."""
        if self._append_records:
            try:
                return await _rpc.append_records(self.client, requests, self._timeout)
            except _rpc.Unimplemented:
                self._append_records = False
        return await _rpc.multi_append(self.client, requests, self._timeout)

    async def _written(
        self, stream_id: str, commit: int, expected: ExpectedVersion, count: int
    ) -> Written:
        """The result of a successful append that answered ``commit``."""
        if isinstance(expected, int) and not isinstance(expected, bool):
            return Written(version=expected + count, position=Position.of(commit, commit))
        if expected is StreamState.NO_STREAM:
            return Written(version=count, position=Position.of(commit, commit))
        # ANY or STREAM_EXISTS: the answer has no revision; read the event at the position.
        with translated(writing=True, what="reading back an appended event"):
            response = await self.client.read_all(
                commit_position=commit, limit=1, filter_exclude=(), timeout=self._timeout
            )
            found = await read_events(response)
            if not found or found[0].commit_position != commit:
                # Should a server answer a position after its last event (a commit record),
                # the batch's last event is the stream's last one before it.
                response = await self.client.read_all(
                    commit_position=commit,
                    backwards=True,
                    limit=1,
                    filter_include=[_escape_stream(stream_id)],
                    filter_by_stream_name=True,
                    timeout=self._timeout,
                )
                found = await read_events(response)
        if not found:
            raise translated_missing(commit)
        event = found[0]
        return Written(
            version=event.stream_position + 1,
            position=Position.of(event.commit_position or 0, event.prepare_position or 0),
        )

    async def _refused_by_ids(self, stream_id: str, events: Sequence[PreparedEvent]) -> Refused:
        """An id of the batch is stored: find the stored events, and their batches' bounds."""
        with translated(writing=False, what="reading id markers"):
            markers = await asyncio.gather(*(self._marker(event.id) for event in events))
        ids = {event.id for event in events}
        existing: dict[uuid.UUID, RecordedEvent] = {}
        bounds: dict[uuid.UUID, tuple[int, int]] = {}
        batches: dict[int, list[RecordedEvent]] = {}
        for marker in markers:
            if marker is None:
                continue
            data = serialization.loads(marker.data)
            start = marker.commit_position or 0
            if start not in batches:
                # The batch's events follow its markers in the same transaction, and are the
                # next events of their stream in the log.
                batches[start] = await self._batch_after(
                    str(data["stream"]), start, int(data["count"])
                )
            batch = batches[start]
            if not batch:
                continue
            for stored in batch:
                if stored.id in ids:
                    existing[stored.id] = stored
                    bounds[stored.id] = (batch[0].version, batch[-1].version)
        actual = await self._stream_version(stream_id)
        return Refused(actual=actual, existing=list(existing.values()), batch_bounds=bounds)

    async def _marker(self, event_id: uuid.UUID) -> ClientRecordedEvent | None:
        try:
            response = await self.client.read_stream(
                MARKER_PREFIX + str(event_id), limit=1, timeout=self._timeout
            )
            found = await read_events(response)
        except NotFoundError:
            return None
        return found[0] if found else None

    async def _batch_after(self, stream: str, position: int, count: int) -> list[RecordedEvent]:
        pattern = _escape_stream(stream)
        with translated(writing=False, what="reading a stored batch"):
            response = await self.client.read_all(
                commit_position=position,
                limit=count,
                filter_include=[pattern],
                filter_by_stream_name=True,
                timeout=self._timeout,
            )
            return [recorded_event(event) for event in await read_events(response)]

    # -- reading ---------------------------------------------------------------------

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        revision = None if from_version is None else max(from_version - 1, 0)
        try:
            with translated(writing=False, what=f"reading {stream_id!r}"):
                response = await self.client.read_stream(
                    stream_id,
                    stream_position=revision,
                    backwards=backwards,
                    limit=limit,
                    timeout=self._timeout,
                )
                return [recorded_event(event) for event in await read_events(response)]
        except NotFoundError:
            return []

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        pattern, by_stream_name = server_filter(filter)
        types = client_side_filter(filter)
        page: list[RecordedEvent] = []
        last = after.parts if after is not None else None
        # A stream-name filter already keeps system streams out on the server: only a type
        # filter, or types checked here, needs a look at each event.
        look = not by_stream_name or types is not None
        # Events the adapter drops itself (system streams under a type filter, types under a
        # category filter) would make a page short, which ends a read: read on until full.
        while len(page) < limit:
            want = limit - len(page)
            asked = want + (1 if last is not None else 0)
            seen = 0
            with translated(writing=False, what="reading $all"):
                response = await self.client.read_all(
                    commit_position=None if last is None else last[0],
                    limit=asked,
                    filter_include=[pattern],
                    filter_by_stream_name=by_stream_name,
                    timeout=self._timeout,
                )
                async for event in guarded(response):
                    seen += 1
                    here = (event.commit_position or 0, event.prepare_position or 0)
                    if last is not None and here <= last:
                        continue
                    last = here
                    if not look or wanted(event, types):
                        page.append(recorded_event(event, here))
            if seen < asked:
                break
        return page

    async def _stream_version(self, stream_id: str) -> int:
        try:
            with translated(writing=False, what=f"reading {stream_id!r}"):
                last = await last_event(self.client, stream_id, self._timeout)
        except NotFoundError:
            return 0
        return last.stream_position + 1 if last is not None else 0

    async def _push(
        self, after: Position | None, filter: EventFilter | None
    ) -> AsyncIterator[RecordedEvent | CaughtUp]:
        pattern, by_stream_name = server_filter(filter)
        types = client_side_filter(filter)
        with translated(writing=False, what="subscribing to $all"):
            # Bounded: the client confirms the subscription on a response of its own, which a
            # reconnect at that moment leaves waiting for good (see _reads).
            async with asyncio.timeout(self._timeout):
                subscription = await self.client.subscribe_to_all(
                    commit_position=None if after is None else after.parts[0],
                    filter_include=[pattern],
                    filter_by_stream_name=by_stream_name,
                    include_caught_up=True,
                )
        try:
            with translated(writing=False, what="subscription to $all"):
                async for item in guarded(subscription):
                    if isinstance(item, ClientCaughtUp):
                        yield CAUGHT_UP
                    elif type(item) is ClientRecordedEvent and wanted(item, types):
                        yield recorded_event(item)
        finally:
            with translated(writing=False, what="stopping a subscription"):
                await subscription.stop()

    # -- checkpoints and snapshots -----------------------------------------------------

    async def _bound(self, stream: str, max_count: int) -> None:
        """Set ``$maxCount`` on one of the library's streams, once per stream and process."""
        if stream in self._bounded:
            return
        with translated(writing=True, what=f"setting the metadata of {stream!r}"):
            # Read first: a process that starts again finds it set and writes nothing.
            # What client.get_stream_metadata answers, through a guarded read (see _reads).
            try:
                last = await last_event(self.client, "$$" + stream, self._timeout)
            except NotFoundError:
                last = None
            metadata: dict[str, Any] = {} if last is None else serialization.loads(last.data)
            version: int | ClientStreamState = (
                ClientStreamState.NO_STREAM if last is None else last.stream_position
            )
            if metadata.get("$maxCount") != max_count:
                try:
                    await self.client.set_stream_metadata(
                        stream,
                        metadata={**metadata, "$maxCount": max_count},
                        current_version=version,
                        timeout=self._timeout,
                    )
                except WrongCurrentVersionError:
                    return  # another process set it just now; look again next time
        self._bounded.add(stream)

    async def _last_of(self, stream: str) -> ClientRecordedEvent | None:
        try:
            with translated(writing=False, what=f"reading {stream!r}"):
                return await last_event(self.client, stream, self._timeout)
        except NotFoundError:
            return None

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        stream = CHECKPOINT_PREFIX + name
        await self._bound(stream, CHECKPOINT_MAX_COUNT)
        event = NewEvent(
            type=_CHECKPOINT_TYPE, data=serialization.dumps({"position": str(position)})
        )
        with translated(writing=True, what=f"saving checkpoint {name!r}"):
            await self.client.append_to_stream(
                stream, events=[event], current_version=ClientStreamState.ANY, timeout=self._timeout
            )

    async def _load_checkpoint(self, name: str) -> Position | None:
        last = await self._last_of(CHECKPOINT_PREFIX + name)
        if last is None:
            return None
        return Position.parse(str(serialization.loads(last.data)["position"]))

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        stream = SNAPSHOT_PREFIX + snapshot.stream_id
        await self._bound(stream, SNAPSHOT_MAX_COUNT)
        event_data = encode_snapshot(snapshot.version, snapshot.type, data)
        for _ in range(_SNAPSHOT_RETRIES):
            # Append only over a snapshot of lower or equal version, expecting the revision
            # just read: an older snapshot saved later never replaces a newer one, and the
            # stream's last event is always the answer to load_snapshot.
            last = await self._last_of(stream)
            if last is not None and decode_snapshot(last.data)[0] > snapshot.version:
                return
            expected: int | ClientStreamState = (
                ClientStreamState.NO_STREAM if last is None else last.stream_position
            )
            try:
                with translated(writing=True, what=f"saving a snapshot of {snapshot.stream_id!r}"):
                    await self.client.append_to_stream(
                        stream,
                        events=[NewEvent(type=_SNAPSHOT_TYPE, data=event_data)],
                        current_version=expected,
                        timeout=self._timeout,
                    )
            except WrongCurrentVersionError:
                continue
            return

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        last = await self._last_of(SNAPSHOT_PREFIX + stream_id)
        if last is None:
            return None
        version, snapshot_type, data = decode_snapshot(last.data)
        return Snapshot(stream_id=stream_id, version=version, type=snapshot_type, data=data)


def _version_unknown(expected: ExpectedVersion) -> bool:
    """Whether an append's new version does not follow from its expected version."""
    return expected is StreamState.ANY or expected is StreamState.STREAM_EXISTS


def _marker_id(stream_id: str, event: PreparedEvent, index: int, count: int) -> uuid.UUID:
    return uuid.uuid5(_MARKER_NAMESPACE, f"{event.id}/{stream_id}/{event.type}/{index}/{count}")


def _escape_stream(stream: str) -> str:
    # .NET regex syntax accepts Python's escapes of punctuation.
    return re.escape(stream)


def translated_missing(commit: int) -> EventStoreError:
    """An append succeeded but no event is at the position it answered (never expected)."""
    return EventStoreError(f"no event at position {commit} right after appending it")


def _invalid_url(url: ParsedUrl, error: ValueError) -> ConfigurationError:
    """The client's complaint about a URL, with the password masked (it quotes the URL)."""
    message = str(error)
    if url.password:
        message = message.replace(url.password, "***")
    return ConfigurationError(f"invalid KurrentDB URL {url.redacted}: {message}")


def _client_uri(url: ParsedUrl, client_options: dict[str, str]) -> str:
    """The URL for kurrentdbclient: scheme, credentials and hosts as given, the library's own
    options removed (the client refuses query fields it does not know)."""
    parts = urlsplit(url.url)
    query = urlencode(client_options)
    return urlunsplit((parts.scheme, parts.netloc, "", query, ""))
