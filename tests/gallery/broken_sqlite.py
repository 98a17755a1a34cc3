"""The gallery's SQLite variant."""

from __future__ import annotations

from eventstore_sqlite import SQLiteEventStore


class ReaderLeftOpen(SQLiteEventStore):
    """SQLite whose close() forgets the reader connection: its thread runs on, and would keep
    the process from exiting."""

    async def _close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        self._reader = self._writer = None
