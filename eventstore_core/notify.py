"""Wake-up signals: how a live subscription learns, without polling hard, that events arrived."""

from __future__ import annotations

import asyncio

__all__ = ["Notifier"]


class Notifier:
    """A generation counter with an event to wait on.

    A waiter reads :attr:`generation` *before* it queries storage and then waits with that
    value: a commit that lands between the query and the wait has already bumped the
    generation, so the wait returns at once and no wake-up is ever lost.
    """

    def __init__(self) -> None:
        self._generation = 0
        # Made by the first waiter and dropped by the notify that sets it: a store appending
        # with nobody waiting (the common case) builds no event per append.
        self._event: asyncio.Event | None = None

    @property
    def generation(self) -> int:
        """Increases by at least one on every :meth:`notify`."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter: something may have been committed."""
        self._generation += 1
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    async def wait(self, since: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until a notification newer than ``since``; false if ``timeout`` ran out."""
        if self._generation != since:
            return True
        event = self._event
        if event is None:
            event = self._event = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True
