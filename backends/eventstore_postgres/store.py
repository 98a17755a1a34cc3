"""``postgresql://`` and ``postgres://``: the PostgreSQL adapter, on asyncpg.

Global order that never skips, without serialising writers
==========================================================

A ``bigserial`` position is drawn when a row is inserted, but becomes visible when its
transaction commits: transaction A draws 1, B draws 2 and commits first, a reader sees 2 and
moves its checkpoint past 1, which then appears behind it and is never delivered (measured: 920
events missed out of 17,682 under 32 writers, docs/backends/postgres.md; Marten #4952, #4964).
Locking the table per append (the ``eventsourcing`` library) or taking a global advisory lock
fixes that by making writers take turns, at a third of the throughput.

This adapter uses the transaction id instead. Every row stores ``pg_current_xact_id()`` (a
64-bit ``xid8``, which never wraps) in ``tx_id``, and a ``seq`` from an identity column that
orders the rows of one transaction. The position is the pair ``(tx_id, seq)``. ``read_all``
only returns rows with ``tx_id < pg_snapshot_xmin(pg_current_snapshot())``: the snapshot's
xmin is the oldest transaction still running, so every transaction below it has finished and
no row with a smaller ``tx_id`` can ever appear later. Writers never wait for each other
(except on the same stream); readers wait, at worst, for the oldest open writing transaction.

The checkpoint must be the *pair*: a transaction takes its xid at its first write and may draw
``seq`` values later than a transaction with a bigger xid (dba.stackexchange q/342896), so
``seq`` alone is not monotonic in commit order, and ``tx_id`` alone is not unique.

Costs, documented in docs/backends/postgres.md: any long-running writing transaction in the
cluster (even on another table or database) holds every reader back until it ends; a logical
dump/restore into a new cluster resets xids (positions are not portable across restores).

Idempotency and expected versions
=================================

``UNIQUE(event_id)`` makes idempotency permanent. An append is one statement (see ``_sql``);
when the expected version does not hold it inserts nothing, and when an event id exists it
fails with a unique violation. In both cases the adapter reads back the stored events with
the batch's ids, each with the first and last versions of the batch it was written in (the
events of one append share its ``tx_id``, so no column needs to record them), and lets the
core decide (:func:`idempotent_result`): a retry of the very same batch returns the original
result, any other reuse (part of a batch included) is a :class:`DuplicateEventIdError`, and
with no id found it is a :class:`ConcurrencyError` carrying the stream's actual version.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar

import asyncpg
from pydantic import ConfigDict, Field, field_validator

from eventstore_core.adapter import (
    MAX_VERSION,
    Capabilities,
    EventFilter,
    EventStore,
    EventStoreError,
    ExpectedVersion,
    InvalidEventError,
    ParsedUrl,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    StoreOptions,
    Written,
    expected_range,
    serialization,
)
from eventstore_postgres import _migrations
from eventstore_postgres._dsn import LibpqOptions, build_dsn
from eventstore_postgres._errors import (
    CONNECTION_ERRORS,
    is_unavailable,
    unavailable,
    unexpected,
)
from eventstore_postgres._events import PG_EPOCH, StoredEvent
from eventstore_postgres._faults import connect_whole
from eventstore_postgres._gate import GateMonitor
from eventstore_postgres._json import jsonb_text
from eventstore_postgres._notify import Listener, Waker
from eventstore_postgres._pool import ConnectionPool
from eventstore_postgres._sql import Statements

__all__ = ["PostgresEventStore", "PostgresOptions"]

_T = TypeVar("_T")

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresOptions(LibpqOptions):
    """Options of the PostgreSQL adapter (query string or keywords of ``es.connect``)."""

    db_schema: str = Field(default="eventstore", alias="schema")
    """The schema holding the store's tables; created by ``setup()``. Several stores can share
    a database in different schemas."""
    pool_min_size: int = Field(default=1, ge=0, le=1000)
    """Connections opened at ``open()`` and kept."""
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    """Most connections the pool holds (a LISTEN connection comes on top, once subscribed)."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to establish a connection, or to wait for a free one in the pool."""
    command_timeout: float | None = Field(default=30.0, gt=0)
    """Seconds a statement may take before it is cancelled (``BackendUnavailableError``)."""
    sslmode: SslMode | None = None
    """libpq's ``sslmode``; unset uses asyncpg's default (``prefer``)."""
    sslrootcert: str | None = None
    """CA certificate file for ``verify-ca`` / ``verify-full``."""
    sslcert: str | None = None
    """Client certificate file."""
    sslkey: str | None = None
    """Client key file."""
    statement_cache_size: int = Field(default=100, ge=0)
    """Prepared statements cached per connection; 0 behind pgbouncer in transaction mode."""
    application_name: str = "eventstore-core"
    """Shown in ``pg_stat_activity``."""
    notify: bool = True
    """Send a wake-up (``pg_notify``) after commits, for subscribers in other processes."""
    notify_debounce: float = Field(default=0.01, ge=0, le=10)
    """Least seconds between two wake-ups sent by this store (commits in between coalesce)."""
    xid_gate_warning: float | None = Field(default=5.0, gt=0)
    """Log a warning naming the backend when a transaction open this many seconds holds
    subscribers behind the xid gate (checked while subscriptions are open); None: never."""

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("db_schema")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        if not _SCHEMA_NAME.match(value):
            raise ValueError(
                "schema must be a plain identifier: a letter or _, then letters, digits or _,"
                " at most 50 characters"
            )
        return value


