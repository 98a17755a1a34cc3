"""``memory://``: an in-process event store for tests and examples.

``memory://`` opens a fresh, empty store; ``memory://NAME`` shares one store among every
``connect`` in the process that uses the same name (until the last one is garbage-collected).
Nothing survives the process. All operations are synchronous between two ``await`` points,
which is what makes each append atomic.

``?partitions=N`` (N > 1) makes it a *partitioned* store, the way a Kafka topic is: each
stream lives in one partition (by a stable hash of its id), positions are
:class:`~eventstore_core.PartitionedPosition`, and ``read_all`` reads partition after
partition, so events of different partitions do not come in commit order. It exists so that
code and the conformance suite can be tried against a partitioned order without a broker.
"""

from __future__ import annotations

import dataclasses
import weakref
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from eventstore_core.adapter import (
    AppendResult,
    Capabilities,
    EventFilter,
    EventStore,
    ExpectedVersion,
    Notifier,
    ParsedUrl,
    PartitionedPosition,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    StoreOptions,
    Written,
    expected_range,
    serialization,
)

__all__ = ["MemoryEventStore", "MemoryOptions"]


class MemoryOptions(StoreOptions):
    """Options of the memory backend."""

    partitions: int = Field(default=1, ge=1, le=64)
    """More than 1: a partitioned store (positions ordered per partition only)."""


class _Log:
    """The shared state of one in-memory store."""

    def __init__(self, partitions: int) -> None:
        self.partitions: list[list[RecordedEvent]] = [[] for _ in range(partitions)]
        self.streams: dict[str, list[RecordedEvent]] = {}
        self.ids: dict[UUID, RecordedEvent] = {}
        # event id -> (first, last) versions of the append that wrote it (see Refused)
        self.batch_bounds: dict[UUID, tuple[int, int]] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.checkpoints: dict[str, Position] = {}
        self.notifiers: weakref.WeakSet[Notifier] = weakref.WeakSet()


_NAMED: weakref.WeakValueDictionary[str, _Log] = weakref.WeakValueDictionary()

_TOTAL = Capabilities(
    concurrency="multi-writer",
    idempotency="permanent",
    unique_event_ids="store",
    global_order="total",
    live_subscriptions="push",
    max_event_bytes=1024 * 1024,
    max_append_events=10_000,
    shared_across_processes=False,
    durable=False,
)


class MemoryEventStore(EventStore):
    """An event store held in this process's memory."""

    Options: ClassVar[type[StoreOptions]] = MemoryOptions
    capabilities = _TOTAL
    #: A total-order memory store's position is one sequence number (partitioned: checked by type).
    position_parts = 1

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        assert isinstance(options, MemoryOptions)
        count = options.partitions
        if count > 1:
            # Instance attribute: the class-level declaration stays the total-order one.
            self.capabilities = dataclasses.replace(_TOTAL, global_order="partitioned")
        name = (url.host or "") + url.path
        log = _NAMED.get(name) if name else None
        if log is None:
            log = _Log(count)
            if name:
                _NAMED[name] = log
        self._partitioned = len(log.partitions) > 1
        self._log = log
        log.notifiers.add(self._notifier)

    async def _setup(self) -> None:
        """Nothing to create."""

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        log = self._log
        stream = log.streams.get(stream_id, [])
        version = len(stream)
        existing = [self._public(log.ids[e.id]) for e in events if e.id in log.ids]
        lo, hi = expected_range(expected_version)
        if existing or not lo <= version <= hi:
            return Refused(version, existing, log.batch_bounds)
        partition = self._partition_of(stream_id)
        target = log.partitions[partition]
        bounds = (version + 1, version + len(events))
        now = datetime.now(UTC)
        for event in events:
            version += 1
            offset = len(target)
            recorded = RecordedEvent(
                stream_id=stream_id,
                version=version,
                position=(partition, offset) if self._partitioned else (offset + 1,),
                id=event.id,
                type=event.type,
                data=serialization.loads(event.data),
                metadata=serialization.loads(event.metadata),
                correlation_id=event.correlation_id,
                causation_id=event.causation_id,
                recorded_at=now,
            )
            target.append(recorded)
            stream.append(recorded)
            log.ids[event.id] = recorded
            log.batch_bounds[event.id] = bounds
        log.streams[stream_id] = stream
        for notifier in log.notifiers:  # other stores sharing this named log
            if notifier is not self._notifier:
                notifier.notify()
        return AppendResult(version=version, position=self._result_position(stream[-1]))

    def _partition_of(self, stream_id: str) -> int:
        return zlib.crc32(stream_id.encode()) % len(self._log.partitions)

    def _result_position(self, event: RecordedEvent) -> Position:
        if not self._partitioned:
            return event.position
        # What a tailer would have applied by now: everything, in every partition.
        partition, offset = event.position.parts
        frontier = tuple(len(p) for p in self._log.partitions)
        return PartitionedPosition(partition, offset, frontier)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        stream = self._log.streams.get(stream_id, [])
        if backwards:
            top = len(stream) if from_version is None else min(from_version, len(stream))
            return [self._public(e) for e in stream[max(0, top - limit) : top][::-1]]
        start = (from_version or 1) - 1
        return [self._public(e) for e in stream[start : start + limit]]

    def _public(self, event: RecordedEvent) -> RecordedEvent:
        # Events outside read_all carry no read's frontier: partition and offset only, and
        # the frontier of a read that took this partition up to here and nothing else.
        if not self._partitioned:
            return event
        partition, offset = event.position.parts
        frontier = [0] * len(self._log.partitions)
        frontier[partition] = offset + 1
        return _with_position(event, PartitionedPosition(partition, offset, frontier))

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        if self._partitioned:
            return self._read_partitions(after, filter, limit)
        events = self._log.partitions[0]
        start = 0 if after is None else after.parts[0]
        if filter is None:
            return events[start : start + limit]
        page: list[RecordedEvent] = []
        for event in events[start:]:
            if filter.matches(event.stream_id, event.type):
                page.append(event)
                if len(page) == limit:
                    break
        return page

    def _read_partitions(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> list[RecordedEvent]:
        # Partition after partition, like a consumer that drains one fetch at a time: events
        # of different partitions come out of commit order on purpose.
        partitions = self._log.partitions
        if after is not None and not isinstance(after, PartitionedPosition):
            raise TypeError(f"{after!r} is not a position of a partitioned store")
        frontier = [0 if after is None else after.next_offset(i) for i in range(len(partitions))]
        page: list[RecordedEvent] = []
        for number, partition in enumerate(partitions):
            for offset in range(frontier[number], len(partition)):
                event = partition[offset]
                if filter is not None and not filter.matches(event.stream_id, event.type):
                    continue
                frontier[number] = offset + 1
                page.append(
                    _with_position(event, PartitionedPosition(number, offset, tuple(frontier)))
                )
                if len(page) == limit:
                    return page
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


def _with_position(event: RecordedEvent, position: Position) -> RecordedEvent:
    return RecordedEvent(
        event.stream_id,
        event.version,
        position,
        event.id,
        event.type,
        event.data,
        event.metadata,
        event.correlation_id,
        event.causation_id,
        event.recorded_at,
    )
