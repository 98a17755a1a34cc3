"""``sqlite:///path.db``: the embedded default backend (see :mod:`eventstore_sqlite.store`)."""

from eventstore_sqlite.store import SQLiteEventStore, SQLiteOptions

__all__ = ["SQLiteEventStore", "SQLiteOptions"]
