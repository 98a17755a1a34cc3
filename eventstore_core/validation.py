"""Input validation shared by every backend: nothing invalid is ever sent to storage."""

from __future__ import annotations

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
    Position,
    Snapshot,
    StreamState,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "PreparedEvent",
    "prepare_batch",
    "validate_expected_version",
    "validate_filter",
    "validate_limit",
    "validate_name",
    "validate_snapshot",
]

MAX_NAME_LENGTH = 255


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
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise InvalidEventError(
                f"{what} {value!r} contains the control character {ch!r}", field=what
            )
    return value


def _validate_optional_id(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise InvalidEventError(
            f"{what} must be None or a str of at most {MAX_NAME_LENGTH} characters", field=what
        )
    return value


def _encode(value: object, what: str) -> bytes:
    if not isinstance(value, Mapping):
        raise InvalidEventError(
            f"{what} must be a mapping (a JSON object), got {type(value).__name__}", field=what
        )
    try:
        return serialization.dumps(value)
    except TypeError as error:
        raise InvalidEventError(f"{what} is not JSON-serialisable: {error}", field=what) from None


def _encode_event_part(value: object, index: int, part: str) -> bytes:
    # _encode, with the field name ("events[3].data") built only for an error message.
    if isinstance(value, Mapping):
        try:
            return serialization.dumps(value)
        except TypeError:
            pass
    return _encode(value, f"events[{index}].{part}")


def prepare_batch(
    events: Sequence[NewEvent],
    *,
    max_event_bytes: int,
    max_append_events: int,
    max_append_bytes: int | None = None,
) -> list[PreparedEvent]:
    """Validate and encode a batch, or raise :class:`InvalidEventError` naming the problem."""
    if isinstance(events, NewEvent):
        raise InvalidEventError("events must be a sequence of NewEvent, not one", field="events")
    if not isinstance(events, Sequence) or isinstance(events, str | bytes):
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
    seen: set[UUID] = set()
    for index, event in enumerate(events):
        # Field names like "events[3].type" are only built for an error message.
        if not isinstance(event, NewEvent):
            raise InvalidEventError(
                f"events[{index}] must be a NewEvent, got {type(event).__name__}", field="events"
            )
        event_id = event.id
        if not isinstance(event_id, UUID):
            raise InvalidEventError(f"events[{index}].id must be a UUID", field="id")
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
        if item.size > max_event_bytes:
            raise InvalidEventError(
                f"events[{index}] is {item.size} bytes encoded; this backend takes at most "
                f"{max_event_bytes} bytes per event (max_event_bytes)",
                field="data",
            )
        prepared.append(item)
    if max_append_bytes is not None:
        total = sum(item.size for item in prepared)
        if total > max_append_bytes:
            raise InvalidEventError(
                f"the batch is {total} bytes encoded; this backend takes at most "
                f"{max_append_bytes} bytes per append (max_append_bytes)",
                field="events",
            )
    return prepared


def validate_expected_version(value: object) -> ExpectedVersion:
    """Check ``expected_version``: a :class:`StreamState` or an ``int >= 0``."""
    if isinstance(value, StreamState):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEventError(
            "expected_version must be es.ANY, es.NO_STREAM, es.STREAM_EXISTS or an int >= 0, "
            f"got {value!r}",
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
    """Check a version argument such as ``from_version``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidEventError(f"{what} must be an int >= {minimum}, got {value!r}", field=what)
    return value


def validate_after(value: object) -> Position | None:
    """Turn an ``after=`` argument (a Position, its token, or None) into a Position."""
    if value is None:
        return None
    if isinstance(value, Position | str):
        try:
            return Position.parse(value)
        except InvalidEventError as error:
            raise InvalidEventError(f"after: {error}", field="after") from None
    raise InvalidEventError(
        f"after must be a Position, a position token or None, got {type(value).__name__}",
        field="after",
    )


def validate_filter(value: object) -> EventFilter | None:
    """Check a ``filter=`` argument."""
    if value is None or isinstance(value, EventFilter):
        return value
    raise InvalidEventError(
        f"filter must be an es.EventFilter or None, got {type(value).__name__}", field="filter"
    )


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
