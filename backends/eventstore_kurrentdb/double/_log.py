"""The double's database: one in-memory transaction log with KurrentDB's write rules.

Nothing here speaks gRPC; the servicers translate requests into calls on :class:`Log`.
Each rule names where it comes from in KurrentDB's own source (repository kurrent-io/KurrentDB,
read at commit 44996ed05, July 2026) so that a reader can check it; no code was copied.

- **Positions** (``Log.append``): a record's position is its byte offset in the log, and the
  log grows by the record's size, so positions are sparse and increase with commit order. An
  event's commit and prepare positions are equal (every record of a write is its own prepare,
  ``LogRecord.Prepare`` with ``PrepareFlags.IsCommitted``, StorageWriterService.cs); an append
  answers with the position of its last event (``WriteEventsCompleted.CommitPosition``).
- **Revisions** are 0-based; a stream with no events is at -1 (``ExpectedVersion.NoStream``)
  and a tombstoned one at ``long.MaxValue`` (``EventNumber.DeletedStream``).
- **Expected versions and idempotency** (``Log._check``): the decision table of
  ``IndexWriter.CheckCommit`` (src/KurrentDB.Core/Services/Storage/ReaderIndex/IndexWriter.cs).
  With ANY or EXISTS ("weak" checks) a retry is recognised only through ``_committedEvents``,
  a ``BoundedCache<Guid, EventInfo>`` limited to ``ESConsts.CommittedEventsMemCacheLimit``
  (8 MiB) of entries and lost on restart; the cached event must also be in the same stream.
  With NO_STREAM or an exact revision lower than the current one ("strong" checks) the index
  is read at the revisions the batch would occupy, so a retry is recognised for as long as
  the events exist. An exact revision equal to the current one is simply written: nothing is
  checked, so a retry sent with the stream's *new* revision writes duplicates. A batch of which
  only a prefix is already written is ``CorruptedIdempotency``, answered as a wrong expected
  version.
- **Multi-stream writes** (``VerifyCommitChecks`` in StorageWriterService.cs): every stream is
  checked; the write goes ahead only if all are OK; if every stream with events is
  idempotent the original result is returned; a mixture is refused, reporting the first
  stream that failed or was idempotent.
- **Deletes** (``StorageMessage.WriteDelete`` handler, StorageWriterService.cs): a soft delete
  replaces the stream's metadata with ``{"$tb": long.MaxValue}``; a stream that never existed
  cannot be soft-deleted (wrong expected version, current -1). The next append to a
  soft-deleted stream re-creates it, continuing the revisions, and sets ``$tb`` to its first
  new revision (``SoftUndeleteMetastream``). A tombstone writes a ``$streamDeleted`` event at
  revision ``long.MaxValue``; afterwards the stream can be neither written nor read.
- **Stream metadata** lives in ``$$<stream>`` as ``$metadata`` events; ``$maxCount`` and
  ``$tb`` hide events from stream reads (``$all`` still shows them until a scavenge, which the
  double never runs).
- **Append size** (``Streams.Append.cs``, ``Event.SizeOnDisk`` in src/KurrentDB.Core/Data/
  Event.cs): an event's size is ``len(data) + len(metadata) + 2 * len(type)``; a request over
  ``MaxAppendSize`` is refused. The default here, 1 MiB, is the default of EventStoreDB up to
  KurrentDB 25.0 (``ClusterVNodeOptions.MaxAppendSize = 1_024 * 1_024``, raised to 256 MiB by
  commit 01b3d7318 in 25.1); ``--max-append-size`` changes it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

#: ``EventNumber.DeletedStream``: the revision of a tombstone, and of a tombstoned stream.
DELETED_STREAM: Final = 2**63 - 1
#: ``ExpectedVersion`` constants, as the server represents them internally.
NO_STREAM: Final = -1
ANY: Final = -2
STREAM_EXISTS: Final = -4

#: ``ESConsts.CommittedEventsMemCacheLimit``.
DEFAULT_ID_CACHE_BYTES: Final = 8 * 1024 * 1024
#: ``MaxAppendSize`` of EventStoreDB and KurrentDB up to 25.0.
DEFAULT_MAX_APPEND_SIZE: Final = 1024 * 1024
#: A fixed per-record overhead, so that positions are sparse like byte offsets in a real log.
_RECORD_OVERHEAD: Final = 96
#: Where the first record goes; a real log starts with its chunk header and epoch records.
_FIRST_POSITION: Final = 1 << 10


def ticks_now() -> int:
    """The ``created`` stamp of a record: 100-ns ticks since the Unix epoch, as the server sends."""
    return time.time_ns() // 100


@dataclass(frozen=True, slots=True)
class Record:
    """One event in the log."""

    position: int
    stream: str
    revision: int
    event_id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes
    is_json: bool
    created: int


@dataclass(frozen=True, slots=True)
class ProposedEvent:
    """An event as a client sends it, before it has a revision and a position."""

    event_id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes
    is_json: bool

    @property
    def size(self) -> int:
        """``Event.SizeOnDisk``: data, metadata and the type counted as UTF-16."""
        return len(self.data) + len(self.metadata) + 2 * len(self.type)


class Outcome(Enum):
    """What a consistency check decided (``CommitDecision``)."""

    OK = "ok"
    IDEMPOTENT = "idempotent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Check:
    """The result of checking one stream of a write (``CommitCheckResult``)."""

    outcome: Outcome
    current: int
    soft_deleted: bool = False
    first: int = -1
    last: int = -1
    position: int = -1


@dataclass(frozen=True, slots=True)
class StreamWrite:
    """The part of a write that goes to one stream."""

    stream: str
    expected: int
    events: Sequence[ProposedEvent]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A write's outcome: per stream the last revision, and the position of the last event."""

    last_revisions: tuple[int, ...]
    position: int


