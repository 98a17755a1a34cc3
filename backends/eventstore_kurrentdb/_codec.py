"""Translations between the library's model and KurrentDB's: versions, positions, events, filters.

- Versions are 1-based here and revisions 0-based there: ``version = revision + 1``; an
  ``expected_version`` of 0 or NO_STREAM is ``StreamState.NO_STREAM``, ``n > 0`` is revision
  ``n - 1``, STREAM_EXISTS is ``StreamState.EXISTS``.
- A position is the event's ``(commit, prepare)`` pair, token ``"commit:prepare"``. Events
  written through the gRPC API have equal commit and prepare positions; reads start from the
  commit position.
- ``data`` is stored as is (JSON). The metadata goes into ``custom_metadata``: the user's JSON
  object unchanged, with ``$correlationId`` / ``$causationId`` added when set (the keys
  KurrentDB's own projections read). A multi-stream append (strict mode) only takes string
  properties, so there the metadata travels as one property, ``$es.metadata``, and KurrentDB
  shows it back as a JSON object that also holds ``$schema.name`` and ``$schema.format``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from kurrentdbclient import NewEvent as ClientNewEvent
from kurrentdbclient import RecordedEvent as ClientRecordedEvent
from kurrentdbclient import StreamState as ClientStreamState

from eventstore_core.adapter import (
    EventFilter,
    ExpectedVersion,
    PreparedEvent,
    RecordedEvent,
    StreamState,
    serialization,
)

#: Streams the library keeps for itself. ``$`` is reserved for system streams, and user stream
#: ids may not start with it, so these can never collide with a user's stream.
CHECKPOINT_PREFIX: Final = "$es-checkpoint-"
SNAPSHOT_PREFIX: Final = "$es-snapshot-"
MARKER_PREFIX: Final = "$es-id-"

CORRELATION_KEY: Final = "$correlationId"
CAUSATION_KEY: Final = "$causationId"
STRICT_METADATA_KEY: Final = "$es.metadata"
_SCHEMA_NAME_KEY: Final = "$schema.name"
_EMPTY_OBJECT: Final = b"{}"


def client_expected(expected: ExpectedVersion) -> int | ClientStreamState:
    """``expected_version`` as kurrentdbclient's ``current_version``."""
    if expected is StreamState.ANY:
        return ClientStreamState.ANY
    if expected is StreamState.NO_STREAM or expected == 0:
        return ClientStreamState.NO_STREAM
    if expected is StreamState.STREAM_EXISTS:
        return ClientStreamState.EXISTS
    assert isinstance(expected, int)
    return expected - 1


def version_of(actual: int | ClientStreamState | None) -> int:
    """A revision (or NO_STREAM) reported by the client as a 1-based version."""
    if isinstance(actual, int) and actual >= 0:
        return actual + 1
    return 0


def _metadata_bytes(event: PreparedEvent) -> bytes:
    if event.correlation_id is None and event.causation_id is None:
        return event.metadata
    merged: dict[str, Any] = dict(serialization.loads(event.metadata))
    if event.correlation_id is not None:
        merged[CORRELATION_KEY] = event.correlation_id
    if event.causation_id is not None:
        merged[CAUSATION_KEY] = event.causation_id
    return serialization.dumps(merged)


def client_event(event: PreparedEvent) -> ClientNewEvent:
    """A prepared event as kurrentdbclient's ``NewEvent`` (for BatchAppend)."""
    return ClientNewEvent(
        type=event.type, data=event.data, metadata=_metadata_bytes(event), id=event.id
    )


def strict_client_event(event: PreparedEvent) -> ClientNewEvent:
    """A prepared event for the multi-stream append, whose metadata must be string properties."""
    properties: dict[str, str] = {}
    if event.metadata != _EMPTY_OBJECT:
        properties[STRICT_METADATA_KEY] = event.metadata.decode()
    if event.correlation_id is not None:
        properties[CORRELATION_KEY] = event.correlation_id
    if event.causation_id is not None:
        properties[CAUSATION_KEY] = event.causation_id
    return ClientNewEvent(
        type=event.type,
        data=event.data,
        metadata=serialization.dumps(properties) if properties else b"",
        id=event.id,
    )


