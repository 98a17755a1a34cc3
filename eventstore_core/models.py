"""The value types of the public contract: events, results, positions, filters, capabilities."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias
from uuid import UUID, uuid4

from orjson import loads as _loads

from eventstore_core.errors import InvalidEventError

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "Capabilities",
    "EventFilter",
    "ExpectedVersion",
    "NewEvent",
    "PartitionedPosition",
    "Position",
    "RecordedEvent",
    "Snapshot",
    "StreamState",
    "category_of",
]


class StreamState(enum.Enum):
    """The symbolic values ``expected_version`` accepts besides an exact version."""

    ANY = "ANY"
    """No check: append whatever the stream's version."""
    NO_STREAM = "NO_STREAM"
    """The stream must have no events (the same as ``expected_version=0``)."""
    STREAM_EXISTS = "STREAM_EXISTS"
    """The stream must have at least one event."""

    def __repr__(self) -> str:
        return f"es.{self.name}"


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM
STREAM_EXISTS = StreamState.STREAM_EXISTS

#: ``es.ANY``, ``es.NO_STREAM``, ``es.STREAM_EXISTS`` or the exact current version (``>= 0``).
ExpectedVersion: TypeAlias = StreamState | int


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``data`` and ``metadata`` must be JSON-serialisable mappings."""

    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: UUID = field(default_factory=uuid4)
    correlation_id: str | None = None
    causation_id: str | None = None


#: The most digits a position token's part may have (2**64 has 20; leading zeros leave room).
_MAX_PART_DIGITS = 32


class Position:
    """An opaque, ordered place in a store's global log.

    Positions compare (``<``, ``==``) and hash; ``str(position)`` is a token that
    :meth:`parse` (and every ``after=`` parameter) turns back into the same position, so a
    checkpoint can be stored anywhere. The parts are backend-specific (a sequence number, a
    ``(transaction id, sequence)`` pair, ...): treat them as opaque. Immutable.

    The positions of a total-order store are totally ordered. A partitioned store's positions
    are :class:`PartitionedPosition`, which carry a cursor for every partition; they compare
    only where an order exists, and raise :class:`TypeError` otherwise.
    """

    # A private slot behind a read-only property rather than a frozen dataclass: backends
    # build one per event read (see RecordedEvent), and a frozen dataclass pays a C call to
    # object.__setattr__ for its field.
    __slots__ = ("_parts",)

    def __init__(self, parts: tuple[int, ...]) -> None:
        parts = tuple(parts)
        if not parts or any(type(p) is not int or p < 0 for p in parts):
            raise InvalidEventError(
                f"position parts must be non-negative integers, got {parts!r}",
                field="position",
            )
        self._parts = parts

    @property
    def parts(self) -> tuple[int, ...]:
        """The backend-specific integers this position is made of."""
        return self._parts

    def __str__(self) -> str:
        return ":".join(str(p) for p in self._parts)

    def __repr__(self) -> str:
        return f"Position({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._parts)

    def _key(self) -> tuple[int, ...]:
        return self._parts

    def _compare(self, other: object) -> int | None:
        """-1, 0 or 1; None for NotImplemented. Raises TypeError where no order exists."""
        if not isinstance(other, Position):
            return None
        if type(other) is not Position or type(self) is not Position:
            raise TypeError(
                f"positions {self} and {other} come from different kinds of store and have no order"
            )
        a, b = self._parts, other._parts
        return (a > b) - (a < b)

    def __lt__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c < 0

    def __le__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c <= 0

    def __gt__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c > 0

    def __ge__(self, other: object) -> bool:
        c = self._compare(other)
        return NotImplemented if c is None else c >= 0

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Position, (self._parts,))

    @classmethod
    def of(cls, *parts: int) -> Position:
        """A position from parts a backend read from its own storage (not validated: fast)."""
        position = _new(Position)
        position._parts = parts
        return position

    @classmethod
    def parse(cls, value: Position | str) -> Position:
        """Turn a token made by ``str(position)`` (or a position) into a :class:`Position`.

        Tokens with an ``@`` are :class:`PartitionedPosition` tokens; all others are integers
        joined by ``:``.
        """
        if isinstance(value, Position):
            return value
        if not isinstance(value, str):
            raise InvalidEventError(
                f"a position must be a Position or its string token, got {type(value).__name__}",
                field="position",
            )
        if "@" in value:
            return PartitionedPosition.parse_token(value)
        pieces = value.split(":")
        # isdecimal() alone would admit other scripts' digits; tokens are ASCII. A part longer
        # than any 64-bit number is refused before int() (which refuses 4,300 digits and more
        # with a plain ValueError, and spends quadratic time getting there).
        if not all(p.isascii() and p.isdigit() and len(p) <= _MAX_PART_DIGITS for p in pieces):
            raise InvalidEventError(
                f"{value!r} is not a position token (expected integers joined by ':')",
                field="position",
            )
        return cls(tuple(int(p) for p in pieces))


class PartitionedPosition(Position):
    """A position in a store that orders events only within each partition (Kafka-like).

    Besides the event's own ``partition`` and ``offset``, it carries the ``frontier`` of the
    read that delivered it: ``frontier[i]`` is the next offset to read in partition ``i``
    (so ``frontier[partition] == offset + 1``). Resuming ``after`` it reads, in every
    partition ``i``, the offsets from ``frontier[i]`` on, so a checkpoint saved inside a
    subscription loop resumes exactly — nothing skipped, nothing repeated — although the
    partitions were interleaved. A partition missing from a shorter frontier counts as 0
    (partitions are only ever added).

    Equality and hashing are those of the event (partition and offset): the same event read
    twice has equal positions, even though each read's frontier resumes that read.

    Order: within one partition, by offset; across partitions, by frontier when one frontier
    is at or beyond the other in every partition (always so for positions of one read);
    otherwise there is no order and comparing raises :class:`TypeError`.

    Token: ``"{partition}/{offset}@{f0}.{f1}..."``.
    """

    __slots__ = ("_frontier", "_offset", "_partition")

    def __init__(self, partition: int, offset: int, frontier: Sequence[int]) -> None:
        frontier = tuple(frontier)
        values = (partition, offset, *frontier)
        if any(type(v) is not int or v < 0 for v in values) or partition >= len(frontier):
            raise InvalidEventError(
                f"a partitioned position needs non-negative integers and a frontier covering "
                f"its partition, got partition={partition!r}, offset={offset!r}, "
                f"frontier={frontier!r}",
                field="position",
            )
        if frontier[partition] != offset + 1:
            raise InvalidEventError(
                f"the frontier of partition {partition} must be offset + 1 = {offset + 1}, "
                f"got {frontier[partition]}",
                field="position",
            )
        self._partition = partition
        self._offset = offset
        self._frontier = frontier
        self._parts = (partition, offset)

    @property
    def partition(self) -> int:
        """The partition of the event."""
        return self._partition

    @property
    def offset(self) -> int:
        """The event's offset within its partition."""
        return self._offset

    @property
    def frontier(self) -> tuple[int, ...]:
        """The next offset to read in each partition, after this event."""
        return self._frontier

    def next_offset(self, partition: int) -> int:
        """Where a read resuming after this position starts in ``partition``."""
        return self._frontier[partition] if partition < len(self._frontier) else 0

    def __str__(self) -> str:
        return f"{self._partition}/{self._offset}@{'.'.join(map(str, self._frontier))}"

    def __repr__(self) -> str:
        return f"PartitionedPosition({str(self)!r})"

    def _key(self) -> tuple[int, ...]:
        return self._parts

    def __hash__(self) -> int:
        return hash(self._parts)

    def _compare(self, other: object) -> int | None:
        if not isinstance(other, Position):
            return None
        if not isinstance(other, PartitionedPosition):
            raise TypeError(
                f"positions {self} and {other} come from different kinds of store and have no order"
            )
        if self._partition == other._partition:
            return (self._offset > other._offset) - (self._offset < other._offset)
        size = max(len(self._frontier), len(other._frontier))
        mine = [self.next_offset(i) for i in range(size)]
        theirs = [other.next_offset(i) for i in range(size)]
        if mine != theirs and all(a <= b for a, b in zip(mine, theirs, strict=True)):
            return -1
        if mine != theirs and all(a >= b for a, b in zip(mine, theirs, strict=True)):
            return 1
        raise TypeError(
            f"positions {self} and {other} have no order: each is ahead of the other in some "
            "partition (they come from different reads of a partitioned store)"
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (PartitionedPosition, (self._partition, self._offset, self._frontier))

    @classmethod
    def parse_token(cls, value: str) -> PartitionedPosition:
        """Parse ``"{partition}/{offset}@{f0}.{f1}..."``."""
        head, _, tail = value.partition("@")
        partition, slash, offset = head.partition("/")
        pieces = [partition, offset, *tail.split(".")]
        if not slash or not all(
            p.isascii() and p.isdigit() and len(p) <= _MAX_PART_DIGITS for p in pieces
        ):
            raise InvalidEventError(
                f"{value!r} is not a partitioned position token "
                "(expected 'partition/offset@f0.f1...')",
                field="position",
            )
        return cls(int(partition), int(offset), tuple(int(p) for p in tail.split(".")))


_new = object.__new__
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _position_of(parts: tuple[int, ...]) -> Position:
    # Position.of without the varargs: for parts already in a tuple (unvalidated).
    position = _new(Position)
    position._parts = parts
    return position


class RecordedEvent:
    """An event as stored: its stream, 1-based version, global position and content.

    Immutable: every field is a read-only property. ``data`` and ``metadata`` may be given as
    JSON bytes (backends read them that way) and are then decoded when first read, so that a
    catch-up over millions of events, which mostly looks at ``type``, does not pay for
    decoding (and collecting) every payload. Likewise ``position`` may be given as the tuple of
    its parts, and ``recorded_at`` as integer microseconds since the Unix epoch: the
    :class:`Position` and the ``datetime`` are built when first read (measured on PostgreSQL,
    before it got a row-backed subclass of its own: building the position cost a sixth of
    ``read_all``; SQLite uses this).

    Why properties over private slots rather than a frozen dataclass: one of these is built
    per event read, and a frozen class must set each field through ``object.__setattr__`` (a
    C call per field, 1.9 µs per event), where plain slot assignments in ``__init__`` cost
    0.3 µs. ``read_all`` spent a fifth of its time building events.
    """

    __slots__ = (
        "_causation_id",
        "_correlation_id",
        "_data",
        "_id",
        "_metadata",
        "_position",
        "_recorded_at",
        "_stream_id",
        "_type",
        "_version",
    )

    def __init__(
        self,
        stream_id: str,
        version: int,
        position: Position | tuple[int, ...],
        id: UUID,
        type: str,
        data: Mapping[str, Any] | bytes,
        metadata: Mapping[str, Any] | bytes,
        correlation_id: str | None,
        causation_id: str | None,
        recorded_at: datetime | int,
    ) -> None:
        # From a backend's read path, ``position`` may be the tuple of its parts and
        # ``recorded_at`` integer microseconds since the Unix epoch (see the class docstring).
        self._stream_id = stream_id
        self._version = version
        self._position = position
        self._id = id
        self._type = type
        self._data = data
        self._metadata = metadata
        self._correlation_id = correlation_id
        self._causation_id = causation_id
        self._recorded_at = recorded_at

    @property
    def stream_id(self) -> str:
        """The stream the event belongs to."""
        return self._stream_id

    @property
    def version(self) -> int:
        """The event's 1-based version in its stream."""
        return self._version

    @property
    def position(self) -> Position:
        """The event's place in the store's global order."""
        position = self._position
        if type(position) is tuple:
            position = self._position = _position_of(position)
        return position  # type: ignore[return-value]

    @property
    def id(self) -> UUID:
        """The event's id (the idempotency key)."""
        return self._id

    @property
    def type(self) -> str:
        """The event's type."""
        return self._type

    @property
    def correlation_id(self) -> str | None:
        """The correlation id given at append, if any."""
        return self._correlation_id

    @property
    def causation_id(self) -> str | None:
        """The causation id given at append, if any."""
        return self._causation_id

    @property
    def recorded_at(self) -> datetime:
        """When the store recorded the event (an aware UTC datetime)."""
        at = self._recorded_at
        if type(at) is int:
            at = self._recorded_at = _UNIX_EPOCH + timedelta(microseconds=at)
        return at  # type: ignore[return-value]

    @property
    def data(self) -> Mapping[str, Any]:
        """The event's data (a dict decoded from JSON)."""
        data = self._data
        if isinstance(data, bytes | bytearray | memoryview | str):
            data = self._data = _loads(data)
        return data

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The event's metadata (a dict decoded from JSON)."""
        metadata = self._metadata
        if isinstance(metadata, bytes | bytearray | memoryview | str):
            metadata = self._metadata = _loads(metadata)
        return metadata

    @property
    def category(self) -> str:
        """The stream's category: the part of the stream id before the first ``-``."""
        return category_of(self.stream_id)

    # Below, fields are read through their properties, so that a backend's subclass that
    # stores them differently (see eventstore_postgres) compares, hashes and pickles alike.
    def _fields(self) -> tuple[Any, ...]:
        return (
            self.stream_id,
            self.version,
            self.position,
            self.id,
            self.type,
            self.data,
            self.metadata,
            self.correlation_id,
            self.causation_id,
            self.recorded_at,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.id, self.position))

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(stream_id={self.stream_id!r}, version={self.version}, "
            f"position={self.position!r}, id={self.id!r}, type={self.type!r}, "
            f"data={self.data!r}, metadata={self.metadata!r}, "
            f"correlation_id={self.correlation_id!r}, causation_id={self.causation_id!r}, "
            f"recorded_at={self.recorded_at!r})"
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (RecordedEvent, self._fields())


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append returns: the stream's new version and the last event's position."""

    version: int
    position: Position


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A saved state of a stream's aggregate at ``version``."""

    stream_id: str
    version: int
    type: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Selects events of ``read_all`` and subscriptions by type and/or stream category.

    Both lists are alternatives (an event matches if its type is any of ``event_types``); when
    both are given an event must match both. ``None`` means no restriction.
    """

    event_types: Sequence[str] | None = None
    categories: Sequence[str] | None = None

    def __post_init__(self) -> None:
        # Store tuples so that the filter stays hashable and a caller's list cannot change it.
        for name in ("event_types", "categories"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise InvalidEventError(
                    f"EventFilter.{name} must be a sequence of strings, got {value!r}",
                    field=name,
                )
            object.__setattr__(self, name, tuple(value))

    def matches(self, stream_id: str, event_type: str) -> bool:
        """Whether an event of ``event_type`` in ``stream_id`` passes this filter."""
        if self.event_types is not None and event_type not in self.event_types:
            return False
        return self.categories is None or category_of(stream_id) in self.categories


def category_of(stream_id: str) -> str:
    """The category of ``"Order-42"`` is ``"Order"``; a stream id without ``-`` is its own."""
    return stream_id.split("-", 1)[0]


Concurrency = Literal["multi-writer", "single-writer"]
Idempotency = Literal["permanent", "window", "none"]
UniqueEventIds = Literal["store", "stream", "none"]
GlobalOrder = Literal["total", "partitioned"]
LiveSubscriptions = Literal["push", "poll"]

# Higher rank satisfies a requirement of lower rank (``require={"idempotency": "window"}`` is
# met by a permanent guarantee).
_RANKS: dict[str, dict[str, int]] = {
    "concurrency": {"single-writer": 0, "multi-writer": 1},
    "idempotency": {"none": 0, "window": 1, "permanent": 2},
    "unique_event_ids": {"none": 0, "stream": 1, "store": 2},
    "global_order": {"partitioned": 0, "total": 1},
    "live_subscriptions": {"poll": 0, "push": 1},
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend really guarantees; the conformance suite holds it to every claim.

    ``idempotency`` says how long a retry of the very same batch stays a no-op that returns
    the original result (``permanent``, a bounded ``window``, or ``none``);
    ``unique_event_ids`` says where any other reuse of an event id is refused with
    :class:`~eventstore_core.DuplicateEventIdError` (anywhere in the ``store``, only within
    the same ``stream``, or ``none``).
    """

    concurrency: Concurrency
    idempotency: Idempotency
    unique_event_ids: UniqueEventIds
    global_order: GlobalOrder
    live_subscriptions: LiveSubscriptions
    max_event_bytes: int
    max_append_events: int
    max_snapshot_bytes: int = 16 * 1024 * 1024
    max_append_bytes: int | None = None
    """The most encoded bytes one append may carry (a server's request or record limit);
    ``None``: only ``max_event_bytes`` times ``max_append_events``."""
    snapshots: bool = True
    """Whether ``save_snapshot`` / ``load_snapshot`` are supported."""
    backwards_reads: bool = True
    """Whether ``read_stream(..., backwards=True)`` is supported."""
    shared_across_processes: bool = True
    """Whether several processes (or machines) can open the same store at once."""
    durable: bool = True
    """Whether events survive closing the store (false for ``memory://``)."""

    def shortfalls(self, require: Mapping[str, Any]) -> list[str]:
        """The requirements this backend does not meet, each described in words."""
        problems: list[str] = []
        for key, wanted in require.items():
            if key not in _FIELD_NAMES:
                problems.append(f"unknown capability {key!r} (known: {', '.join(_FIELD_NAMES)})")
                continue
            have = getattr(self, key)
            if key in _RANKS:
                ranks = _RANKS[key]
                if wanted not in ranks:
                    problems.append(
                        f"{key}={wanted!r} is not a value of {key} ({', '.join(ranks)})"
                    )
                elif ranks[have] < ranks[wanted]:
                    problems.append(f"{key} is {have!r}, {wanted!r} required")
            elif isinstance(have, bool):
                if bool(wanted) and not have:
                    problems.append(f"{key} is False, True required")
            elif isinstance(have, int) and have < wanted:
                problems.append(f"{key} is {have}, at least {wanted} required")
        return problems


_FIELD_NAMES = (
    "concurrency",
    "idempotency",
    "unique_event_ids",
    "global_order",
    "live_subscriptions",
    "max_event_bytes",
    "max_append_events",
    "max_snapshot_bytes",
    "max_append_bytes",
    "snapshots",
    "backwards_reads",
    "shared_across_processes",
    "durable",
)
