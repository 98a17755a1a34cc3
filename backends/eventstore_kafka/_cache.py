"""A bounded cache of record values, so that recent reads need no fetch."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["ValueCache"]


class ValueCache:
    """Least-recently-used record values keyed by ``(partition, offset)``, bounded in bytes."""

    __slots__ = ("_entries", "capacity", "size")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._entries: OrderedDict[tuple[int, int], bytes] = OrderedDict()

    def get(self, key: tuple[int, int]) -> bytes | None:
        """The value at ``key``, if cached (and mark it recently used)."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[int, int], value: bytes) -> None:
        """Cache ``value`` (a record value never changes: offsets are never reused)."""
        if len(value) > self.capacity // 4 or key in self._entries:
            return
        self._entries[key] = value
        self.size += len(value)
        entries = self._entries
        while self.size > self.capacity:
            _, old = entries.popitem(last=False)
            self.size -= len(old)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self.size = 0
