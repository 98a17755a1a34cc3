"""The :class:`EventStore` base class: the public API, implemented once over backend hooks.

Everything the contract says that is not storage is applied here, once: input validation,
the append decision (defined in :mod:`eventstore_core.decision`), paging, subscriptions,
background tasks and lifecycle. A backend subclasses :class:`EventStore` and implements the
``_``-prefixed hooks, which receive validated input and only translate it to their storage.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import ClassVar

from eventstore_core.config import ParsedUrl, StoreOptions
from eventstore_core.decision import Refused, Written, decide
from eventstore_core.errors import (
    ConcurrencyError,
    EventStoreError,
    InvalidEventError,
    UnsupportedOperationError,
)
from eventstore_core.models import (
    ANY,
    AppendResult,
    Capabilities,
    EventFilter,
    ExpectedVersion,
    NewEvent,
    Position,
    RecordedEvent,
    Snapshot,
)
from eventstore_core.notify import Notifier
from eventstore_core.retry import Backoff
from eventstore_core.subscription import CaughtUp, Subscription
from eventstore_core.tasks import Supervised
from eventstore_core.validation import (
    PreparedEvent,
    prepare_batch,
    validate_after,
    validate_expected_version,
    validate_filter,
    validate_limit,
    validate_name,
    validate_position,
    validate_snapshot,
    validate_version,
)

__all__ = ["EventStore"]

log = logging.getLogger("eventstore_core")

#: How long an append keeps trying when the storage refused it but the stream has meanwhile
#: moved to a version the expectation allows (see decision.decide): a lost race, not a
#: conflict. The first retry is immediate, later ones back off with jitter.
_RACE_TIMEOUT = 10.0


class EventStore(abc.ABC):
    """An event store: append, read, subscribe, snapshots and checkpoints, over one backend.

    Obtain one with :func:`eventstore_core.connect`; use it as ``async with`` (or call
    :meth:`open` and :meth:`close`).
    """

    #: The options model of this backend (query-string and keyword options are checked by it).
    Options: ClassVar[type[StoreOptions]] = StoreOptions
    #: What this backend guarantees; may be refined per instance in ``__init__``.
    capabilities: Capabilities
    #: How many integers a position of this (total-order) store has, e.g. 2 for ``"tx:seq"``.
    #: When set, a position or token of another shape is refused at the call
    #: (``InvalidEventError``) by ``read_all``, ``subscribe`` and ``save_checkpoint``.
    position_parts: ClassVar[int | None] = None

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        self._url = url
        self.options = options
        self._notifier = Notifier()
        self._is_open = False
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        cls = type(self)
        self._watcher = (
            Supervised(self._watch, f"the watcher of {self.url}")
            if cls._watch is not EventStore._watch
            else None
        )
        self._tail = (
            Supervised(self._background, f"the background task of {self.url}")
            if cls._background is not EventStore._background
            else None
        )
        #: Whether subscriptions are fed by the backend's own push (``_push``).
        self._pushes = cls._push is not EventStore._push

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL, with any password or secret masked."""
        return self._url.redacted

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has run and :meth:`close` has not."""
        return self._is_open

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={self.url!r}>"

    async def open(self) -> None:
        """Open connections (no-op when already open)."""
        if self._is_open:
            return
        await self._open()
        self._is_open = True
        if self._tail is not None:
            self._tail.start()
        log.debug("opened %s", self.url)

    async def close(self) -> None:
        """Stop every subscription and release every connection and task."""
        if not self._is_open:
            return
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._watcher is not None:
            await self._watcher.stop()
        self._is_open = False
        if self._tail is not None:
            await self._tail.stop()
        await self._close()
        log.debug("closed %s", self.url)

    async def __aenter__(self) -> EventStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if not self._is_open:
            raise EventStoreError(
                f"{self!r} is not open: use 'async with es.connect(...) as store' "
                "or 'await store.open()'"
            )

    async def setup(self) -> None:
        """Create tables, indexes or topics if missing. Idempotent, safe to run concurrently."""
        self._check_open()
        await self._setup()

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically, if its version is as expected.

        Raises :class:`ConcurrencyError` on a version mismatch (nothing written),
        :class:`DuplicateEventIdError` when an event id is reused other than by retrying the
        same batch, and :class:`InvalidEventError` for bad input (nothing sent). Retrying a
        batch that was already written returns the original result and writes nothing.
        """
        validate_name(stream_id, "stream_id")
        expected = validate_expected_version(expected_version)
        caps = self.capabilities
        prepared = prepare_batch(
            events,
            max_event_bytes=caps.max_event_bytes,
            max_append_events=caps.max_append_events,
            max_append_bytes=caps.max_append_bytes,
        )
        self._check_open()
        backoff: Backoff | None = None
        while True:
            outcome = await self._append(stream_id, prepared, expected)
            if isinstance(outcome, Written):
                self._notifier.notify()
                return outcome
            result = decide(stream_id, prepared, expected, outcome)
            if result is not None:
                return result
            # Refused, but the stream has meanwhile reached a version ``expected`` allows:
            # another writer won a race (optimistic storage refuses instead of queueing).
            # Appending again now is as if this call had come later; back off with jitter so
            # that writers racing on one hot stream spread out, within a time budget.
            if backoff is None:
                backoff = Backoff(_RACE_TIMEOUT, base=0.001, cap=0.05)
            elif not await backoff.wait():
                raise ConcurrencyError(stream_id, expected, outcome.actual)

    # -- reading ---------------------------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over a stream's events from ``from_version`` (inclusive).

        Forward from version 1 by default; with ``backwards=True`` from the last event down.
        A stream that does not exist yields nothing. Arguments are checked at the call.
        """
        validate_name(stream_id, "stream_id")
        if from_version is not None:
            validate_version(from_version, "from_version", minimum=0 if backwards else 1)
        limit = validate_limit(limit)
        if backwards and not self.capabilities.backwards_reads:
            raise UnsupportedOperationError(
                f"{type(self).__name__} cannot read a stream backwards "
                "(capabilities.backwards_reads is False)"
            )
        self._check_open()
        return self._iter_stream(stream_id, from_version, bool(backwards), limit)

    async def _iter_stream(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int | None
    ) -> AsyncIterator[RecordedEvent]:
        page_size = self.options.page_size
        remaining = limit
        cursor = from_version if from_version is not None else (None if backwards else 1)
        while remaining is None or remaining > 0:
            if backwards and cursor is not None and cursor < 1:
                return
            wanted = page_size if remaining is None else min(page_size, remaining)
            page = await self._read_stream_page(stream_id, cursor, backwards, wanted)
            for event in page:
                yield event
            if remaining is not None:
                remaining -= len(page)
            if len(page) < wanted:
                return
            cursor = page[-1].version - 1 if backwards else page[-1].version + 1

    def read_all(
        self,
        after: Position | str | None = None,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over every event of the store in global order, strictly after ``after``.

        Reads page by page (``page_size``), so memory stays flat however long the log.
        """
        position = self._position_argument(after, "after")
        event_filter = validate_filter(filter)
        limit = validate_limit(limit)
        self._check_open()
        return self._iter_all(position, event_filter, limit)

    async def _iter_all(
        self, after: Position | None, event_filter: EventFilter | None, limit: int | None
    ) -> AsyncIterator[RecordedEvent]:
        # While the caller works through one page, the next is already being fetched: the
        # storage's work overlaps the decoding and the caller's own work, and memory still
        # holds at most two pages.
        page_size = self.options.page_size
        remaining = limit
        wanted = page_size if remaining is None else min(page_size, remaining)
        if wanted == 0:
            return
        prefetch: asyncio.Task[Sequence[RecordedEvent]] | None = None
        try:
            page = await self._read_all_page(after, event_filter, wanted)
            while True:
                if remaining is not None:
                    remaining -= len(page)
                next_wanted = page_size if remaining is None else min(page_size, remaining)
                if len(page) == wanted and next_wanted > 0:
                    prefetch = asyncio.ensure_future(
                        self._read_all_page(page[-1].position, event_filter, next_wanted)
                    )
                for event in page:
                    yield event
                if prefetch is None:
                    return
                page, prefetch = await prefetch, None
                wanted = next_wanted
        finally:
            if prefetch is not None:
                prefetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, EventStoreError):
                    await prefetch

    async def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event; 0 if it has none."""
        validate_name(stream_id, "stream_id")
        self._check_open()
        return await self._stream_version(stream_id)

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self,
        after: Position | str | None = None,
        filter: EventFilter | None = None,
        name: str | None = None,
    ) -> Subscription:
        """Catch up on events after ``after``, then receive new ones as they are committed.

        With ``name`` and no ``after``, starts after the checkpoint saved under that name.
        Use as ``async with store.subscribe(...) as subscription: async for event in ...``.
        """
        position = self._position_argument(after, "after")
        event_filter = validate_filter(filter)
        if name is not None:
            validate_name(name, "name")
        self._check_open()
        return Subscription(self, after=position, filter=event_filter, name=name)

    # -- checkpoints and snapshots -----------------------------------------------------------

    async def save_checkpoint(self, name: str, position: Position | str) -> None:
        """Store ``position`` under ``name``, replacing what was there."""
        validate_name(name, "checkpoint name")
        parsed = self._position_argument(position, "position")
        if parsed is None:
            raise InvalidEventError("position must not be None", field="position")
        self._check_open()
        await self._save_checkpoint(name, parsed)

    async def load_checkpoint(self, name: str) -> Position | None:
        """The position saved under ``name``, or None."""
        validate_name(name, "checkpoint name")
        self._check_open()
        return await self._load_checkpoint(name)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Save a snapshot of a stream; :meth:`load_snapshot` returns the latest saved."""
        self._require_snapshots()
        data = validate_snapshot(snapshot, max_bytes=self.capabilities.max_snapshot_bytes)
        self._check_open()
        await self._save_snapshot(snapshot, data)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot saved for ``stream_id``, or None."""
        self._require_snapshots()
        validate_name(stream_id, "stream_id")
        self._check_open()
        return await self._load_snapshot(stream_id)

    def _require_snapshots(self) -> None:
        if not self.capabilities.snapshots:
            raise UnsupportedOperationError(
                f"{type(self).__name__} does not store snapshots (capabilities.snapshots is False)"
            )

    def _position_argument(self, value: object, what: str) -> Position | None:
        # One check of a position argument, the same for every call that takes one.
        position = validate_after(value, what)
        if position is not None:
            validate_position(
                position,
                what,
                partitioned=self.capabilities.global_order == "partitioned",
                parts=self.position_parts,
            )
        return position

    # -- subscriptions' bookkeeping (used by Subscription) -----------------------------------

    def _subscription_started(self, subscription: Subscription) -> None:
        self._subscriptions.add(subscription)
        if self._watcher is not None:
            self._watcher.start()
            # A subscription dropped without close() leaves the set when it is collected;
            # stop the watcher then too, rather than keep polling for nobody.
            weakref.finalize(subscription, self._subscription_collected, asyncio.get_running_loop())

    def _subscription_stopped(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        self._stop_watcher_if_idle()

    def _subscription_collected(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs inside the garbage collector, before the subscription has left the WeakSet
        # (and maybe in another thread): look again from the loop, once the collection is over.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs anyway
            loop.call_soon_threadsafe(self._stop_watcher_if_idle)

    def _stop_watcher_if_idle(self) -> None:
        if self._watcher is not None and not self._subscriptions:
            self._watcher.cancel()

    # -- hooks for backends ------------------------------------------------------------------
    #
    # The hooks receive validated input, run only while the store is open, and only talk to
    # storage. Optional hooks have a default here; the rest are abstract.

    @abc.abstractmethod
    async def _open(self) -> None:
        """Open connections."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release every connection (the core has already stopped its tasks)."""

    @abc.abstractmethod
    async def _setup(self) -> None:
        """Create tables, indexes or topics if missing. Idempotent, safe to run concurrently."""

    async def _watch(self) -> None:
        """Optional: watch for commits made by other processes, for live subscriptions.

        A backend whose storage can be shared implements this as a loop (a cheap poll: see
        :class:`~eventstore_core.tasks.CounterWatcher`) that calls ``self._notifier.notify()``
        when something may have been committed elsewhere. The core runs it as one task per
        store while at least one subscription is open, restarts it with backoff if it fails,
        and cancels it with the last subscription (or when the store closes).
        """
        return

    async def _background(self) -> None:
        """Optional: work that lives from open to close (a log tailer, a LISTEN connection).

        The core starts it right after :meth:`_open`, restarts it with backoff whenever it
        raises, and cancels it (and waits for it) before :meth:`_close`.
        """
        return

    def _push(
        self, after: Position | None, filter: EventFilter | None
    ) -> AsyncIterator[RecordedEvent | CaughtUp]:
        """Optional: the server's push stream of events strictly after ``after``.

        Yields the events matching ``filter`` in global order, then
        :data:`~eventstore_core.subscription.CAUGHT_UP` once everything committed so far was
        sent, then new events as they commit. Raise
        :class:`~eventstore_core.BackendUnavailableError` when the stream breaks: the core
        calls ``_push`` again after the last event it received (with backoff, for
        ``reconnect_timeout``) and drops what is sent twice. Without this hook, subscriptions
        pull pages of :meth:`_read_all_page` and wait on the notifier.
        """
        raise NotImplementedError

    @abc.abstractmethod
    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        """Atomically write the batch if no id is stored and the version is as expected.

        Write nothing and return :class:`~eventstore_core.decision.Refused` when any event id
        of the batch is stored already (with those stored events and their batches' bounds),
        or when the stream's version lies outside
        :func:`~eventstore_core.decision.expected_range` (with the actual version). Otherwise
        write every event, contiguously, and return :class:`~eventstore_core.decision.Written`.
        The core decides what a refusal means, and calls again when the stream has meanwhile
        moved to an allowed version.
        """

    @abc.abstractmethod
    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        """Up to ``limit`` events of a stream from ``from_version`` inclusive.

        Ascending; or descending from ``from_version`` (``None``: the last) when ``backwards``
        (only asked when ``capabilities.backwards_reads``).
        """

    @abc.abstractmethod
    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        """Up to ``limit`` events strictly after ``after``, in global order, matching ``filter``.

        Must never return an event if an event with a smaller position may still appear.
        """

    @abc.abstractmethod
    async def _stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no events)."""

    @abc.abstractmethod
    async def _save_checkpoint(self, name: str, position: Position) -> None:
        """Upsert a checkpoint."""

    @abc.abstractmethod
    async def _load_checkpoint(self, name: str) -> Position | None:
        """Read a checkpoint."""

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        """Store a snapshot unless one of a higher version is stored (``capabilities.snapshots``).

        ``data`` is ``snapshot.data`` encoded as JSON. Of equal versions the last saved wins.
        """
        raise UnsupportedOperationError(f"{type(self).__name__} does not store snapshots")

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The snapshot with the highest version (of equal versions, the last saved)."""
        raise UnsupportedOperationError(f"{type(self).__name__} does not store snapshots")
