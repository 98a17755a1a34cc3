"""The read path: each read is one query run in the reader's thread, rows wrapped there.

The reader has its own connection: in WAL mode it reads a consistent snapshot while the
writer commits, and a long catch-up never delays an append.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from eventstore_core.adapter import Position, RecordedEvent, Snapshot, serialization

from ._events import StoredEvent
from ._schema import EVENT_COLUMNS, MAX_INTEGER, STREAM_VERSION

__all__ = [
    "data_version",
    "load_checkpoint",
    "load_snapshot",
    "read_all_page",
    "read_stream_page",
    "stream_version",
]

_FORWARD = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version >= ? "
    "ORDER BY version LIMIT ?"
)
_BACKWARD = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND version <= ? "
    "ORDER BY version DESC LIMIT ?"
)


def _events(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
    from_row = StoredEvent.from_row
    return [from_row(row) for row in conn.execute(sql, params).fetchall()]


def read_stream_page(
    conn: sqlite3.Connection, stream_id: str, from_version: int | None, backwards: bool, limit: int
) -> list[RecordedEvent]:
    """Up to ``limit`` events of a stream from ``from_version`` (inclusive)."""
    if backwards:
        # No version exceeds what SQLite can store: a larger start means "from the last".
        top = MAX_INTEGER if from_version is None else min(from_version, MAX_INTEGER)
        return _events(conn, _BACKWARD, (stream_id, top, limit))
    start = from_version or 1
    if start > MAX_INTEGER:
        return []  # beyond any version SQLite can hold
    return _events(conn, _FORWARD, (stream_id, start, limit))


def read_all_page(
    conn: sqlite3.Connection,
    after: int,
    event_types: Sequence[str] | None,
    categories: Sequence[str] | None,
    limit: int,
) -> list[RecordedEvent]:
    """Up to ``limit`` events with a position above ``after``, in position order."""
    if after >= MAX_INTEGER:
        return []  # no position lies beyond
    where = ["position > ?"]
    params: list[Any] = [after]
    if event_types is not None:
        where.append(f"type IN ({','.join('?' * len(event_types))})")
        params.extend(event_types)
    if categories is not None:
        where.append(f"category IN ({','.join('?' * len(categories))})")
        params.extend(categories)
    params.append(limit)
    return _events(
        conn,
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY position LIMIT ?",
        params,
    )


def stream_version(conn: sqlite3.Connection, stream_id: str) -> int:
    """The version of the stream's last event (0 when it has none)."""
    version: int = conn.execute(STREAM_VERSION, (stream_id,)).fetchall()[0][0]
    return version


def load_checkpoint(conn: sqlite3.Connection, name: str) -> Position | None:
    """The position saved under ``name``."""
    rows = conn.execute("SELECT position FROM checkpoints WHERE name = ?", (name,)).fetchall()
    return Position((int(rows[0][0]),)) if rows else None


def load_snapshot(conn: sqlite3.Connection, stream_id: str) -> Snapshot | None:
    """The stream's snapshot (only the highest version is kept)."""
    rows = conn.execute(
        "SELECT version, type, data FROM snapshots WHERE stream_id = ?", (stream_id,)
    ).fetchall()
    if not rows:
        return None
    version, type_, data = rows[0]
    return Snapshot(stream_id, int(version), str(type_), serialization.loads(data))


def data_version(conn: sqlite3.Connection) -> int:
    """SQLite's counter of commits made by *other* connections to the file."""
    version: int = conn.execute("PRAGMA data_version").fetchall()[0][0]
    return version
