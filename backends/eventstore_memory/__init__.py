"""``memory://``: an in-process event store for tests and examples (see :mod:`.store`)."""

from eventstore_memory.store import MemoryEventStore, MemoryOptions

__all__ = ["MemoryEventStore", "MemoryOptions"]
