"""The record format: one Kafka record per append.

A record carries the stream, the expected-version claim and the events of one append, in a
compact binary layout chosen so that replaying the log on open reads only a fixed header and
the event ids (one ``struct.unpack_from`` and two slices), never the payloads::

    >B q q H H H 16s   magic, claim, recorded_at (µs), len(stream), n events, len(clock), token
    stream             UTF-8
    clock              len(clock) x >q: the record's stamp (partitions > 1 only, see _arbiter)
    ids                n x 16 bytes (UUID bytes)
    n x event          >H h h I I (len type, len correlation, len causation, len data, len
                       metadata; -1 for an absent id), then those five fields

``data`` and ``metadata`` are the JSON bytes the core prepared: a read hands slices of the
record to :class:`RecordedEvent`, which decodes them only if asked. The stream id, the event
ids and the types are also record headers (``es.stream``, ``es.event_id``, ``es.type``) so
that plain Kafka tools (kcat, the console consumer) can inspect the log; the store itself
reads the value only.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple
from uuid import UUID

from eventstore_core.adapter import ExpectedVersion, PreparedEvent, StreamState

__all__ = [
    "CLAIM_ANY",
    "CLAIM_EXISTS",
    "CLAIM_NO_STREAM",
    "MAGIC",
    "DecodedEvent",
    "Header",
    "claim_of",
    "decode_events",
    "decode_header",
    "encode",
    "headers_of",
]

MAGIC = 1
CLAIM_ANY = -1
CLAIM_NO_STREAM = -2
CLAIM_EXISTS = -3

_HEADER = struct.Struct(">BqqHHH16s")
_EVENT = struct.Struct(">HhhII")


def claim_of(expected: ExpectedVersion) -> int:
    """The integer a record stores for an expected version."""
    if expected is StreamState.ANY:
        return CLAIM_ANY
    if expected is StreamState.NO_STREAM:
        return CLAIM_NO_STREAM
    if expected is StreamState.STREAM_EXISTS:
        return CLAIM_EXISTS
    assert isinstance(expected, int)
    return expected


def _optional(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def encode(
    stream_id: str,
    claim: int,
    events: Sequence[PreparedEvent],
    recorded_at: int,
    token: bytes,
    clock: Sequence[int] = (),
) -> bytes:
    """The value of the record for one append."""
    stream = stream_id.encode()
    parts = [
        _HEADER.pack(MAGIC, claim, recorded_at, len(stream), len(events), len(clock), token),
        stream,
    ]
    if clock:
        parts.append(struct.pack(f">{len(clock)}q", *clock))
    parts.extend(event.id.bytes for event in events)
    for event in events:
        type_ = event.type.encode()
        correlation = _optional(event.correlation_id)
        causation = _optional(event.causation_id)
        parts.append(
            _EVENT.pack(
                len(type_),
                -1 if correlation is None else len(correlation),
                -1 if causation is None else len(causation),
                len(event.data),
                len(event.metadata),
            )
        )
        parts.extend((type_, correlation or b"", causation or b"", event.data, event.metadata))
    return b"".join(parts)


def headers_of(stream_id: str, events: Sequence[PreparedEvent]) -> list[tuple[str, bytes]]:
    """Record headers for Kafka tools: the stream, then each event's id and type."""
    headers = [("es.stream", stream_id.encode())]
    for event in events:
        headers.append(("es.event_id", str(event.id).encode()))
        headers.append(("es.type", event.type.encode()))
    return headers


class Header(NamedTuple):
    """What arbitration needs of a record: everything but the payloads."""

    claim: int
    recorded_at: int
    stream_id: str
    event_count: int
    token: bytes
    clock: tuple[int, ...]
    """The writer's stamp, ``(stamp,)``, with several partitions (see _arbiter); else empty."""
    ids: bytes
    """``event_count`` x 16 bytes."""
    events_at: int
    """Where the events start in the value."""


def decode_header(value: bytes) -> Header | None:
    """The header of a record value, or None for a value this store did not write."""
    if len(value) < _HEADER.size or value[0] != MAGIC:
        return None
    _, claim, recorded_at, stream_len, count, clock_len, token = _HEADER.unpack_from(value)
    at = _HEADER.size
    try:
        stream_id = value[at : at + stream_len].decode()
    except UnicodeDecodeError:
        return None
    at += stream_len
    clock: tuple[int, ...] = ()
    if clock_len:
        clock = struct.unpack_from(f">{clock_len}q", value, at)
        at += 8 * clock_len
    ids = value[at : at + 16 * count]
    if len(ids) != 16 * count:
        return None
    return Header(claim, recorded_at, stream_id, count, token, clock, ids, at + 16 * count)


class DecodedEvent(NamedTuple):
    """One event of a record, with its payloads still JSON bytes."""

    id: UUID
    type: str
    correlation_id: str | None
    causation_id: str | None
    data: bytes
    metadata: bytes


def decode_events(value: bytes, header: Header) -> list[DecodedEvent]:
    """The events of a record whose header was decoded."""
    events: list[DecodedEvent] = []
    at = header.events_at
    ids = header.ids
    unpack = _EVENT.unpack_from
    size = _EVENT.size
    for index in range(header.event_count):
        type_len, corr_len, caus_len, data_len, meta_len = unpack(value, at)
        at += size
        type_ = value[at : at + type_len].decode()
        at += type_len
        correlation = None
        if corr_len >= 0:
            correlation = value[at : at + corr_len].decode()
            at += corr_len
        causation = None
        if caus_len >= 0:
            causation = value[at : at + caus_len].decode()
            at += caus_len
        data = value[at : at + data_len]
        at += data_len
        metadata = value[at : at + meta_len]
        at += meta_len
        events.append(
            DecodedEvent(
                UUID(bytes=ids[16 * index : 16 * index + 16]),
                type_,
                correlation,
                causation,
                data,
                metadata,
            )
        )
    return events
