"""Catch-up-then-live subscriptions, shared by every backend that has no push of its own.

A subscription pulls pages from ``read_all`` after the last position it delivered. When a
page comes back short it has caught up; it then waits for a wake-up from the store's
:class:`~eventstore_core.notify.Notifier` (sent after local commits and by each backend's
watcher for other processes' commits) or, failing that, for the fallback poll interval.

Because it only reads a page when the consumer asks for more, a consumer that stops reading
holds at most one page in memory (backpressure for free), and no background task exists to
leak. Positions only move forward, so within one subscription's life every event is delivered
once, in order; across restarts it resumes after a saved checkpoint (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING

from eventstore_core.errors import BackendUnavailableError, EventStoreError
from eventstore_core.models import EventFilter, Position, RecordedEvent

if TYPE_CHECKING:
    from eventstore_core.store import EventStore

__all__ = ["Subscription"]

log = logging.getLogger("eventstore_core.subscription")


class Subscription:
    """An async iterator of :class:`RecordedEvent`, used as ``async with store.subscribe()``."""

    def __init__(
        self,
        store: EventStore,
        *,
        after: Position | None,
        filter: EventFilter | None,
        name: str | None,
    ) -> None:
        self._store = store
        self._after = after
        self._filter = filter
        self._name = name
        self._buffer: deque[RecordedEvent] = deque()
        self._reached_end = False
        self._live = False
        self._started = False
        self._closed = False

    @property
    def is_live(self) -> bool:
        """True once every event committed before the subscription caught up was delivered."""
        if not self._live and self._reached_end and not self._buffer:
            self._live = True
        return self._live

    @property
    def position(self) -> Position | None:
        """The position of the last event delivered (or the starting point)."""
        return self._after

    @property
    def closed(self) -> bool:
        """Whether the subscription was stopped."""
        return self._closed

    async def start(self) -> Subscription:
        """Resolve the starting point (a named checkpoint) and register with the store."""
        if self._started:
            return self
        self._store._check_open()
        if self._name is not None and self._after is None:
            self._after = await self._store.load_checkpoint(self._name)
        self._store._subscriptions.add(self)
        self._started = True
        await self._store._subscription_started()
        return self

    async def close(self) -> None:
        """Stop the subscription; an iteration in progress ends."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._store._subscriptions.discard(self)
        # Wake a consumer blocked in __anext__ (from another task) so that it sees the close.
        self._store._notifier.notify()
        if self._started:
            await self._store._subscription_stopped()

    async def __aenter__(self) -> Subscription:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> RecordedEvent:
        if not self._started:
            await self.start()
        store = self._store
        page_size = store.options.page_size
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                event = self._buffer.popleft()
                self._after = event.position
                return event
            # Read the generation first: a commit after this line wakes the wait below.
            generation = store._notifier.generation
            page = await self._read_page(page_size)
            if self._closed:
                raise StopAsyncIteration
            if page:
                self._buffer.extend(page)
            if len(page) < page_size:
                self._reached_end = True
            if not page:
                self.is_live  # noqa: B018 - latch is_live before waiting
                await store._notifier.wait(generation, store.options.poll_interval)

    async def _read_page(self, page_size: int) -> list[RecordedEvent]:
        """Read the next page, riding out a lost connection for ``reconnect_timeout``."""
        store = self._store
        delay = 0.05
        loop = asyncio.get_running_loop()
        deadline = loop.time() + store.options.reconnect_timeout
        while True:
            if not store.is_open:
                raise EventStoreError("the store was closed while the subscription was running")
            try:
                page = list(await store._read_all_page(self._after, self._filter, page_size))
            except BackendUnavailableError as error:
                if loop.time() + delay > deadline:
                    raise
                log.warning("subscription read failed (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if page and self._after is not None and not page[0].position > self._after:
                # A backend bug would otherwise silently duplicate events: refuse loudly.
                raise EventStoreError(
                    f"backend returned position {page[0].position} not after {self._after}"
                )
            return page
