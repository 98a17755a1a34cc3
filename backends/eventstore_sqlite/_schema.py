"""The SQLite file's tables, the statements every connection shares, and how to open one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eventstore_core.adapter import ConfigurationError, EventStoreError

from ._errors import translate

__all__ = [
    "EVENT_COLUMNS",
    "INSERT_EVENT",
    "MAX_INTEGER",
    "SCHEMA",
    "STREAM_VERSION",
    "connect",
]

#: The largest integer SQLite stores; Python binds a larger one with an OverflowError.
MAX_INTEGER = 2**63 - 1

# ``position`` is the rowid. It has no AUTOINCREMENT: events are never deleted, so the next
# rowid (the largest plus one) never reuses a position, and AUTOINCREMENT's bookkeeping row in
# sqlite_sequence is one more page written by every commit (a third of a single-event
# append's cost, measured). Files made with AUTOINCREMENT keep it; both behave the same here.
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
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
    -- retry is idempotent only as the whole batch
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

#: The columns of an event as read, in the order :class:`StoredEvent` expects.
EVENT_COLUMNS = (
    "stream_id, version, position, event_id, type, data, metadata, "
    "correlation_id, causation_id, recorded_at"
)

INSERT_EVENT = (
    "INSERT INTO events (stream_id, version, event_id, type, category, data, metadata, "
    "correlation_id, causation_id, recorded_at, batch_first, batch_last) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# MAX over the (stream_id, version) index: one index seek, whatever the stream's length.
STREAM_VERSION = "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?"


def connect(path: Path, *, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (transactions are explicit) and check it is a database.

    Runs in the connection's own thread: a ``sqlite3`` connection is used by one thread only.
    """
    try:
        # Autocommit (isolation_level=None): the module must not open transactions of its own,
        # every transaction here is an explicit BEGIN IMMEDIATE ... COMMIT.
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=busy_timeout, cached_statements=256
        )
    except sqlite3.Error as error:
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"cannot create the SQLite file {path}: the directory {path.parent} does not exist"
            ) from None
        raise translate(error, path, busy_timeout) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Reading the schema fails at once on a file that is not a SQLite database.
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    except sqlite3.Error as error:
        conn.close()
        raise translate(error, path, busy_timeout) from None
    except BaseException:
        conn.close()
        raise
    return conn


def enable_wal(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    """Switch the file to WAL (a property of the file): readers no longer block the writer."""
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
    except sqlite3.Error as error:
        raise translate(error, path, busy_timeout) from None
    if str(mode).lower() != "wal":
        raise EventStoreError(f"SQLite file {path} cannot use WAL mode (journal_mode={mode})")
