"""The :class:`EventStore` base class: the public API, implemented once over backend hooks.

Everything the contract says that is not storage lives here, once: input validation, the
meaning of ``expected_version``, the idempotent-retry comparison, paging, subscriptions and
lifecycle. A backend subclasses :class:`EventStore` and implements the ``_``-prefixed hooks,
which receive validated input and only translate it to their storage.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import logging
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import ClassVar
from uuid import UUID

from eventstore_core.config import ParsedUrl, StoreOptions
from eventstore_core.errors import (
    ConcurrencyError,
    DuplicateEventIdError,
    EventStoreError,
    InvalidEventError,
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
    StreamState,
)
from eventstore_core.notify import Notifier
from eventstore_core.subscription import Subscription
from eventstore_core.validation import (
    PreparedEvent,
    prepare_batch,
    validate_after,
    validate_expected_version,
    validate_filter,
    validate_limit,
    validate_name,
    validate_snapshot,
    validate_version,
)

__all__ = ["EventStore", "check_expected_version", "idempotent_result"]

log = logging.getLogger("eventstore_core")


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """Raise :class:`ConcurrencyError` unless a stream at ``actual`` satisfies ``expected``.

    This is the one definition of ``expected_version``; backends that check inside their
    storage (a SQL predicate, a DynamoDB condition) call it to describe a failed check.
    """
    if expected is StreamState.ANY:
        return
    if expected is StreamState.NO_STREAM:
        ok = actual == 0
    elif expected is StreamState.STREAM_EXISTS:
        ok = actual > 0
    else:
        ok = actual == expected
    if not ok:
        raise ConcurrencyError(stream_id, expected, actual)


def idempotent_result(
    stream_id: str,
    events: Sequence[PreparedEvent],
    existing: Sequence[RecordedEvent],
    *,
    batch_bounds: Mapping[UUID, tuple[int, int]],
) -> AppendResult:
    """Decide what appending ``events`` means when some of their ids are already stored.

    ``existing`` holds the stored events whose ids are among ``events``' ids. ``batch_bounds``
    tells, for each of them (keyed by event id), the ``(first, last)`` versions, inclusive, of
    the batch it was written in: the stream versions of that append's first and last events.
    The backend records or derives them; an id without bounds counts as not the same batch.

    It is a retry of the same batch, and the original result is returned, only if every id
    was written, to this stream, in this order, with the same types, and that append wrote
    exactly these events: the stored batch spans the retried events' versions, no more and no
    less. Any other reuse of an id (another stream, a new event, old and new ids mixed, part
    of a written batch) raises :class:`DuplicateEventIdError`.
    """
    by_id = {event.id: event for event in existing}
    found = [by_id.get(event.id) for event in events]
    stored = [event for event in found if event is not None]
    same_batch = (
        len(stored) == len(events)
        and all(
            stored_event.stream_id == stream_id and stored_event.type == new.type
            for stored_event, new in zip(stored, events, strict=True)
        )
        and all(b.version == a.version + 1 for a, b in itertools.pairwise(stored))
        and all(
            batch_bounds.get(event.id) == (stored[0].version, stored[-1].version)
            for event in stored
        )
    )
    if same_batch:
        return AppendResult(version=stored[-1].version, position=stored[-1].position)
    ids = tuple(str(event.id) for event in stored)
    where = sorted({event.stream_id for event in stored})
    raise DuplicateEventIdError(
        f"event id(s) {', '.join(ids)} already written (to stream(s) {', '.join(where)}) "
        f"in another batch; only a retry of the very same batch to {stream_id!r} is idempotent",
        event_ids=ids,
    )


class EventStore(abc.ABC):
    """An event store: append, read, subscribe, snapshots and checkpoints, over one backend.

    Obtain one with :func:`eventstore_core.connect`; use it as ``async with`` (or call
    :meth:`open` and :meth:`close`).
    """

    #: The options model of this backend (query-string and keyword options are checked by it).
    Options: ClassVar[type[StoreOptions]] = StoreOptions
    #: What this backend guarantees; may be refined per instance in ``__init__``.
    capabilities: Capabilities

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        self._url = url
        self.options = options
        self._notifier = Notifier()
        self._is_open = False
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._watcher: asyncio.Task[None] | None = None
        self._watching = 0

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
        log.debug("opened %s", self.url)

    async def close(self) -> None:
        """Stop every subscription and release every connection and task."""
        if not self._is_open:
            return
        for subscription in list(self._subscriptions):
            await subscription.close()
        await self._stop_watching()
        self._is_open = False
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

    @abc.abstractmethod
    async def setup(self) -> None:
        """Create tables, indexes or topics if missing. Idempotent, safe to run concurrently."""

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
        )
        self._check_open()
        result = await self._append(stream_id, prepared, expected)
        self._notifier.notify()
        return result

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
        position = validate_after(after)
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
        position = validate_after(after)
        event_filter = validate_filter(filter)
        if name is not None:
            validate_name(name, "name")
        self._check_open()
        return Subscription(self, after=position, filter=event_filter, name=name)

    # -- checkpoints and snapshots -----------------------------------------------------------

    async def save_checkpoint(self, name: str, position: Position | str) -> None:
        """Store ``position`` under ``name``, replacing what was there."""
        validate_name(name, "checkpoint name")
        parsed = validate_after(position)
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
        data = validate_snapshot(snapshot, max_bytes=self.capabilities.max_snapshot_bytes)
        self._check_open()
        await self._save_snapshot(snapshot, data)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot saved for ``stream_id``, or None."""
        validate_name(stream_id, "stream_id")
        self._check_open()
        return await self._load_snapshot(stream_id)

    # -- hooks for backends ------------------------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> None:
        """Open connections; start any watcher that calls ``self._notifier.notify()``."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release every connection and cancel every task the backend started."""

    async def _watch(self) -> None:
        """Optional hook: watch for commits made by other processes, for live subscriptions.

        A backend whose storage can be shared implements this as a loop (a LISTEN connection,
        a cheap poll) that calls ``self._notifier.notify()`` when something may have been
        committed elsewhere. The core runs it as one task per store while at least one
        subscription is open, and cancels it with the last one (or when the store closes).
        """
        return

    async def _subscription_started(self) -> None:
        # One watcher per store, whatever the number of subscriptions.
        self._watching += 1
        if self._watcher is None and type(self)._watch is not EventStore._watch:
            self._watcher = asyncio.create_task(
                self._run_watch(), name=f"eventstore-watch {self.url}"
            )

    async def _subscription_stopped(self) -> None:
        self._watching -= 1
        if self._watching <= 0:
            self._watching = 0
            await self._stop_watching()

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _run_watch(self) -> None:
        try:
            await self._watch()
        except Exception:
            # Subscriptions still have their fallback poll; say why they became slower.
            log.exception("the watcher of %s failed; live subscriptions fall back to polling", self)

    @abc.abstractmethod
    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        """Atomically check the version (:func:`check_expected_version`) and write the batch.

        If any event id already exists, return :func:`idempotent_result` (whatever the
        expected version) and write nothing; that needs, for each stored event, the first and
        last version of the batch it was written in, so a backend records or derives them.
        """

    @abc.abstractmethod
    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        """Up to ``limit`` events of a stream from ``from_version`` inclusive.

        Ascending; or descending from ``from_version`` (``None``: the last) when ``backwards``.
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

    @abc.abstractmethod
    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        """Store a snapshot; ``data`` is ``snapshot.data`` encoded as JSON."""

    @abc.abstractmethod
    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of a stream (highest version, then latest saved)."""
