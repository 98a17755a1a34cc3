"""The value types of the public contract: events, results, positions, filters, capabilities."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True, slots=True, order=False)
class Position:
    """An opaque, totally ordered place in a store's global log.

    Positions compare (``<``, ``==``) and hash; ``str(position)`` is a token that
    :meth:`parse` (and every ``after=`` parameter) turns back into the same position, so a
    checkpoint can be stored anywhere. The parts are backend-specific (a sequence number, a
    ``(transaction id, sequence)`` pair, ...): treat them as opaque.
    """

    parts: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.parts or any(type(p) is not int or p < 0 for p in self.parts):
            raise InvalidEventError(
                f"position parts must be non-negative integers, got {self.parts!r}",
                field="position",
            )

    def __str__(self) -> str:
        return ":".join(str(p) for p in self.parts)

    def __repr__(self) -> str:
        return f"Position({str(self)!r})"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return self.parts < other.parts

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return self.parts <= other.parts

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return self.parts > other.parts

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return self.parts >= other.parts

    @classmethod
    def of(cls, *parts: int) -> Position:
        """A position from parts a backend read from its own storage (not validated: fast)."""
        position = _new(cls)
        _set_parts(position, parts)
        return position

    @classmethod
    def parse(cls, value: Position | str) -> Position:
        """Turn a token made by ``str(position)`` (or a position) into a :class:`Position`."""
        if isinstance(value, Position):
            return value
        if not isinstance(value, str):
            raise InvalidEventError(
                f"a position must be a Position or its string token, got {type(value).__name__}",
                field="position",
            )
        try:
            parts = tuple(int(p) for p in value.split(":"))
        except ValueError:
            raise InvalidEventError(
                f"{value!r} is not a position token (expected integers joined by ':')",
                field="position",
            ) from None
        if any(not p.isdigit() for p in value.split(":")):
            raise InvalidEventError(f"{value!r} is not a position token", field="position")
        return cls(parts)


_new = object.__new__
_setattr = object.__setattr__
_set_parts = Position.__dict__["parts"].__set__


class RecordedEvent:
    """An event as stored: its stream, 1-based version, global position and content.

    Immutable. ``data`` and ``metadata`` are decoded from JSON when first read, so that a
    catch-up over millions of events, which mostly looks at ``type`` and ``position``, does not
    pay for decoding (and collecting) every payload.
    """

    __slots__ = (
        "_data",
        "_metadata",
        "causation_id",
        "correlation_id",
        "id",
        "position",
        "recorded_at",
        "stream_id",
        "type",
        "version",
    )

    stream_id: str
    version: int
    position: Position
    id: UUID
    type: str
    correlation_id: str | None
    causation_id: str | None
    recorded_at: datetime
    _data: Mapping[str, Any] | bytes
    _metadata: Mapping[str, Any] | bytes

    def __init__(
        self,
        stream_id: str,
        version: int,
        position: Position,
        id: UUID,
        type: str,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any],
        correlation_id: str | None,
        causation_id: str | None,
        recorded_at: datetime,
    ) -> None:
        _setattr(self, "stream_id", stream_id)
        _setattr(self, "version", version)
        _setattr(self, "position", position)
        _setattr(self, "id", id)
        _setattr(self, "type", type)
        _setattr(self, "_data", data)
        _setattr(self, "_metadata", metadata)
        _setattr(self, "correlation_id", correlation_id)
        _setattr(self, "causation_id", causation_id)
        _setattr(self, "recorded_at", recorded_at)

    @classmethod
    def from_json(
        cls,
        stream_id: str,
        version: int,
        position: Position,
        id: UUID,
        type: str,
        data: bytes,
        metadata: bytes,
        correlation_id: str | None,
        causation_id: str | None,
        recorded_at: datetime,
    ) -> RecordedEvent:
        """Build an event whose data and metadata are still JSON, decoded on first access.

        For backends: this is the fast path for reads (no validation, no decoding).
        """
        event = _new(cls)
        _set_stream_id(event, stream_id)
        _set_version(event, version)
        _set_position(event, position)
        _set_id(event, id)
        _set_type(event, type)
        _set_data(event, data)
        _set_metadata(event, metadata)
        _set_correlation_id(event, correlation_id)
        _set_causation_id(event, causation_id)
        _set_recorded_at(event, recorded_at)
        return event

    @property
    def data(self) -> Mapping[str, Any]:
        """The event's data (a dict decoded from JSON)."""
        data = self._data
        if isinstance(data, bytes | bytearray | memoryview | str):
            data = _loads(data)
            _set_data(self, data)
        return data

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The event's metadata (a dict decoded from JSON)."""
        metadata = self._metadata
        if isinstance(metadata, bytes | bytearray | memoryview | str):
            metadata = _loads(metadata)
            _set_metadata(self, metadata)
        return metadata

    @property
    def category(self) -> str:
        """The stream's category: the part of the stream id before the first ``-``."""
        return category_of(self.stream_id)

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

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RecordedEvent is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RecordedEvent is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (RecordedEvent, self._fields())


# Slot setters bypass the immutability guard; only this module uses them.
_set_stream_id = RecordedEvent.__dict__["stream_id"].__set__
_set_version = RecordedEvent.__dict__["version"].__set__
_set_position = RecordedEvent.__dict__["position"].__set__
_set_id = RecordedEvent.__dict__["id"].__set__
_set_type = RecordedEvent.__dict__["type"].__set__
_set_data = RecordedEvent.__dict__["_data"].__set__
_set_metadata = RecordedEvent.__dict__["_metadata"].__set__
_set_correlation_id = RecordedEvent.__dict__["correlation_id"].__set__
_set_causation_id = RecordedEvent.__dict__["causation_id"].__set__
_set_recorded_at = RecordedEvent.__dict__["recorded_at"].__set__


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
GlobalOrder = Literal["total", "partitioned"]
LiveSubscriptions = Literal["push", "poll"]

# Higher rank satisfies a requirement of lower rank (``require={"idempotency": "window"}`` is
# met by a permanent guarantee).
_RANKS: dict[str, dict[str, int]] = {
    "concurrency": {"single-writer": 0, "multi-writer": 1},
    "idempotency": {"none": 0, "window": 1, "permanent": 2},
    "global_order": {"partitioned": 0, "total": 1},
    "live_subscriptions": {"poll": 0, "push": 1},
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend really guarantees; the conformance suite holds it to every claim."""

    concurrency: Concurrency
    idempotency: Idempotency
    global_order: GlobalOrder
    live_subscriptions: LiveSubscriptions
    max_event_bytes: int
    max_append_events: int
    max_snapshot_bytes: int = 16 * 1024 * 1024
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
    "global_order",
    "live_subscriptions",
    "max_event_bytes",
    "max_append_events",
    "max_snapshot_bytes",
    "shared_across_processes",
    "durable",
)
