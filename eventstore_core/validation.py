"""Input validation shared by every backend: nothing invalid is ever sent to storage."""

from __future__ import annotations

import dataclasses
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from uuid import UUID

from eventstore_core import serialization
from eventstore_core.errors import DuplicateEventIdError, InvalidEventError
from eventstore_core.models import (
    EventFilter,
    ExpectedVersion,
    NewEvent,
    PartitionedPosition,
    Position,
    Snapshot,
    StreamState,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_POSITION_PART",
    "MAX_VERSION",
    "PreparedEvent",
    "prepare_batch",
    "validate_expected_version",
    "validate_filter",
    "validate_limit",
    "validate_name",
    "validate_position",
    "validate_snapshot",
]

MAX_NAME_LENGTH = 255

#: The highest version any stream can reach: the upper end of ``expected_range`` for ANY and
#: STREAM_EXISTS (and a bound that fits a signed 64-bit column with room to add to it). Every
#: version argument (``expected_version``, ``from_version``, ``snapshot.version``) above it is
#: refused at the call: no stream can be there, and storage would overflow on some backends.
MAX_VERSION = 2**62

#: The largest integer a position part may hold: what a signed 64-bit column stores. A token
#: with a bigger part cannot have been made by any backend, and is refused at the call.
MAX_POSITION_PART = 2**63 - 1

# A NUL character (U+0000) in a JSON string, as orjson escapes it: ``\u0000`` preceded by an
# even number of backslashes (an odd number would make it the text "\u0000").
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class PreparedEvent(NamedTuple):
    """A validated :class:`NewEvent` with its data and metadata already encoded as JSON.

    A named tuple, not a frozen dataclass: one is built per appended event, and a tuple is
    built in a single step (a frozen dataclass sets each field through ``object.__setattr__``).
    """

    id: UUID
    type: str
    data: bytes
    metadata: bytes
    correlation_id: str | None
    causation_id: str | None

    @property
    def size(self) -> int:
        """The bytes the event occupies, as counted against ``max_event_bytes``."""
        return len(self.data) + len(self.metadata) + len(self.type.encode())


def _is_plain_name(value: object) -> bool:
    # The fast path of validate_name, for the common case of a valid name: a printable str has
    # no control (Cc) or surrogate (Cs) character, and isprintable() checks that in C.
    return (
        type(value) is str
        and 0 < len(value) <= MAX_NAME_LENGTH
        and value.isprintable()
        and value[0] != "$"
    )


def validate_name(value: object, what: str) -> str:
    """Check a stream id, event type, snapshot type or checkpoint name."""
    if _is_plain_name(value):
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        raise InvalidEventError(f"{what} must be a str, got {type(value).__name__}", field=what)
    if not value:
        raise InvalidEventError(f"{what} must not be empty", field=what)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidEventError(
            f"{what} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}", field=what
        )
    if value.startswith("$"):
        raise InvalidEventError(
            f"{what} {value!r} starts with '$', which is reserved for system use", field=what
        )
    ch = _bad_character(value)
    if ch is not None:
        raise InvalidEventError(
            f"{what} {value!r} contains the {_kind(ch)} character {ch!r}", field=what
        )
    return value


def _bad_character(value: str) -> str | None:
    # The first control (Cc) or surrogate (Cs) character of value, if any.
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def _kind(ch: str) -> str:
    return "surrogate" if unicodedata.category(ch) == "Cs" else "control"


def _validate_optional_id(value: object, what: str) -> str | None:
    # correlation_id / causation_id: the rules of names, except that '$' is the caller's own
    # business here (nothing is reserved in an id the store only carries).
    if value is None:
        return None
    if type(value) is str and 0 < len(value) <= MAX_NAME_LENGTH and value.isprintable():
        return value
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidEventError(
            f"{what} must be None or a non-empty str of at most {MAX_NAME_LENGTH} characters",
            field=what,
        )
    ch = _bad_character(value)
    if ch is not None:
        raise InvalidEventError(
            f"{what} {value!r} contains the {_kind(ch)} character {ch!r}", field=what
        )
    return value


