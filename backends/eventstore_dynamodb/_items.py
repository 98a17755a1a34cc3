"""The table's layout: one table, every item keyed by ``pk`` (string) and ``sk`` (number).

| item | ``pk`` | ``sk`` | attributes |
|---|---|---|---|
| global counter | ``$all`` | 0 | ``pos``: the last global position reserved |
| stream head | ``s#<stream id>`` | 0 | ``ver``: the stream's version; ``last``: its last position |
| stream event | ``s#<stream id>`` | version | the event (see :func:`event_attributes`) |
| global event | ``a#<bucket>`` | position | the event again; or ``void`` if it never will be |
| event-id guard | ``e#<event id>`` | 0 | where the id was written (see :func:`guard_item`) |
| checkpoint | ``c#<name>`` | 0 | ``p``: the position token |
| snapshot header | ``n#<stream id>`` | 0 | ``ver``, ``type``, ``gen``, ``chunks``, maybe ``d`` |
| snapshot chunk | ``n#<stream id>`` | 1..k | ``gen``, ``d``: a slice of the snapshot's JSON |

The prefixes keep every kind of item apart (a stream id can never start with ``$``). Each event
is stored twice, because DynamoDB reads by key range only and a global secondary index is
eventually consistent: a GSI ordered by position can show position 11 before 10, which is the
"skipping reader" bug. So the event is written under its stream (for ``read_stream``) and
under its global position (for ``read_all``), in the same transaction.

Global events are spread over partition keys of :data:`BUCKET_SIZE` positions each, so that no
partition key collects the whole log forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventstore_core.adapter import (
    PreparedEvent,
    RecordedEvent,
    category_of,
)

__all__ = [
    "BUCKET_SIZE",
    "COUNTER_KEY",
    "Item",
    "all_key",
    "all_pk",
    "checkpoint_key",
    "event_attributes",
    "guard_bounds",
    "guard_item",
    "guard_key",
    "head_key",
    "item_size",
    "record_from_item",
    "snapshot_pk",
    "stream_event_key",
    "stream_pk",
]

#: A low-level DynamoDB item: attribute name -> typed value (``{"S": ...}``, ``{"N": ...}``).
Item = dict[str, Any]

#: How many consecutive global positions share one partition key.
BUCKET_SIZE = 1_000_000

COUNTER_KEY: Item = {"pk": {"S": "$all"}, "sk": {"N": "0"}}


def _key(pk: str, sk: int) -> Item:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def stream_pk(stream_id: str) -> str:
    """The partition key of a stream's head and events."""
    return f"s#{stream_id}"


def head_key(stream_id: str) -> Item:
    """The key of a stream's head item, which holds its version."""
    return _key(stream_pk(stream_id), 0)


def stream_event_key(stream_id: str, version: int) -> Item:
    """The key of a stream's event at ``version``."""
    return _key(stream_pk(stream_id), version)


def all_pk(position: int) -> str:
    """The partition key of the global bucket that holds ``position``."""
    return f"a#{position // BUCKET_SIZE}"


def all_key(position: int) -> Item:
    """The key of the global event at ``position``."""
    return _key(all_pk(position), position)


def guard_key(event_id: UUID) -> Item:
    """The key of the item that reserves an event id forever."""
    return _key(f"e#{event_id}", 0)


def guard_item(
    event_id: UUID, stream_id: str, version: int, position: int, batch: tuple[int, int]
) -> Item:
    """The guard of an event id: where the event was written, and its batch's versions.

    Attributes: ``sid``, ``ver``, ``pos`` (the event's stream, version and position) and
    ``bf``, ``bl``: ``batch``, the first and last versions of the append that wrote the
    event, since a retry is idempotent only as that whole batch (the ``batch_bounds`` of
    :class:`~eventstore_core.adapter.Refused`). Guards written before ``bf``/``bl`` existed
    lack them, and then never match a retry.
    """
    return guard_key(event_id) | {
        "sid": {"S": stream_id},
        "ver": {"N": str(version)},
        "pos": {"N": str(position)},
        "bf": {"N": str(batch[0])},
        "bl": {"N": str(batch[1])},
    }


def guard_bounds(guard: Item) -> tuple[int, int] | None:
    """The ``(first, last)`` versions of the batch a guard's event was written in, if known."""
    if "bf" not in guard or "bl" not in guard:
        return None
    return int(guard["bf"]["N"]), int(guard["bl"]["N"])


def checkpoint_key(name: str) -> Item:
    """The key of a checkpoint."""
    return _key(f"c#{name}", 0)


def snapshot_pk(stream_id: str) -> str:
    """The partition key of a stream's snapshot header and chunks."""
    return f"n#{stream_id}"


def event_attributes(
    stream_id: str, version: int, position: int, event: PreparedEvent, recorded_at_us: int
) -> Item:
    """The attributes shared by an event's stream item and global item (keys excluded)."""
    item: Item = {
        "sid": {"S": stream_id},
        "ver": {"N": str(version)},
        "pos": {"N": str(position)},
        "id": {"S": str(event.id)},
        "type": {"S": event.type},
        "cat": {"S": category_of(stream_id)},
        "data": {"B": event.data},
        "meta": {"B": event.metadata},
        "at": {"N": str(recorded_at_us)},
    }
    if event.correlation_id is not None:
        item["corr"] = {"S": event.correlation_id}
    if event.causation_id is not None:
        item["caus"] = {"S": event.causation_id}
    return item


def _value_size(value: Mapping[str, Any]) -> int:
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "B":
        return len(raw)
    if kind == "N":
        return len(str(raw)) // 2 + 2
    return len(str(raw))


def item_size(item: Item) -> int:
    """An item's size as DynamoDB counts it: attribute names plus values (close upper bound)."""
    return sum(len(name) + _value_size(value) for name, value in item.items())


def record_from_item(item: Item) -> RecordedEvent:
    """Turn a stream or global event item back into a :class:`RecordedEvent`.

    Data and metadata stay JSON bytes, the position a tuple and the time microseconds until
    first read (:class:`RecordedEvent` decodes them lazily: a catch-up that looks only at types
    does not pay for every payload).
    """
    return RecordedEvent(
        stream_id=item["sid"]["S"],
        version=int(item["ver"]["N"]),
        position=(int(item["pos"]["N"]),),
        id=UUID(item["id"]["S"]),
        type=item["type"]["S"],
        data=bytes(item["data"]["B"]),
        metadata=bytes(item["meta"]["B"]),
        correlation_id=item["corr"]["S"] if "corr" in item else None,
        causation_id=item["caus"]["S"] if "caus" in item else None,
        recorded_at=int(item["at"]["N"]),
    )