def recorded_event(
    event: ClientRecordedEvent, position: tuple[int, int] | None = None
) -> RecordedEvent:
    """A client ``RecordedEvent`` of a user stream as the library's (``position`` when the
    caller has already taken it from the event)."""
    raw = event.metadata
    metadata: Any = raw or _EMPTY_OBJECT
    correlation_id = causation_id = None
    # Only parse when a key of ours may be there; most events carry plain user metadata.
    if b'"$' in raw:
        loaded = serialization.loads(raw)
        if isinstance(loaded, dict):
            correlation_id = loaded.pop(CORRELATION_KEY, None)
            causation_id = loaded.pop(CAUSATION_KEY, None)
            if _SCHEMA_NAME_KEY in loaded:
                inner = loaded.get(STRICT_METADATA_KEY)
                metadata = inner.encode() if isinstance(inner, str) else _EMPTY_OBJECT
            else:
                metadata = loaded
    recorded_at: datetime | int = event.recorded_at if event.recorded_at is not None else 0
    return RecordedEvent(
        stream_id=event.stream_name,
        version=event.stream_position + 1,
        position=position or (event.commit_position or 0, event.prepare_position or 0),
        id=event.id,
        type=event.type,
        data=event.data,
        metadata=metadata,
        correlation_id=correlation_id,
        causation_id=causation_id,
        recorded_at=recorded_at,
    )


def is_user_stream(stream_name: str) -> bool:
    """System streams (``$...``), the library's own included, never reach users."""
    return not stream_name.startswith("$")


#: A stream-name regex for "every user stream". kurrentdbclient wraps include patterns as
#: ``^pattern$``.
_ALL_USER_STREAMS: Final = "[^$].*"


def server_filter(event_filter: EventFilter | None) -> tuple[str, bool]:
    """The one server-side filter of a ``$all`` read: (pattern, filter_by_stream_name).

    KurrentDB applies one filter per request, on stream names or on event types. Categories
    become one grouped stream-name regex (``^(?:Order|Invoice)(?:-.*)?$``: never the client's
    ``^a|b$`` join, whose alternation binds looser than the anchors), which also keeps system
    streams out; with event types only, the server filters the types and the adapter drops
    system streams; with neither, the server drops system streams.
    """
    if event_filter is not None and event_filter.categories:
        names = "|".join(re.escape(c) for c in event_filter.categories)
        return f"(?:{names})(?:-.*)?", True
    if event_filter is not None and event_filter.event_types:
        return "(?:" + "|".join(re.escape(t) for t in event_filter.event_types) + ")", False
    return _ALL_USER_STREAMS, True


def client_side_filter(event_filter: EventFilter | None) -> frozenset[str] | None:
    """The event types the adapter must still check itself (when categories were sent)."""
    if event_filter is not None and event_filter.categories and event_filter.event_types:
        return frozenset(event_filter.event_types)
    return None


def wanted(event: ClientRecordedEvent, types: frozenset[str] | None) -> bool:
    """Whether an event from a filtered ``$all`` read reaches the user."""
    if not is_user_stream(event.stream_name):
        return False
    return types is None or event.type in types


def encode_snapshot(version: int, snapshot_type: str, data: bytes) -> bytes:
    """The data of a snapshot event: the snapshot's own JSON data embedded, not re-encoded."""
    head = serialization.dumps({"version": version, "type": snapshot_type})
    return head[:-1] + b',"data":' + data + b"}"


def decode_snapshot(raw: bytes) -> tuple[int, str, Any]:
    """``(version, type, data)`` of a snapshot event."""
    loaded = serialization.loads(raw)
    return int(loaded["version"]), str(loaded["type"]), loaded["data"]
