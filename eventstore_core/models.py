"""The value types of the public contract: events, results, positions, filters, capabilities."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias
from uuid import UUID, uuid4

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


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its stream, 1-based version, global position and content."""

    stream_id: str
    version: int
    position: Position
    id: UUID
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    correlation_id: str | None
    causation_id: str | None
    recorded_at: datetime

    @property
    def category(self) -> str:
        """The stream's category: the part of the stream id before the first ``-``."""
        return category_of(self.stream_id)


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