class WrongExpectedVersion(Exception):  # noqa: N818 (the server's own name)
    """A consistency check failed on ``streams[index]``."""

    def __init__(self, index: int, stream: str, expected: int, current: int) -> None:
        super().__init__(f"{stream}: expected {expected}, current {current}")
        self.index = index
        self.stream = stream
        self.expected = expected
        self.current = current


class StreamDeleted(Exception):  # noqa: N818
    """The stream is tombstoned."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.stream = stream


class AppendTooLarge(Exception):  # noqa: N818
    """The request is larger than ``MaxAppendSize``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} > {limit}")
        self.size = size
        self.limit = limit


@dataclass(slots=True)
class _Stream:
    records: list[Record] = field(default_factory=list)
    #: The last revision written (the tombstone's, once tombstoned).
    last: int = -1

    @property
    def tombstoned(self) -> bool:
        return self.last == DELETED_STREAM


class _IdCache:
    """``BoundedCache<Guid, EventInfo>``: recently committed ids, bounded by memory, oldest out."""

    def __init__(self, capacity_bytes: int) -> None:
        self._capacity = capacity_bytes
        self._size = 0
        self._entries: OrderedDict[uuid.UUID, tuple[str, int]] = OrderedDict()

    @staticmethod
    def _entry_size(stream: str) -> int:
        # The sizer of IndexWriter: 16 (Guid) + 4 + a pointer + the stream id (UTF-16 chars).
        return 16 + 4 + 8 + 2 * len(stream)

    def put(self, event_id: uuid.UUID, stream: str, revision: int) -> None:
        old = self._entries.pop(event_id, None)
        if old is not None:
            self._size -= self._entry_size(old[0])
        self._entries[event_id] = (stream, revision)
        self._size += self._entry_size(stream)
        while self._size > self._capacity and self._entries:
            _, (old_stream, _) = self._entries.popitem(last=False)
            self._size -= self._entry_size(old_stream)

    def get(self, event_id: uuid.UUID) -> tuple[str, int] | None:
        return self._entries.get(event_id)

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0


def is_meta_stream(stream: str) -> bool:
    """``$$x`` holds the metadata of ``x``."""
    return stream.startswith("$$")


