"""Catch-up-then-live subscriptions: the one place that decides how events reach a consumer.

A subscription reads from a *feed*, which yields batches of events together with a flag that
says "caught up". There are two feeds:

- **pull** (the default): pages of ``_read_all_page`` after the last event read. A short page
  means caught up; the feed then waits for a wake-up from the store's
  :class:`~eventstore_core.notify.Notifier` (sent after local commits and by the backend's
  watcher or background task for other processes' commits) or, failing that, for the
  fallback ``poll_interval``. A lost backend is retried for ``reconnect_timeout``.
- **push**, for a backend that implements ``_push``: the server's own stream of events, with
  :data:`CAUGHT_UP` marking the end of catch-up. When the stream breaks
  (:class:`BackendUnavailableError`) it is opened again after the last event read, with
  backoff, for ``reconnect_timeout``; events it sends again are dropped.

Both only advance when the consumer asks for more, so a consumer that stops reading holds at
most one page (backpressure). Positions only move forward, so within one subscription's life
every event is delivered once, in order; across restarts it resumes after a saved checkpoint
(at-least-once). ``is_live`` turns true, once and for good, when every event committed before
the feed caught up has been delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Final, Protocol

from eventstore_core.config import StoreOptions
from eventstore_core.errors import BackendUnavailableError, EventStoreError
from eventstore_core.models import EventFilter, Position, RecordedEvent
from eventstore_core.notify import Notifier
from eventstore_core.retry import Backoff

__all__ = ["CAUGHT_UP", "CaughtUp", "Source", "Subscription"]

log = logging.getLogger("eventstore_core.subscription")


class CaughtUp:
    """The type of :data:`CAUGHT_UP`."""

    _instance: CaughtUp | None = None

    def __new__(cls) -> CaughtUp:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "CAUGHT_UP"


#: Yielded once by a backend's ``_push`` feed when it has sent every event committed so far.
CAUGHT_UP: Final = CaughtUp()


class Source(Protocol):
    """What a subscription needs of its store: the store's side of delivery, and no more.

    :class:`~eventstore_core.store.EventStore` provides it; this module does not import the
    store, so delivery can be read (and tested) on its own.
    """

    options: StoreOptions
    _notifier: Notifier
    _pushes: bool

    @property
    def is_open(self) -> bool: ...

    def _check_open(self) -> None: ...

    async def load_checkpoint(self, name: str) -> Position | None: ...

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]: ...

    def _push(
        self, after: Position | None, filter: EventFilter | None
    ) -> AsyncIterator[RecordedEvent | CaughtUp]: ...

    def _subscription_started(self, subscription: Subscription) -> None: ...

    def _subscription_stopped(self, subscription: Subscription) -> None: ...


#: What a feed yields: events to deliver, and whether the feed is now caught up.
_Batch = tuple[list[RecordedEvent], bool]


class Subscription:
    """An async iterator of :class:`RecordedEvent`, used as ``async with store.subscribe()``."""

    def __init__(
        self,
        store: Source,
        *,
        after: Position | None,
        filter: EventFilter | None,
        name: str | None,
    ) -> None:
        self._store = store
        self._after = after  # the last event delivered (or the starting point)
        self._read_to = after  # the last event taken from the feed (delivered or buffered)
        self._filter = filter
        self._name = name
        self._buffer: deque[RecordedEvent] = deque()
        self._caught_up = False
        self._live = False
        self._started = False
        self._closed = False
        self._feed: AsyncIterator[_Batch] | None = None
        self._pending: asyncio.Future[_Batch] | None = None

    @property
    def is_live(self) -> bool:
        """True once every event committed before the subscription caught up was delivered."""
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
        store = self._store
        store._check_open()
        if self._name is not None and self._after is None:
            self._after = self._read_to = await store.load_checkpoint(self._name)
        self._started = True
        store._subscription_started(self)
        return self

    async def close(self) -> None:
        """Stop the subscription; an iteration in progress (in another task) ends."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        pending, self._pending = self._pending, None
        if pending is not None:
            # A read of the feed is in flight: stop it (the cancellation is raised inside the
            # feed, which ends it) and wait, so that nothing reads once the store closes.
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        await self._close_feed()
        if self._started:
            self._store._subscription_stopped(self)

    async def _close_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None and not feed.ag_running:  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                await feed.aclose()  # type: ignore[attr-defined]

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
        buffer = self._buffer
        while True:
            if self._closed:
                await self._close_feed()
                raise StopAsyncIteration
            if buffer:
                event = buffer.popleft()
                self._after = event.position
                if self._caught_up and not buffer:
                    self._live = True
                return event
            events, caught_up = await self._next_batch()
            if self._closed:
                continue
            buffer.extend(events)
            if caught_up:
                self._caught_up = True
                if not buffer:
                    self._live = True

    async def _next_batch(self) -> _Batch:
        """The feed's next batch, read in a task the subscription owns.

        The task makes the wait interruptible: close() (from another task, or the store's
        close) cancels it and waits for it, so no read is in flight once the store releases
        its connections. It is shielded from the consumer's own cancellation: a consumer that
        gives up waiting (``asyncio.wait_for``) leaves the read running, and the next call
        takes its result, so nothing is lost. A feed that failed is started afresh on the
        next call; both feeds keep their place in ``_read_to``.
        """
        if self._feed is None:
            self._feed = self._push_feed() if self._store._pushes else self._pull_feed()
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.ensure_future(anext(self._feed))
        try:
            batch = await asyncio.shield(pending)
        except asyncio.CancelledError:
            if self._closed and not _being_cancelled():
                return [], False
            raise
        except StopAsyncIteration:
            self._pending = self._feed = None
            raise EventStoreError("the subscription's feed ended unexpectedly") from None
        except BaseException:
            self._pending = self._feed = None
            raise
        self._pending = None
        return batch

    # -- feeds ---------------------------------------------------------------------------------

    async def _pull_feed(self) -> AsyncIterator[_Batch]:
        store = self._store
        notifier = store._notifier
        page_size = store.options.page_size
        poll_interval = store.options.poll_interval
        while True:
            # Read the generation first: a commit after this line wakes the wait below.
            generation = notifier.generation
            page = await self._read_page(page_size)
            if page:
                self._read_to = page[-1].position
            short = len(page) < page_size
            yield page, short
            if not page:
                await notifier.wait(generation, poll_interval)

    async def _read_page(self, page_size: int) -> list[RecordedEvent]:
        """Read the next page, riding out a lost connection for ``reconnect_timeout``."""
        store = self._store
        backoff = Backoff(store.options.reconnect_timeout, base=0.025, cap=2.0, jitter=False)
        while True:
            if not store.is_open:
                raise EventStoreError("the store was closed while the subscription was running")
            try:
                page = list(await store._read_all_page(self._read_to, self._filter, page_size))
            except BackendUnavailableError as error:
                if not await backoff.wait():
                    raise
                log.warning("subscription read failed (%s); retrying", error)
                continue
            if page and self._read_to is not None and not page[0].position > self._read_to:
                # A backend bug would otherwise silently duplicate events: refuse loudly.
                raise EventStoreError(
                    f"backend returned position {page[0].position} not after {self._read_to}"
                )
            return page

    async def _push_feed(self) -> AsyncIterator[_Batch]:
        store = self._store
        backoff: Backoff | None = None
        while True:
            if not store.is_open:
                raise EventStoreError("the store was closed while the subscription was running")
            try:
                async for item in store._push(self._read_to, self._filter):
                    if not isinstance(item, RecordedEvent):
                        yield [], True
                        continue
                    backoff = None
                    if self._read_to is not None and not item.position > self._read_to:
                        continue  # sent again after a reconnect
                    self._read_to = item.position
                    yield [item], False
                raise BackendUnavailableError("the server ended the subscription")
            except BackendUnavailableError as error:
                if backoff is None:
                    backoff = Backoff(
                        store.options.reconnect_timeout, base=0.025, cap=2.0, jitter=False
                    )
                if not await backoff.wait():
                    raise
                log.warning("subscription stream broke (%s); reconnecting", error)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