async def _init_connection(conn: Any) -> None:
    # jsonb in binary format is a version byte (1) then the JSON text: the core hands us
    # encoded JSON bytes and decodes bytes itself, so no str round trip happens on either side.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )
    # timestamptz in binary format is int64 microseconds since 2000-01-01 UTC. asyncpg turns
    # each into a datetime through timedelta arithmetic, which measured 2 µs a row: a quarter
    # of read_all. Our rows keep the integer, and StoredEvent builds the datetime when
    # ``recorded_at`` is read.
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=_encode_timestamptz,
        decoder=_decode_timestamptz,
        format="binary",
    )


#: Microseconds since PostgreSQL's epoch; a C callable, so no Python frame per value.
_decode_timestamptz = functools.partial(int.from_bytes, byteorder="big", signed=True)


def _encode_timestamptz(value: datetime) -> bytes:
    # Not on any hot path (no statement sends a timestamp); here for completeness.
    micros = (value - PG_EPOCH) // timedelta(microseconds=1)
    return micros.to_bytes(8, "big", signed=True)


def _encode_jsonb(value: bytes) -> bytes:
    # jsonb_text: floats of 1e16 and more must not come back as ints (see _json).
    return b"\x01" + jsonb_text(value)


#: Drops the version byte. An itemgetter, not a function: asyncpg calls the decoder for every
#: jsonb value it reads, and a C callable costs no Python frame (measured: read_all went from
#: 6.3 to 4.8 µs per event for the fetch alone, two jsonb columns per row).
_decode_jsonb = operator.itemgetter(slice(1, None))


def _terminate(conn: Any) -> None:
    conn.terminate()


def _version_of(row: Any) -> int:
    version: int = row[2]
    return version


#: Rows of our own table are valid by construction: nothing is validated, and each event reads
#: its fields from its row when asked (see _events).
_event = StoredEvent.from_row