class Log:
    """The whole database of the double: the log, the streams, the id cache."""

    def __init__(
        self,
        *,
        id_cache_bytes: int = DEFAULT_ID_CACHE_BYTES,
        max_append_size: int = DEFAULT_MAX_APPEND_SIZE,
        seed_system_events: bool = True,
    ) -> None:
        self.max_append_size = max_append_size
        self._records: list[Record] = []
        self._positions: list[int] = []
        self._streams: dict[str, _Stream] = {}
        self._ids = _IdCache(id_cache_bytes)
        self._end = _FIRST_POSITION
        self._grown = asyncio.Event()
        if seed_system_events:
            # A fresh node's log is not empty: it starts with system records, which clients
            # must filter out (``$`` streams, ``$`` event types).
            self.write(
                [
                    StreamWrite(
                        "$$$scavenges",
                        ANY,
                        [_system_event("$metadata", {"$maxAge": 2592000})],
                    ),
                    StreamWrite(
                        "$epoch-information",
                        ANY,
                        [_system_event("$epoch-information", {"epochNumber": 0})],
                    ),
                ]
            )

    # -- what a restart does ------------------------------------------------------------

    def forget_cache(self) -> None:
        """What a server restart loses: the id cache is memory only."""
        self._ids.clear()

    # -- reading -------------------------------------------------------------------------

    @property
    def end(self) -> int:
        """The position after the last record (``TFPos.HeadOfTf`` as a number)."""
        return self._end

    def __len__(self) -> int:
        return len(self._records)

    def record_at(self, index: int) -> Record:
        """The ``index``-th record of the log."""
        return self._records[index]

    def index_from(self, position: int) -> int:
        """The index of the first record at or after ``position``."""
        return bisect_left(self._positions, position)

    def index_after(self, position: int) -> int:
        """The index of the first record strictly after ``position``."""
        return bisect_right(self._positions, position)

    def is_valid_position(self, position: int) -> bool:
        """Whether a read may start at ``position``: a record's, the start or the end.

        KurrentDB 25.1+ refuses any other (``ReadResponseException.InvalidPosition``).
        """
        if position in (0, self._end):
            return True
        index = self.index_from(position)
        return index < len(self._positions) and self._positions[index] == position

    def changed(self) -> asyncio.Event:
        """An event set at the next write: take it *before* looking at the log."""
        return self._grown

    def last_revision(self, stream: str) -> int:
        """The stream's last revision, -1 if it has none, ``DELETED_STREAM`` if tombstoned."""
        found = self._streams.get(stream)
        return -1 if found is None else found.last

    def metadata_of(self, stream: str) -> dict[str, object]:
        """The stream's current metadata (the last event of ``$$stream``), or ``{}``."""
        meta = self._streams.get("$$" + stream)
        if meta is None or not meta.records:
            return {}
        try:
            loaded = json.loads(meta.records[-1].data)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def is_soft_deleted(self, stream: str) -> bool:
        """``IndexWriter.IsSoftDeleted``: the metadata's ``$tb`` is ``DeletedStream``."""
        return self.metadata_of(stream).get("$tb") == DELETED_STREAM

    def is_tombstoned(self, stream: str) -> bool:
        """Whether reads of the stream fail as deleted: it, or for ``$$x`` the stream ``x``,
        was tombstoned. (A tombstoned stream's metastream can still be written.)"""
        if is_meta_stream(stream) and self.last_revision(stream[2:]) == DELETED_STREAM:
            return True
        return self.last_revision(stream) == DELETED_STREAM

    def visible_records(self, stream: str) -> list[Record] | None:
        """The events a stream read may return, ``None`` if the stream "does not exist".

        ``$tb`` (truncate before) and ``$maxCount`` hide older events; a soft-deleted stream
        reads as not found until it is written again.
        """
        found = self._streams.get(stream)
        if found is None or not found.records:
            return None
        if is_meta_stream(stream):
            return list(found.records)
        metadata = self.metadata_of(stream)
        if metadata.get("$tb") == DELETED_STREAM:
            return None
        records = found.records
        first = 0
        truncate_before = metadata.get("$tb")
        if isinstance(truncate_before, int) and truncate_before > 0:
            first = max(first, truncate_before)
        max_count = metadata.get("$maxCount")
        if isinstance(max_count, int) and max_count > 0:
            first = max(first, found.last + 1 - max_count)
        if first <= records[0].revision:
            return list(records)
        return [r for r in records if r.revision >= first]

    # -- writing -------------------------------------------------------------------------

    def write(self, writes: Sequence[StreamWrite], *, check_size: bool = True) -> WriteResult:
        """Check every stream, then write all the events atomically or none of them.

        Raises :class:`WrongExpectedVersion`, :class:`StreamDeleted` or :class:`AppendTooLarge`
        (the last unless ``check_size`` is false: the caller measured the request itself).
        """
        size = sum(event.size for write in writes for event in write.events)
        if check_size and size > self.max_append_size:
            raise AppendTooLarge(size, self.max_append_size)
        checks = [self._check(w.stream, w.expected, w.events) for w in writes]
        for write, check in zip(writes, checks, strict=True):
            if _is_deleted(write.expected, check):
                raise StreamDeleted(write.stream)
        if all(c.outcome is Outcome.OK for c in checks):
            return self._commit(writes, checks)
        with_events = [c for w, c in zip(writes, checks, strict=True) if w.events]
        if with_events and all(c.outcome is Outcome.IDEMPOTENT for c in with_events):
            return WriteResult(tuple(c.last for c in checks), max(c.position for c in with_events))
        for index, (write, check) in enumerate(zip(writes, checks, strict=True)):
            if check.outcome is not Outcome.OK:
                raise WrongExpectedVersion(index, write.stream, write.expected, check.current)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, stream: str, expected: int, events: Sequence[ProposedEvent]) -> Check:
        """``IndexWriter.CheckCommit`` for one stream."""
        current = self.last_revision(stream)
        failed = Check(Outcome.FAILED, current)
        if current == DELETED_STREAM:
            return failed
        soft_deleted = self.is_soft_deleted(stream)
        if expected == STREAM_EXISTS:
            if soft_deleted:
                return Check(Outcome.FAILED, current, soft_deleted=True)
            if current < 0 and self.last_revision("$$" + stream) < 0:
                return failed
        if expected in (ANY, STREAM_EXISTS):
            return self._weak_check(stream, current, events, soft_deleted)
        if expected < current:
            return self._strong_check(stream, expected, current, events, soft_deleted)
        if expected > current:
            return failed
        return Check(Outcome.OK, current, soft_deleted)

    def _weak_check(
        self, stream: str, current: int, events: Sequence[ProposedEvent], soft_deleted: bool
    ) -> Check:
        """Only the id cache tells a retry from a new write."""
        first = last = -1
        for event in events:
            cached = self._ids.get(event.event_id)
            if cached is not None and cached[0] == stream:
                if first < 0:
                    first = cached[1]
                last = cached[1]
                continue
            if first >= 0:  # a prefix was written, the rest is new: CorruptedIdempotency
                return Check(Outcome.FAILED, current)
            return Check(Outcome.OK, current, soft_deleted)
        if first < 0:  # no events at all
            return Check(Outcome.OK, current, soft_deleted)
        return Check(
            Outcome.IDEMPOTENT, current, first=first, last=last, position=self._pos(stream, last)
        )

    def _strong_check(
        self,
        stream: str,
        expected: int,
        current: int,
        events: Sequence[ProposedEvent],
        soft_deleted: bool,
    ) -> Check:
        """The index is read where the batch would be: permanent, but only at those revisions."""
        found = self._streams[stream] if stream in self._streams else _Stream()
        revision = expected
        for i, event in enumerate(events):
            revision += 1
            stored = _record_with_revision(found.records, revision)
            if stored is not None and stored.event_id == event.event_id:
                continue
            if i > 0:
                return Check(Outcome.FAILED, current)
            if expected == NO_STREAM and soft_deleted:
                return Check(Outcome.OK, current, soft_deleted=True)
            return Check(Outcome.FAILED, current)
        if not events:
            if expected == NO_STREAM and soft_deleted:
                return Check(Outcome.OK, current, soft_deleted=True)
            return Check(Outcome.FAILED, current)
        return Check(
            Outcome.IDEMPOTENT,
            current,
            first=expected + 1,
            last=revision,
            position=self._pos(stream, revision),
        )

    def _pos(self, stream: str, revision: int) -> int:
        stored = _record_with_revision(self._streams[stream].records, revision)
        return stored.position if stored is not None else -1

    def _commit(self, writes: Sequence[StreamWrite], checks: Sequence[Check]) -> WriteResult:
        lasts: list[int] = []
        position = -1
        undelete: list[tuple[str, int]] = []
        for write, check in zip(writes, checks, strict=True):
            stream = self._streams.setdefault(write.stream, _Stream())
            if check.soft_deleted and write.events:
                undelete.append((write.stream, stream.last + 1))
            elif (
                is_meta_stream(write.stream)
                and write.events
                and self.is_soft_deleted(write.stream[2:])
            ):
                # Writing the metadata of a soft-deleted stream undeletes it too
                # (``IsSoftDeletedMeta`` in StorageWriterService).
                original = write.stream[2:]
                undelete.append((original, self.last_revision(original) + 1))
            for event in write.events:
                position = self._add(stream, write.stream, event, stream.last + 1)
            lasts.append(stream.last)
        for name, first_revision in undelete:
            self._soft_undelete(name, first_revision)
        if position < 0:
            position = self._end
        self._wake()
        return WriteResult(tuple(lasts), position)

    def _add(self, stream: _Stream, name: str, event: ProposedEvent, revision: int) -> int:
        record = Record(
            position=self._end,
            stream=name,
            revision=revision,
            event_id=event.event_id,
            type=event.type,
            data=event.data,
            metadata=event.metadata,
            is_json=event.is_json,
            created=ticks_now(),
        )
        self._records.append(record)
        self._positions.append(record.position)
        self._end += _RECORD_OVERHEAD + len(name.encode()) + event.size
        stream.records.append(record)
        stream.last = revision
        self._ids.put(event.event_id, name, revision)
        return record.position

    def _soft_undelete(self, stream: str, first_revision: int) -> None:
        metadata = self.metadata_of(stream)
        metadata["$tb"] = first_revision
        meta = self._streams.setdefault("$$" + stream, _Stream())
        self._add(meta, "$$" + stream, _system_event("$metadata", metadata), meta.last + 1)

    def _wake(self) -> None:
        self._grown.set()
        self._grown = asyncio.Event()

    def soft_delete(self, stream: str, expected: int) -> int:
        """``Delete``: check, then replace the metadata with ``{"$tb": DeletedStream}``."""
        check = self._check(stream, expected, [_system_event("$delete", {})])
        if _is_deleted(expected, check):
            raise StreamDeleted(stream)
        if check.outcome is not Outcome.OK:
            raise WrongExpectedVersion(0, stream, expected, check.current)
        if self.last_revision(stream) < 0 and self.last_revision("$$" + stream) < 0:
            raise WrongExpectedVersion(0, stream, expected, -1)
        meta = self._streams.setdefault("$$" + stream, _Stream())
        position = self._add(
            meta, "$$" + stream, _system_event("$metadata", {"$tb": DELETED_STREAM}), meta.last + 1
        )
        self._wake()
        return position

    def tombstone(self, stream: str, expected: int) -> int:
        """``Tombstone``: check, then write ``$streamDeleted`` at ``DeletedStream``."""
        check = self._check(stream, expected, [_system_event("$delete", {})])
        if _is_deleted(expected, check):
            raise StreamDeleted(stream)
        if check.outcome is not Outcome.OK:
            raise WrongExpectedVersion(0, stream, expected, check.current)
        found = self._streams.setdefault(stream, _Stream())
        position = self._add(found, stream, _system_event("$streamDeleted", {}), DELETED_STREAM)
        self._wake()
        return position

    def iter_from(self, index: int) -> Iterator[Record]:
        """Records from ``index`` to the current end (a snapshot: later writes not included)."""
        stop = len(self._records)
        for i in range(index, stop):
            yield self._records[i]


def _is_deleted(expected: int, check: Check) -> bool:
    """``RequestManagerBase``: a failure is "stream deleted" if the stream is tombstoned, or
    soft-deleted while expected to exist; any other failure is a wrong expected version."""
    if check.outcome is not Outcome.FAILED:
        return False
    return check.current == DELETED_STREAM or (expected == STREAM_EXISTS and check.soft_deleted)


def _record_with_revision(records: list[Record], revision: int) -> Record | None:
    # Revisions of a stream are contiguous from its first record, except the tombstone.
    if not records:
        return None
    offset = revision - records[0].revision
    if 0 <= offset < len(records) and records[offset].revision == revision:
        return records[offset]
    return None


def _system_event(event_type: str, data: dict[str, object]) -> ProposedEvent:
    return ProposedEvent(uuid.uuid4(), event_type, json.dumps(data).encode(), b"", True)
