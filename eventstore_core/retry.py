"""The one retry policy of the library: exponential backoff with full jitter, until a deadline.

Every loop that rides out a failing backend uses it — a subscription's reads, a push feed's
reconnects, the background tasks the core supervises, DynamoDB's transaction retries, the
PostgreSQL LISTEN connection — so that "how long, how often" is decided in one place.
"""

from __future__ import annotations

import asyncio
import random
import time

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with full jitter, until an optional deadline.

    Full jitter (a random delay between 0 and the exponential cap) spreads clients that failed
    together, so that they do not retry in lockstep. ``jitter=False`` sleeps the cap itself
    (for a single reconnecting loop, where spreading matters less than a predictable wait).
    """

    def __init__(
        self,
        timeout: float | None,
        base: float = 0.005,
        cap: float = 0.1,
        *,
        jitter: bool = True,
    ) -> None:
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._base = base
        self._cap = cap
        self._jitter = jitter
        self.attempts = 0

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (never, without one)."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def next_delay(self) -> float:
        """The delay before the next attempt (counts the attempt)."""
        self.attempts += 1
        ceiling = min(self._cap, self._base * 2 ** min(self.attempts, 30))
        return random.uniform(0, ceiling) if self._jitter else ceiling

    async def wait(self) -> bool:
        """Sleep before the next attempt; false (without sleeping) once the deadline passed."""
        delay = self.next_delay()
        if self._deadline is not None and time.monotonic() + delay >= self._deadline:
            return False
        await asyncio.sleep(delay)
        return True

    def reset(self) -> None:
        """Start again from the shortest delay (after a success)."""
        self.attempts = 0
