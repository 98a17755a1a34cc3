"""Time as backends store it: integer microseconds since the Unix epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["UNIX_EPOCH", "now_micros"]

#: 1970-01-01 UTC; ``RecordedEvent`` accepts ``recorded_at`` as microseconds since it.
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_micros() -> int:
    """The current time in integer microseconds since the Unix epoch."""
    return time.time_ns() // 1000