class PostgresEventStore(EventStore):
    """An event store in a PostgreSQL database (13 or later), through asyncpg.

    ``postgresql://user:password@host:5432/database?schema=eventstore&pool_max_size=10``
    """

    Options: ClassVar[type[StoreOptions]] = PostgresOptions
    capabilities = Capabilities(
        concurrency="multi-writer",
        idempotency="permanent",
        unique_event_ids="store",
        global_order="total",
        live_subscriptions="push",
        max_event_bytes=4 * 1024 * 1024,
        max_append_events=10_000,
        max_snapshot_bytes=64 * 1024 * 1024,
        shared_across_processes=True,
        durable=True,
    )
    #: Positions are ``(tx_id, seq)``: a token of another shape is refused at the call.
    position_parts = 2

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        assert isinstance(options, PostgresOptions)
        self._options: PostgresOptions = options
        self._schema = options.db_schema
        quoted = f'"{self._schema}"'
        self._quoted_schema = quoted
        self._sql = Statements.for_schema(quoted)
        self._channel = f"eventstore_{self._schema}"
        self._dsn = build_dsn(url, options)
        self._pool: ConnectionPool | None = None
        self._waker: Waker | None = None
        self._listener: Listener | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "dsn": self._dsn,
            "timeout": self._options.connect_timeout,
            "command_timeout": self._options.command_timeout,
            "statement_cache_size": self._options.statement_cache_size,
            "server_settings": {"application_name": self._options.application_name},
        }

    async def _new_connection(self) -> Any:
        return await connect_whole(self._connect_and_init, _terminate)

    async def _connect_and_init(self) -> Any:
        conn = await asyncpg.connect(**self._connect_kwargs())
        try:
            await _init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _open(self) -> None:
        options = self._options
        pool = ConnectionPool(
            self._new_connection,
            min_size=options.pool_min_size,
            max_size=options.pool_max_size,
            acquire_timeout=options.connect_timeout,
        )
        try:
            await pool.open()
        except Exception as error:
            raise self._map(error, "open", sent=False) from error
        self._pool = pool
        if options.notify:
            self._waker = Waker(self._send_wakeup, options.notify_debounce)

    async def _close(self) -> None:
        if self._waker is not None:
            await self._waker.close()
            self._waker = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await pool.close()
            except Exception:
                pool.terminate()

    async def _setup(self) -> None:
        """Create the schema, tables and indexes (numbered migrations, under an advisory lock).

        Idempotent, and safe when several processes run it at the same moment.
        """

        async def run(conn: Any) -> None:
            await _migrations.migrate(conn, self._schema, self._quoted_schema)

        await self._with_connection(run, "setup", write=False, retry=True)

    async def _watch(self) -> None:
        # Other processes' commits arrive as a NOTIFY wake-up on a dedicated connection, which
        # reconnects by itself after a server restart; the core's fallback poll covers the gap.
        # The core runs this only while subscriptions exist, so leaving the last subscription
        # frees the LISTEN connection (the contract: leaving `async with` frees everything).
        listener = Listener(self._listen_connection, self._channel, self._wake_local)
        self._listener = listener
        tasks = [listener.run()]
        threshold = self._options.xid_gate_warning
        if threshold is not None:
            gate = GateMonitor(
                self._fetch_rows, f"{self._quoted_schema}.events", self._schema, threshold
            )
            tasks.append(gate.run())
        try:
            await asyncio.gather(*tasks)
        finally:
            self._listener = None

    async def _fetch_rows(self, statement: str) -> list[Any]:
        return await self._fetch("xid gate check", statement)

    async def _listen_connection(self) -> Any:
        kwargs = self._connect_kwargs()
        kwargs["statement_cache_size"] = 0
        return await connect_whole(lambda: asyncpg.connect(**kwargs), _terminate)

    def _wake_local(self) -> None:
        self._notifier.notify()

    async def _send_wakeup(self) -> None:
        if self._pool is None:
            return

        async def notify(conn: Any) -> None:
            await conn.execute("SELECT pg_notify($1, '')", self._channel)

        await self._with_connection(notify, "notify", write=False, retry=False)

    # -- running statements ----------------------------------------------------------------

    def _map(
        self, error: BaseException, what: str, *, sent: bool, lost: bool = False
    ) -> EventStoreError:
        # ``lost``: an earlier attempt of this call sent a write and lost the answer.
        if isinstance(error, EventStoreError):
            return error
        if is_unavailable(error) or lost:
            return unavailable(error, what, sent=sent, lost=lost)
        return unexpected(error, what)

    async def _with_connection(
        self,
        work: Callable[[Any], Awaitable[_T]],
        what: str,
        *,
        write: bool,
        retry: bool = True,
    ) -> _T:
        """Run ``work`` on a pooled connection, mapping driver errors.

        A pooled connection may have died while idle (server restart, failover); the first use
        finds out. Such a failure is retried once on a fresh connection: reads are harmless to
        repeat, and so are appends, which are idempotent by event id (a batch that did commit
        is recognised and its original result returned).
        """
        pool = self._pool
        if pool is None:
            raise EventStoreError(f"{self!r} is not open")
        attempts = 2 if retry else 1
        # Once a write was sent and its answer lost, its outcome stays unknown whatever
        # happens next: a retry that cannot even reconnect must still say maybe_applied (a
        # caller who trusted False and retried with new ids would write the events twice).
        lost = False
        for attempt in range(attempts):
            try:
                conn = await pool.acquire()
            except Exception as error:
                raise self._map(error, what, sent=False, lost=lost) from error
            # A connection interrupted mid-call (cancelled, timed out, lost) may still be running
            # the statement on the server: it is closed, not reused. A server-reported error (a
            # unique violation, say) leaves it idle and usable.
            reusable = False
            try:
                result = await work(conn)
                reusable = True
                return result
            except CONNECTION_ERRORS as error:
                # The others likely died with it (server restart): retry on a fresh connection.
                pool.discard_idle()
                lost = lost or write
                if attempt + 1 < attempts:
                    continue
                raise self._map(error, what, sent=write, lost=lost) from error
            except asyncpg.PostgresError as error:
                reusable = not is_unavailable(error)
                raise self._map(error, what, sent=write, lost=lost) from error
            except Exception as error:
                raise self._map(error, what, sent=write, lost=lost) from error
            finally:
                pool.release(conn, reusable=reusable)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- writing ---------------------------------------------------------------------------

    #: Test seam, for the conformance suite's out-of-order-commit test only (its hook in
    #: tests/commit_holds.py sets it on one store): called with the stream id of each append;
    #: an awaitable it returns is awaited inside the append's transaction, after the rows are
    #: inserted (positions drawn) and before COMMIT. Unset, it costs one attribute read.
    _hold_commit: Callable[[str], Awaitable[None] | None] | None = None

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        lo, hi = expected_range(expected_version)
        sql = self._sql
        args: tuple[Any, ...]
        if len(events) == 1:
            # The common case (one command, one event) has its own, cheaper statement.
            e = events[0]
            statement = sql.append_one_from_zero if lo == 0 else sql.append_one_existing
            args = (
                stream_id, lo, hi, e.id, e.type, e.data, e.metadata, e.correlation_id,
                e.causation_id,
            )  # fmt: skip
        else:
            statement = sql.append_from_zero if lo == 0 else sql.append_existing
            args = (
                stream_id,
                lo,
                hi,
                len(events),
                [e.id for e in events],
                [e.type for e in events],
                [e.data for e in events],
                [e.metadata for e in events],
                [e.correlation_id for e in events],
                [e.causation_id for e in events],
            )

        async def insert(conn: Any) -> list[Any] | None:
            hold = None if self._hold_commit is None else self._hold_commit(stream_id)
            try:
                if hold is None:
                    rows: list[Any] = await conn.fetch(statement, *args)
                else:  # the test seam: positions drawn, commit held
                    async with conn.transaction():
                        rows = await conn.fetch(statement, *args)
                        await hold
            except asyncpg.UniqueViolationError:
                # An id of the batch exists (events_event_id_key): the statement rolled back.
                return None
            return rows

        rows = await self._with_connection(insert, "append", write=True)
        if rows:
            if self._waker is not None:
                self._waker.request()
            last = rows[-1] if len(rows) == 1 else max(rows, key=_version_of)
            return Written(version=last[2], position=Position.of(last[0], last[1]))
        # Nothing was written (an id exists, or the version is out of range): say what the
        # database holds, read in one snapshot, and let the core decide.
        existing, actual = await self._conflict_state(stream_id, events)
        bounds = {row[4]: (row[11], row[12]) for row in existing}
        return Refused(actual, [_event(row) for row in existing], bounds)

    async def _conflict_state(
        self, stream_id: str, events: Sequence[PreparedEvent]
    ) -> tuple[list[Any], int]:
        """The stored events with the batch's ids, and the stream's version, in one snapshot.

        Each row of stored events ends with the first and last versions of its batch.
        """

        async def state(conn: Any) -> tuple[list[Any], int]:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                existing: list[Any] = await conn.fetch(
                    self._sql.events_by_id, [e.id for e in events]
                )
                actual = await conn.fetchval(self._sql.stream_version, stream_id)
            return existing, int(actual)

        return await self._with_connection(state, "append", write=False)

    # -- reading ---------------------------------------------------------------------------

    async def _fetch(self, what: str, statement: str, *args: Any) -> list[Any]:
        async def run(conn: Any) -> list[Any]:
            rows: list[Any] = await conn.fetch(statement, *args)
            return rows

        return await self._with_connection(run, what, write=False)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        if backwards:
            start = MAX_VERSION if from_version is None else from_version
            rows = await self._fetch(
                "read_stream", self._sql.read_stream_backward, stream_id, start, limit
            )
        else:
            start = 1 if from_version is None else from_version
            rows = await self._fetch(
                "read_stream", self._sql.read_stream_forward, stream_id, start, limit
            )
        return [_event(row) for row in rows]

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        if after is None:
            tx_id, seq = 0, 0
        elif len(after.parts) == 2:
            tx_id, seq = after.parts
        else:
            raise InvalidEventError(
                f"{after} is not a position of a PostgreSQL store (expected 'tx_id:seq')",
                field="after",
            )
        sql = self._sql
        types = None if filter is None else filter.event_types
        cats = None if filter is None else filter.categories
        if (types is not None and not types) or (cats is not None and not cats):
            return []  # an empty list of alternatives matches nothing
        if types is None and cats is None:
            rows = await self._fetch("read_all", sql.read_all, tx_id, seq, limit)
        elif cats is None:
            assert types is not None
            rows = await self._fetch(
                "read_all", sql.read_all_by_type, tx_id, seq, limit, list(dict.fromkeys(types))
            )
        elif types is None:
            rows = await self._fetch(
                "read_all", sql.read_all_by_category, tx_id, seq, limit, list(dict.fromkeys(cats))
            )
        else:
            rows = await self._fetch(
                "read_all",
                sql.read_all_by_type_and_category,
                tx_id,
                seq,
                limit,
                list(dict.fromkeys(types)),
                list(cats),
            )
        return [_event(row) for row in rows]

    async def _stream_version(self, stream_id: str) -> int:
        rows = await self._fetch("stream_version", self._sql.stream_version, stream_id)
        return int(rows[0][0])

    # -- checkpoints and snapshots -----------------------------------------------------------

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        await self._fetch("save_checkpoint", self._sql.save_checkpoint, name, str(position))

    async def _load_checkpoint(self, name: str) -> Position | None:
        rows = await self._fetch("load_checkpoint", self._sql.load_checkpoint, name)
        return Position.parse(rows[0][0]) if rows else None

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        await self._fetch(
            "save_snapshot",
            self._sql.save_snapshot,
            snapshot.stream_id,
            snapshot.version,
            snapshot.type,
            data,
        )

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        rows = await self._fetch("load_snapshot", self._sql.load_snapshot, stream_id)
        if not rows:
            return None
        row = rows[0]
        return Snapshot(
            stream_id=row[0], version=row[1], type=row[2], data=serialization.loads(row[3])
        )