def _non_finite(value: object, depth: int = 0) -> bool:
    """Whether ``value`` holds a NaN or an infinity anywhere (orjson writes them as null)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth > 256:  # orjson refuses deeper nesting itself
        return False
    if isinstance(value, Mapping):
        return any(_non_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v, depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(
            _non_finite(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        )
    return False


def _check_encoded(value: object, encoded: bytes, what: str) -> bytes:
    """Refuse what JSON (or some backend's JSON) cannot carry, whatever orjson wrote.

    orjson writes NaN and infinities as ``null``: stored, they would read back as ``None``.
    A NUL character is valid JSON but PostgreSQL's ``jsonb`` cannot hold one, so it is refused
    on every backend alike rather than only where it fails after sending. Both scans run only
    when a cheap substring test finds a candidate.
    """
    if b"null" in encoded and _non_finite(value):
        raise InvalidEventError(
            f"{what} holds a NaN or infinite float, which JSON cannot represent", field=what
        )
    if b"\\u0000" in encoded and _NUL_ESCAPE.search(encoded):
        raise InvalidEventError(
            f"{what} holds a NUL character (U+0000) in a string or key, which is refused on "
            "every backend (PostgreSQL's jsonb cannot store it)",
            field=what,
        )
    return encoded


def _encode(value: object, what: str) -> bytes:
    if not isinstance(value, Mapping):
        raise InvalidEventError(
            f"{what} must be a mapping (a JSON object), got {type(value).__name__}", field=what
        )
    try:
        encoded = serialization.dumps(value)
    except TypeError as error:
        raise InvalidEventError(f"{what} is not JSON-serialisable: {error}", field=what) from None
    return _check_encoded(value, encoded, what)


def _encode_event_part(value: object, index: int, part: str) -> bytes:
    # _encode, with the field name ("events[3].data") built only for an error message. A dict
    # is the common case, checked before the slower Mapping ABC.
    if type(value) is dict or isinstance(value, Mapping):
        try:
            encoded = serialization.dumps(value)
        except TypeError:
            pass
        else:
            if b"null" not in encoded and b"\\u0000" not in encoded:
                return encoded
    return _encode(value, f"events[{index}].{part}")


def prepare_batch(
    events: Sequence[NewEvent],
    *,
    max_event_bytes: int,
    max_append_events: int,
    max_append_bytes: int | None = None,
) -> list[PreparedEvent]:
    """Validate and encode a batch, or raise :class:`InvalidEventError` naming the problem."""
    # A list is the common case; the Sequence check is an ABC lookup, so it is made for others.
    if type(events) is not list and (
        not isinstance(events, Sequence) or isinstance(events, str | bytes | NewEvent)
    ):
        if isinstance(events, NewEvent):
            raise InvalidEventError(
                "events must be a sequence of NewEvent, not one", field="events"
            )
        raise InvalidEventError(
            f"events must be a sequence of NewEvent, got {type(events).__name__}", field="events"
        )
    if not events:
        raise InvalidEventError("events must not be empty", field="events")
    if len(events) > max_append_events:
        raise InvalidEventError(
            f"a batch holds at most {max_append_events} events on this backend, "
            f"got {len(events)} (max_append_events)",
            field="events",
        )
    prepared: list[PreparedEvent] = []
    # Ids repeated within the batch. One event cannot repeat one: no set to build and no
    # UUID to hash (in Python) for the most common append.
    seen: set[UUID] | None = set() if len(events) > 1 else None
    total = 0
    for index, event in enumerate(events):
        # Field names like "events[3].type" are only built for an error message.
        if not isinstance(event, NewEvent):
            raise InvalidEventError(
                f"events[{index}] must be a NewEvent, got {type(event).__name__}", field="events"
            )
        event_id = event.id
        if not isinstance(event_id, UUID):
            raise InvalidEventError(f"events[{index}].id must be a UUID", field="id")
        if seen is not None:
            if event_id in seen:
                raise DuplicateEventIdError(
                    f"event id {event_id} appears twice in one batch", event_ids=(str(event_id),)
                )
            seen.add(event_id)
        event_type = event.type
        if not _is_plain_name(event_type):
            validate_name(event_type, f"events[{index}].type")
        correlation_id, causation_id = event.correlation_id, event.causation_id
        if correlation_id is not None:
            _validate_optional_id(correlation_id, f"events[{index}].correlation_id")
        if causation_id is not None:
            _validate_optional_id(causation_id, f"events[{index}].causation_id")
        item = PreparedEvent(
            event_id,
            event_type,
            _encode_event_part(event.data, index, "data"),
            _encode_event_part(event.metadata, index, "metadata"),
            correlation_id,
            causation_id,
        )
        size = item.size
        if size > max_event_bytes:
            raise InvalidEventError(
                f"events[{index}] is {size} bytes encoded; this backend takes at most "
                f"{max_event_bytes} bytes per event (max_event_bytes)",
                field="data",
            )
        total += size
        prepared.append(item)
    if max_append_bytes is not None and total > max_append_bytes:
        raise InvalidEventError(
            f"the batch is {total} bytes encoded; this backend takes at most "
            f"{max_append_bytes} bytes per append (max_append_bytes)",
            field="events",
        )
    return prepared


def validate_expected_version(value: object) -> ExpectedVersion:
    """Check ``expected_version``: a :class:`StreamState` or an int from 0 to MAX_VERSION."""
    if isinstance(value, StreamState):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise InvalidEventError(
            "expected_version must be es.ANY, es.NO_STREAM, es.STREAM_EXISTS or an int from 0 "
            f"to 2**62 (no stream goes higher), got {value!r}",
            field="expected_version",
        )
    return value


def validate_limit(value: object) -> int | None:
    """Check a ``limit``: ``None`` or an ``int >= 0``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEventError(f"limit must be None or an int >= 0, got {value!r}", field="limit")
    return value


def validate_version(value: object, what: str, *, minimum: int) -> int:
    """Check a version argument such as ``from_version``: an int from minimum to MAX_VERSION."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_VERSION:
        raise InvalidEventError(
            f"{what} must be an int from {minimum} to 2**62, got {value!r}", field=what
        )
    return value


def validate_after(value: object, what: str = "after") -> Position | None:
    """Turn an ``after=`` argument (a Position, its token, or None) into a Position.

    Parts above :data:`MAX_POSITION_PART` are refused here: no backend makes them.
    """
    if value is None:
        return None
    if isinstance(value, Position | str):
        try:
            position = Position.parse(value)
        except InvalidEventError as error:
            raise InvalidEventError(f"{what}: {error}", field=what) from None
        numbers = position.parts
        if isinstance(position, PartitionedPosition):
            numbers = (*numbers, *position.frontier)
        if any(part > MAX_POSITION_PART for part in numbers):
            raise InvalidEventError(
                f"{what}: the position has a part above 2**63 - 1; no store makes such positions",
                field=what,
            )
        return position
    raise InvalidEventError(
        f"{what} must be a Position, a position token or None, got {type(value).__name__}",
        field=what,
    )


def validate_position(
    position: Position, what: str, *, partitioned: bool, parts: int | None
) -> Position:
    """Check that ``position`` has the shape of the store's own positions.

    A partitioned store (``global_order="partitioned"``) takes only
    :class:`PartitionedPosition`; a total-order store takes only plain positions, of exactly
    ``parts`` integers when the backend declares that number (``EventStore.position_parts``).
    A token of another store's shape would otherwise be read (or saved) as something it is
    not: ``"1:2:3"`` used as ``"1"``, or a checkpoint that fails only when resumed from.
    """
    if partitioned:
        if not isinstance(position, PartitionedPosition):
            raise InvalidEventError(
                f"{what}: {position} is not a position of this partitioned store (expected a "
                "token like 'partition/offset@f0.f1...')",
                field=what,
            )
        return position
    if isinstance(position, PartitionedPosition):
        raise InvalidEventError(
            f"{what}: {position} is a partitioned store's position; this store's positions "
            "are integers joined by ':'",
            field=what,
        )
    if parts is not None and len(position.parts) != parts:
        raise InvalidEventError(
            f"{what}: {str(position)[:80]!r} is not a position of this store (its positions "
            f"have {parts} part{'s' if parts != 1 else ''} joined by ':')",
            field=what,
        )
    return position


def validate_filter(value: object) -> EventFilter | None:
    """Check a ``filter=`` argument: its types and categories must be sendable strings."""
    if value is None:
        return None
    if not isinstance(value, EventFilter):
        raise InvalidEventError(
            f"filter must be an es.EventFilter or None, got {type(value).__name__}",
            field="filter",
        )
    for name in ("event_types", "categories"):
        entries: Sequence[str] | None = getattr(value, name)
        for entry in entries or ():
            if len(entry) > MAX_NAME_LENGTH or _bad_character(entry) is not None:
                raise InvalidEventError(
                    f"filter.{name} holds {entry[:80]!r}, which no event can match: at most "
                    f"{MAX_NAME_LENGTH} characters, no control or surrogate characters",
                    field=f"filter.{name}",
                )
    return value


def validate_snapshot(snapshot: object, *, max_bytes: int) -> bytes:
    """Check a snapshot and return its encoded data."""
    if not isinstance(snapshot, Snapshot):
        raise InvalidEventError(
            f"expected an es.Snapshot, got {type(snapshot).__name__}", field="snapshot"
        )
    validate_name(snapshot.stream_id, "snapshot.stream_id")
    validate_name(snapshot.type, "snapshot.type")
    validate_version(snapshot.version, "snapshot.version", minimum=0)
    data = _encode(snapshot.data, "snapshot.data")
    if len(data) > max_bytes:
        raise InvalidEventError(
            f"snapshot.data is {len(data)} bytes encoded; this backend takes at most {max_bytes}",
            field="snapshot.data",
        )
    return data
