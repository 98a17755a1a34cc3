"""Wake-up signals: how a live subscription learns, without polling hard, that events arrived."""

from __future__ import annotations

import asyncio

__all__ = ["Notifier", "Signal"]


class Signal:
    """An event for the next :meth:`fire`, made only when a waiter asks for it.

    A fire with nobody waiting builds nothing: a store that appends with no subscriber (the
    common case) pays no ``asyncio.Event`` per append. Take :meth:`event` *before* looking
    at what it guards, then wait on it: a fire in between has already set it.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def event(self) -> asyncio.Event:
        """The event the next fire sets."""
        event = self._event
        if event is None:
            event = self._event = asyncio.Event()
        return event

    def fire(self) -> None:
        """Set the event of everyone waiting; later waiters get a new one."""
        event = self._event
        if event is not None:
            self._event = None
            event.set()


class Notifier:
    """A generation counter with an event to wait on.

    A waiter reads :attr:`generation` *before* it queries storage and then waits with that
    value: a commit that lands between the query and the wait has already bumped the
    generation, so the wait returns at once and no wake-up is ever lost.
    """

    def __init__(self) -> None:
        self._generation = 0
        self._signal = Signal()

    @property
    def generation(self) -> int:
        """Increases by at least one on every :meth:`notify`."""
        return self._generation

    def notify(self) -> None:
        """Wake every waiter: something may have been committed."""
        self._generation += 1
        self._signal.fire()

    async def wait(self, since: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until a notification newer than ``since``; false if ``timeout`` ran out."""
        if self._generation != since:
            return True
        event = self._signal.event()
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True
