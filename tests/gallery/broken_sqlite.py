"""The gallery's SQLite variant."""

from __future__ import annotations

from eventstore_sqlite import SQLiteEventStore


class ReaderLeftOpen(SQLiteEventStore):
    """SQLite whose close() forgets its reader: the reader's connection and thread stay."""

    async def _close(self) -> None:
        self._reader = None  # forgotten, not stopped
        await super()._close()
