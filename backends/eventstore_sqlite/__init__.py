"""``sqlite:///path.db``: the embedded default backend, on aiosqlite.

Why this is safe with several writer processes on one file:

- Every append runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write
  lock before reading the stream's version. Writers therefore serialise (across processes too,
  waiting up to ``busy_timeout``), so the expected-version check and the insert are atomic.
- The global position is the ``AUTOINCREMENT`` rowid, drawn while the write lock is held.
  Commits happen in lock order, so positions become visible in increasing order and a reader
  can never see position N+1 before N: the out-of-order-commit skip that plagues PostgreSQL
  ``BIGSERIAL`` designs cannot happen here.
- WAL mode lets readers run concurrently with the writer, each query on a consistent snapshot.
- Other processes' commits are noticed by polling ``PRAGMA data_version`` (a counter SQLite
  bumps when another connection commits) every ``watch_interval`` seconds, only while a
  subscription is open; the poll is a cheap in-memory check, no table is read.

aiosqlite runs each connection in its own thread, so no call blocks the event loop. Every
statement goes through ``execute_fetchall``: a cursor left unfinished keeps its statement open
and with it a lock that makes other connections wait for the whole ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from uuid import UUID

import aiosqlite
from pydantic import Field

from eventstore_core.adapter import (
    MAX_VERSION,
    BackendUnavailableError,
    Capabilities,
    ConfigurationError,
    CounterWatcher,
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
    category_of,
    expected_range,
    serialization,
)

__all__ = ["SQLiteEventStore", "SQLiteOptions"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    correlation_id TEXT,
    causation_id   TEXT,
    recorded_at    INTEGER NOT NULL,
    -- the versions of the first and last events of the append that wrote this event: a
    -- retry is idempotent only as the whole batch (idempotent_result)
    batch_first    INTEGER NOT NULL,
    batch_last     INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_by_type ON events (type, position);
CREATE INDEX IF NOT EXISTS events_by_category ON events (category, position);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    data      BLOB    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = (
    "stream_id, version, position, event_id, type, data, metadata, "
    "correlation_id, causation_id, recorded_at"
)


class SQLiteOptions(StoreOptions):
    """Options of the SQLite backend (query string or keywords)."""

    busy_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a writer waits for another process's write lock before giving up."""
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL survives power loss; NORMAL is faster and may lose the last commits on power loss."""
    watch_interval: float = Field(default=0.05, gt=0, le=60)
    """Seconds between checks for other processes' commits while a subscription is open."""


