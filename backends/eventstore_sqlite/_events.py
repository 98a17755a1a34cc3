"""Events read from the events table, backed by their ``sqlite3`` rows.

Why a subclass of :class:`RecordedEvent` (as the PostgreSQL adapter does): building one copies
every field out of the row and builds the id's ``UUID`` up front, where a catch-up mostly looks
at a few fields. A :class:`StoredEvent` keeps the row and reads a field when it is asked for;
``data`` and ``metadata`` are decoded from JSON on first access and kept.

It is a :class:`RecordedEvent` in every way a caller can see: the same read-only fields,
equality, hashing, ``repr``, and it pickles as a plain :class:`RecordedEvent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventstore_core.adapter import UNIX_EPOCH, Position, RecordedEvent, serialization

__all__ = ["StoredEvent"]

_new = object.__new__
_loads = serialization.loads


class StoredEvent(RecordedEvent):
    """A :class:`RecordedEvent` whose fields are read from its row on access."""

    __slots__ = ("_json", "_row")

    _row: Any  # a row laid out as _schema.EVENT_COLUMNS
    _json: tuple[Mapping[str, Any], Mapping[str, Any]]

    @classmethod
    def from_row(cls, row: Any) -> StoredEvent:
        """Wrap a row laid out as ``_schema.EVENT_COLUMNS`` (the read path's only per-row work)."""
        event = _new(cls)
        event._row = row
        return event

    @property
    def stream_id(self) -> str:
        """The stream the event belongs to."""
        value: str = self._row[0]
        return value

    @property
    def version(self) -> int:
        """The event's 1-based version in its stream."""
        value: int = self._row[1]
        return value

    @property
    def position(self) -> Position:
        """The event's place in the store's global order: its rowid."""
        return Position((self._row[2],))

    @property
    def id(self) -> UUID:
        """The event's id (the idempotency key)."""
        return UUID(bytes=self._row[3])

    @property
    def type(self) -> str:
        """The event's type."""
        value: str = self._row[4]
        return value

    @property
    def data(self) -> Mapping[str, Any]:
        """The event's data (a dict decoded from JSON)."""
        return self._decoded()[0]

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The event's metadata (a dict decoded from JSON)."""
        return self._decoded()[1]

    @property
    def correlation_id(self) -> str | None:
        """The correlation id given at append, if any."""
        value: str | None = self._row[7]
        return value

    @property
    def causation_id(self) -> str | None:
        """The causation id given at append, if any."""
        value: str | None = self._row[8]
        return value

    @property
    def recorded_at(self) -> datetime:
        """When the store recorded the event (an aware UTC datetime)."""
        return UNIX_EPOCH + timedelta(microseconds=self._row[9])

    def _decoded(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        # The slot stays unset until the first access (nothing to store per row up front).
        try:
            return self._json
        except AttributeError:
            row = self._row
            decoded = self._json = (_loads(row[5]), _loads(row[6]))
            return decoded
