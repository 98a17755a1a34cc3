"""``sqlite:///path.db``: the embedded default backend.

Why this is safe with several writer processes on one file:

- Every write runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's single write
  lock before reading the stream's version. Writers therefore serialise (across processes too,
  waiting up to ``busy_timeout``), so the expected-version check and the insert are atomic.
- The global position is the rowid, drawn while the write lock is held. Commits happen in
  lock order, so positions become visible in increasing order and a reader can never see
  position N+1 before N: the out-of-order-commit skip of PostgreSQL ``BIGSERIAL`` designs
  cannot happen here.
- WAL mode lets readers run concurrently with the writer, each query on a consistent snapshot.
- Other processes' commits are noticed by polling ``PRAGMA data_version`` (a counter SQLite
  bumps when another connection commits) every ``watch_interval`` seconds, only while a
  subscription is open; the poll is a cheap in-memory check, no table is read.

Why it is fast and never blocks the event loop: the store owns two connections, each in a
thread of its own (:mod:`._thread`); a read or a whole write transaction is one call into its
thread, and concurrent appends of one store share a transaction (:mod:`._writer`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from eventstore_core.adapter import (
    Capabilities,
    ConfigurationError,
    CounterWatcher,
    EventFilter,
    EventStore,
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
)

from . import _reader
from ._errors import as_library_error
from ._schema import MAX_INTEGER, connect, enable_wal
from ._thread import ConnectionThread
from ._writer import BACKSTOP_CHECKPOINT_PAGES, Writer

__all__ = ["SQLiteEventStore", "SQLiteOptions"]


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
        self._writer: Writer | None = None
        self._reader: ConnectionThread | None = None
        self._checkpointer: ConnectionThread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _connect(self, *, writer: bool = False) -> sqlite3.Connection:
        busy, sync = self._options.busy_timeout, self._options.synchronous
        conn = connect(self.path, busy_timeout=busy, synchronous=sync)
        if writer:
            try:
                enable_wal(conn, self.path, busy)
                # Checkpoints run in the checkpointer's thread (see Writer._after_commit).
                conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_CHECKPOINT_PAGES}")
                # The writer waits for the lock itself, more eagerly (see Writer._begin).
                conn.execute("PRAGMA busy_timeout = 0")
            except BaseException:
                conn.close()
                raise
        return conn

    async def _open(self) -> None:
        path, busy = self.path, self._options.busy_timeout

        def translate(error: BaseException) -> BaseException:
            return as_library_error(error, path, busy)

        writer = Writer("eventstore-sqlite-writer", lambda: self._connect(writer=True), path, busy)
        reader = ConnectionThread("eventstore-sqlite-reader", self._connect, translate)
        checkpointer = ConnectionThread("eventstore-sqlite-checkpointer", self._connect, translate)
        started: list[ConnectionThread] = []
        try:
            # The writer first: it switches a new file to WAL before the others open it.
            for thread in (writer, reader, checkpointer):
                await thread.start()
                started.append(thread)
        except BaseException:
            for thread in reversed(started):
                await thread.stop()
            raise
        writer.checkpointer = checkpointer
        self._writer, self._reader, self._checkpointer = writer, reader, checkpointer

    async def _close(self) -> None:
        threads = (self._reader, self._writer, self._checkpointer)
        self._reader = self._writer = self._checkpointer = None
        # The writer stops before the checkpointer it may still post to; a checkpoint posted
        # after the checkpointer's stop sentinel is simply never run.
        for thread in threads:
            if thread is not None:
                await thread.stop()

    async def _setup(self) -> None:
        """Create the tables and indexes if missing (safe to run from several processes)."""
        await self._w.setup()

    async def _watch(self) -> None:
        """Notify subscribers when another connection (process) has committed."""
        await CounterWatcher(
            self._data_version, self._notifier.notify, self._options.watch_interval, "data_version"
        ).run()

    async def _data_version(self) -> int:
        # PRAGMA data_version: a counter SQLite bumps when another connection commits.
        return await self._r.call(_reader.data_version)

    @property
    def _w(self) -> Writer:
        assert self._writer is not None
        return self._writer

    @property
    def _r(self) -> ConnectionThread:
        assert self._reader is not None
        return self._reader

    # -- writing -----------------------------------------------------------------------------

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        return await self._w.append(stream_id, events, expected_version)

    # -- reading -----------------------------------------------------------------------------

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        return await self._r.call(
            lambda conn: _reader.read_stream_page(conn, stream_id, from_version, backwards, limit)
        )

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        start = _sequence(after, "after")
        types = None if filter is None else filter.event_types
        categories = None if filter is None else filter.categories
        return await self._r.call(
            lambda conn: _reader.read_all_page(conn, start, types, categories, limit)
        )

    async def _stream_version(self, stream_id: str) -> int:
        return await self._r.call(lambda conn: _reader.stream_version(conn, stream_id))

    # -- checkpoints and snapshots -----------------------------------------------------------

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        sequence = _sequence(position, "position")
        if sequence > MAX_INTEGER:
            raise InvalidEventError(
                f"position {position} is beyond any SQLite position (2**63 - 1)", field="position"
            )
        await self._w.save_checkpoint(name, sequence)

    async def _load_checkpoint(self, name: str) -> Position | None:
        return await self._r.call(lambda conn: _reader.load_checkpoint(conn, name))

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        if snapshot.version > MAX_INTEGER:
            raise InvalidEventError(
                f"snapshot version {snapshot.version} is beyond any SQLite stream version "
                "(2**63 - 1)",
                field="version",
            )
        await self._w.save_snapshot(snapshot, data)

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._r.call(lambda conn: _reader.load_snapshot(conn, stream_id))


def _sequence(position: Position | None, field: str) -> int:
    """The single integer of a SQLite position; a token from another backend is refused."""
    if position is None:
        return 0
    if len(position.parts) != 1:
        raise InvalidEventError(
            f"position {position} does not come from a SQLite store", field=field
        )
    return position.parts[0]
