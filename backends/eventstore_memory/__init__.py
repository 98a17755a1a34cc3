"""``memory://``: an in-process event store for tests and examples.

``memory://`` opens a fresh, empty store; ``memory://NAME`` shares one store among every
``connect`` in the process that uses the same name (until the last one is garbage-collected).
Nothing survives the process. All operations are synchronous between two ``await`` points,
which is what makes each append atomic and the global order total.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID

from eventstore_core import serialization
from eventstore_core.config import ParsedUrl, StoreOptions
from eventstore_core.models import (
    AppendResult,
    Capabilities,
    EventFilter,
    ExpectedVersion,
    Position,
    RecordedEvent,
    Snapshot,
)
from eventstore_core.notify import Notifier
from eventstore_core.store import EventStore, check_expected_version, idempotent_result
from eventstore_core.validation import PreparedEvent

__all__ = ["MemoryEventStore"]


class _Log:
    """The shared state of one in-memory store."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []  # index i holds position (i + 1,)
        self.streams: dict[str, list[int]] = {}  # stream id -> indexes into events
        self.ids: dict[UUID, int] = {}
        # event id -> (first, last) versions of the append that wrote it (idempotent_result)
        self.batch_bounds: dict[UUID, tuple[int, int]] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.checkpoints: dict[str, Position] = {}
        self.notifiers: weakref.WeakSet[Notifier] = weakref.WeakSet()


_NAMED: weakref.WeakValueDictionary[str, _Log] = weakref.WeakValueDictionary()


class MemoryEventStore(EventStore):
    """An event store held in this process's memory."""

    Options: ClassVar[type[StoreOptions]] = StoreOptions
    capabilities = Capabilities(
        concurrency="multi-writer",
        idempotency="permanent",
        global_order="total",
        live_subscriptions="push",
        max_event_bytes=1024 * 1024,
        max_append_events=10_000,
        shared_across_processes=False,
        durable=False,
    )

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        name = (url.host or "") + url.path
        log = _NAMED.get(name) if name else None
        if log is None:
            log = _Log()
            if name:
                _NAMED[name] = log
        self._log = log
        log.notifiers.add(self._notifier)

    async def setup(self) -> None:
        """Nothing to create."""

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        log = self._log
        existing = [log.events[log.ids[e.id]] for e in events if e.id in log.ids]
        if existing:
            return idempotent_result(stream_id, events, existing, batch_bounds=log.batch_bounds)
        indexes = log.streams.get(stream_id, [])
        version = len(indexes)
        check_expected_version(stream_id, expected_version, version)
        bounds = (version + 1, version + len(events))
        now = datetime.now(UTC)
        for event in events:
            version += 1
            index = len(log.events)
            log.events.append(
                RecordedEvent(
                    stream_id=stream_id,
                    version=version,
                    position=Position((index + 1,)),
                    id=event.id,
                    type=event.type,
                    data=serialization.loads(event.data),
                    metadata=serialization.loads(event.metadata),
                    correlation_id=event.correlation_id,
                    causation_id=event.causation_id,
                    recorded_at=now,
                )
            )
            log.ids[event.id] = index
            log.batch_bounds[event.id] = bounds
            indexes.append(index)
        log.streams[stream_id] = indexes
        for notifier in log.notifiers:  # other stores sharing this named log
            if notifier is not self._notifier:
                notifier.notify()
        last = log.events[-1]
        return AppendResult(version=last.version, position=last.position)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        indexes = self._log.streams.get(stream_id, [])
        if backwards:
            top = len(indexes) if from_version is None else min(from_version, len(indexes))
            chosen = indexes[max(0, top - limit) : top][::-1]
        else:
            start = (from_version or 1) - 1
            chosen = indexes[start : start + limit]
        return [self._log.events[i] for i in chosen]

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        events = self._log.events
        start = 0 if after is None else bisect.bisect_right(events, after, key=_position)
        if filter is None:
            return events[start : start + limit]
        page: list[RecordedEvent] = []
        for event in events[start:]:
            if filter.matches(event.stream_id, event.type):
                page.append(event)
                if len(page) == limit:
                    break
        return page

    async def _stream_version(self, stream_id: str) -> int:
        return len(self._log.streams.get(stream_id, ()))

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        self._log.checkpoints[name] = position

    async def _load_checkpoint(self, name: str) -> Position | None:
        return self._log.checkpoints.get(name)

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        current = self._log.snapshots.get(snapshot.stream_id)
        if current is None or snapshot.version >= current.version:
            # Store a decoded copy, so later changes to the caller's dict cannot leak in.
            self._log.snapshots[snapshot.stream_id] = Snapshot(
                snapshot.stream_id, snapshot.version, snapshot.type, serialization.loads(data)
            )

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self._log.snapshots.get(stream_id)


def _position(event: RecordedEvent) -> Position:
    return event.position