class SQLiteEventStore(EventStore):
    """An event store in one SQLite file, shared safely by several processes."""

    Options: ClassVar[type[StoreOptions]] = SQLiteOptions
    capabilities = Capabilities(
        concurrency="multi-writer",
        idempotency="permanent",
        unique_event_ids="store",
        global_order="total",
        live_subscriptions="poll",
        max_event_bytes=16 * 1024 * 1024,
        max_append_events=10_000,
    )
    #: A position is one sequence number: a token of another shape is refused at the call.
    position_parts = 1

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        assert isinstance(options, SQLiteOptions)
        self._options = options
        if url.host:
            raise ConfigurationError(
                f"sqlite URLs take a path, not a host ({url.redacted!r}): "
                "use sqlite:///relative.db or sqlite:////absolute/path.db"
            )
        path = url.path[1:] if url.path.startswith("/") else url.path
        if not path or path == ":memory:":
            raise ConfigurationError(
                "sqlite needs a file path (sqlite:///./eventstore.db); "
                "for an in-memory store use memory://"
            )
        self.path = Path(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=self._options.busy_timeout
            )
        except sqlite3.Error as error:
            raise BackendUnavailableError(f"cannot open SQLite file {self.path}: {error}") from None
        try:
            async with self._sqlite_errors():
                busy_ms = int(self._options.busy_timeout * 1000)
                await conn.execute_fetchall(f"PRAGMA busy_timeout = {busy_ms}")
                await conn.execute_fetchall(f"PRAGMA synchronous = {self._options.synchronous}")
                # Reading the schema fails at once on a file that is not a SQLite database.
                await conn.execute_fetchall("SELECT count(*) FROM sqlite_schema")
        except BaseException:
            # Close the connection's thread too, or the process cannot exit.
            await conn.close()
            raise
        return conn

    async def _open(self) -> None:
        self._writer = await self._connect()
        try:
            async with self._sqlite_errors():
                # WAL is a property of the file: readers no longer block the writer.
                await self._writer.execute_fetchall("PRAGMA journal_mode = WAL")
            self._reader = await self._connect()
        except BaseException:
            await self._writer.close()
            self._writer = None
            raise

    async def _close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def _setup(self) -> None:
        """Create the tables and indexes if missing (safe to run from several processes)."""
        async with self._write_lock, self._sqlite_errors():
            await self._w.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")

    async def _watch(self) -> None:
        """Notify subscribers when another connection (process) has committed."""
        await CounterWatcher(
            self._data_version, self._notifier.notify, self._options.watch_interval, "data_version"
        ).run()

    async def _data_version(self) -> int:
        # PRAGMA data_version: a counter SQLite bumps when another connection commits.
        async with self._read_lock, self._sqlite_errors():
            rows = await self._r.execute_fetchall("PRAGMA data_version")
        return int(next(iter(rows))[0])

    @property
    def _w(self) -> aiosqlite.Connection:
        assert self._writer is not None
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
        assert self._reader is not None
        return self._reader

    @contextlib.asynccontextmanager
    async def _sqlite_errors(self, *, writing: bool = False) -> AsyncIterator[None]:
        """Map sqlite3 exceptions onto the library's errors."""
        try:
            yield
        except sqlite3.OperationalError as error:
            message = str(error)
            if "no such table" in message:
                raise EventStoreError(
                    f"{self.path} has no event store tables: run 'await store.setup()' first"
                ) from None
            if "locked" in message or "busy" in message:
                raise BackendUnavailableError(
                    f"SQLite file {self.path} stayed locked by another writer for more than "
                    f"busy_timeout={self._options.busy_timeout}s"
                ) from None
            raise BackendUnavailableError(f"SQLite error on {self.path}: {message}") from None
        except sqlite3.DatabaseError as error:
            if "not a database" in str(error):
                raise EventStoreError(f"{self.path} is not a SQLite database") from None
            raise BackendUnavailableError(
                f"SQLite error on {self.path}: {error}", maybe_applied=writing
            ) from None

    # -- writing -----------------------------------------------------------------------------

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        conn = self._w
        ids = [event.id.bytes for event in events]
        async with self._write_lock, self._sqlite_errors(writing=True):
            # Take the write lock first, so the version read below cannot go stale.
            await conn.execute_fetchall("BEGIN IMMEDIATE")
            try:
                existing = list(
                    await conn.execute_fetchall(
                        f"SELECT {_COLUMNS}, batch_first, batch_last FROM events "
                        f"WHERE event_id IN ({','.join('?' * len(ids))}) ORDER BY position",
                        ids,
                    )
                )
                if existing:
                    await conn.execute_fetchall("ROLLBACK")
                    bounds = {UUID(bytes=row[3]): (row[10], row[11]) for row in existing}
                    return Refused(0, _decode_rows(existing), bounds)
                rows = await conn.execute_fetchall(
                    "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?",
                    (stream_id,),
                )
                version = int(next(iter(rows))[0])
                lo, hi = expected_range(expected_version)
                if not lo <= version <= hi:
                    await conn.execute_fetchall("ROLLBACK")
                    return Refused(version)
                now = _now_micros()
                category = category_of(stream_id)
                await conn.executemany(
                    "INSERT INTO events (stream_id, version, event_id, type, category, data, "
                    "metadata, correlation_id, causation_id, recorded_at, batch_first, "
                    "batch_last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            stream_id,
                            version + i,
                            event.id.bytes,
                            event.type,
                            category,
                            event.data,
                            event.metadata,
                            event.correlation_id,
                            event.causation_id,
                            now,
                            version + 1,
                            version + len(events),
                        )
                        for i, event in enumerate(events, start=1)
                    ],
                )
                rows = await conn.execute_fetchall("SELECT last_insert_rowid()")
                position = int(next(iter(rows))[0])
                await conn.execute_fetchall("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute_fetchall("ROLLBACK")
                raise
        return Written(version=version + len(events), position=Position((position,)))

    # -- reading -----------------------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        async with self._read_lock, self._sqlite_errors():
            rows = await self._r.execute_fetchall(sql, params)
        return _decode_rows(rows)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        if backwards:
            top = from_version if from_version is not None else MAX_VERSION
            return await self._fetch(
                f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version <= ? "
                "ORDER BY version DESC LIMIT ?",
                (stream_id, top, limit),
            )
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? "
            "ORDER BY version LIMIT ?",
            (stream_id, from_version or 1, limit),
        )

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        start = _sequence(after)
        where = ["position > ?"]
        params: list[Any] = [start]
        if filter is not None and filter.event_types is not None:
            where.append(f"type IN ({','.join('?' * len(filter.event_types))})")
            params.extend(filter.event_types)
        if filter is not None and filter.categories is not None:
            where.append(f"category IN ({','.join('?' * len(filter.categories))})")
            params.extend(filter.categories)
        params.append(limit)
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY position LIMIT ?",
            params,
        )

    async def _stream_version(self, stream_id: str) -> int:
        async with self._read_lock, self._sqlite_errors():
            rows = await self._r.execute_fetchall(
                "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
            )
        return int(next(iter(rows))[0])

    # -- checkpoints and snapshots -----------------------------------------------------------

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        async with self._write_lock, self._sqlite_errors(writing=True):
            await self._w.execute_fetchall(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, _sequence(position)),
            )

    async def _load_checkpoint(self, name: str) -> Position | None:
        async with self._read_lock, self._sqlite_errors():
            rows = list(
                await self._r.execute_fetchall(
                    "SELECT position FROM checkpoints WHERE name = ?", (name,)
                )
            )
        return Position((int(rows[0][0]),)) if rows else None

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        async with self._write_lock, self._sqlite_errors(writing=True):
            # Highest version wins, so a slow writer cannot replace a newer snapshot.
            await self._w.execute_fetchall(
                "INSERT INTO snapshots (stream_id, version, type, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
                "type = excluded.type, data = excluded.data "
                "WHERE excluded.version >= snapshots.version",
                (snapshot.stream_id, snapshot.version, snapshot.type, data),
            )

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        async with self._read_lock, self._sqlite_errors():
            rows = list(
                await self._r.execute_fetchall(
                    "SELECT version, type, data FROM snapshots WHERE stream_id = ?", (stream_id,)
                )
            )
        if not rows:
            return None
        version, type_, data = rows[0]
        return Snapshot(stream_id, int(version), str(type_), serialization.loads(data))


def _sequence(position: Position | None) -> int:
    """The single integer of a SQLite position; a token from another backend is refused."""
    if position is None:
        return 0
    if len(position.parts) != 1:
        raise InvalidEventError(
            f"position {position} does not come from a SQLite store", field="after"
        )
    return position.parts[0]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now_micros() -> int:
    # Integer arithmetic on the timedelta: exact to the microsecond, unlike float timestamps.
    return (datetime.now(UTC) - _EPOCH) // timedelta(microseconds=1)


def _decode_rows(rows: Iterable[Any]) -> list[RecordedEvent]:
    # Rows of our own table are valid by construction: nothing is validated, and data/metadata
    # stay JSON until the caller reads them.
    return [
        RecordedEvent(
            row[0],
            row[1],
            (row[2],),  # the position's parts: built into a Position when read
            UUID(bytes=row[3]),
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],  # microseconds since the Unix epoch: a datetime when read
        )
        for row in rows
    ]
