"""The hole-tolerant readers: the global log up to the first hole, and a stream's dense versions.

Writers reserve positions before they commit (``_writes``), so a position may be reserved and
still empty: a transaction in flight, or a writer that crashed. The global reader reads
positions up to the counter and never past such a hole (checked with ``ScannedCount``): a
reader that did would skip an event committed a moment later. If a hole outlives
``hole_timeout``, the reader voids it with a conditional put; the late writer's transaction
then fails on that void and retries at new positions. Either the event or the void wins,
atomically, so nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from eventstore_core.adapter import EventFilter, Position, RecordedEvent
from eventstore_dynamodb import _items as keys
from eventstore_dynamodb._table import HOLE_WAIT, Table
from eventstore_dynamodb._writes import Writer

__all__ = ["LogReader"]

log = logging.getLogger("eventstore_dynamodb")

#: ``IN`` takes at most 100 operands; longer filters are applied here instead.
_MAX_IN_OPERANDS = 99


class LogReader:
    """Reads of one table; remembers where it first saw each hole it waits at."""

    def __init__(
        self, table: Table, writer: Writer, hole_timeout: float, notify: Callable[[], None]
    ) -> None:
        self._table = table
        self._writer = writer  # voids positions whose writer is gone
        self._hole_timeout = hole_timeout
        self._notify = notify
        # Where this reader first saw each position it is waiting for (see read_all_page).
        self._holes: dict[int, float] = {}

    async def read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        """Up to ``limit`` consecutive versions of a stream (see the store's hook)."""
        # sk 0 is the head item: event versions start at 1.
        values: dict[str, Any] = {":p": {"S": keys.stream_pk(stream_id)}, ":v": {"N": "1"}}
        if backwards and from_version is not None:
            condition = "pk = :p AND sk BETWEEN :one AND :v"
            values[":one"] = {"N": "1"}
            values[":v"] = {"N": str(from_version)}
        elif backwards:
            condition = "pk = :p AND sk >= :v"
        else:
            condition = "pk = :p AND sk >= :v"
            values[":v"] = {"N": str(from_version or 1)}
        deadline = time.monotonic() + HOLE_WAIT
        while True:
            records = await self._query_records(
                limit,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ScanIndexForward=not backwards,
            )
            # Forward, the first event must be ``from_version`` itself (versions start at 1 and
            # are dense); backwards, the stream may be shorter than ``from_version``.
            first = None if backwards else (from_version or 1)
            ok = _contiguous(records, first, -1 if backwards else 1)
            if ok == len(records) or time.monotonic() > deadline:
                return records[:ok]
            # A hole: a transaction of this stream is committing; its items appear shortly.
            await asyncio.sleep(0.01)

    async def _query_records(self, limit: int, **kwargs: Any) -> list[RecordedEvent]:
        records: list[RecordedEvent] = []
        start: keys.Item | None = None
        while len(records) < limit:
            page_kwargs = dict(kwargs, Limit=limit - len(records))
            if start is not None:
                page_kwargs["ExclusiveStartKey"] = start
            answer = await self._table.query(**page_kwargs)
            records.extend(keys.record_from_item(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                break
        return records

    async def read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        """Up to ``limit`` events after ``after``, never past a hole (see the module)."""
        # Read the counter first: every position up to it was reserved by a writer, and will
        # hold its event or a void. Above it, nothing can be read yet.
        high = await self._table.read_counter()
        position = after.parts[0] + 1 if after is not None else 1
        found: list[RecordedEvent] = []
        settle = time.monotonic() + HOLE_WAIT
        while position <= high and len(found) < limit:
            bucket_end = (position // keys.BUCKET_SIZE + 1) * keys.BUCKET_SIZE - 1
            end = min(high, bucket_end)
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "pk = :p AND sk BETWEEN :from AND :to",
                "ExpressionAttributeValues": {
                    ":p": {"S": keys.all_pk(position)},
                    ":from": {"N": str(position)},
                    ":to": {"N": str(end)},
                },
                # Without a filter, read just what is wanted; with one, read more per request
                # (DynamoDB's Limit counts items before the filter).
                "Limit": (limit - len(found)) if filter is None else max(limit, 100),
            }
            if filter is not None:
                _add_filter(kwargs, filter)
            answer = await self._table.query(**kwargs)
            last_key = answer.get("LastEvaluatedKey")
            scanned_to = int(last_key["sk"]["N"]) if last_key else end
            # Every position in position..scanned_to must hold an item (event or void): fewer
            # means a hole, a reserved position whose transaction has not committed (yet).
            # Never read past it: that is how a reader would skip an event.
            if answer.get("ScannedCount", 0) != scanned_to - position + 1:
                if time.monotonic() < settle:
                    await asyncio.sleep(0.01)  # most holes are commits in flight: ms
                    continue
                hole = await self._first_hole(keys.all_pk(position), position, scanned_to)
                if hole > scanned_to:
                    continue  # filled in the meantime
                first_seen = self._holes.setdefault(hole, time.monotonic())
                if time.monotonic() - first_seen >= self._hole_timeout:
                    # Its writer is gone (crashed, or cut off and not retrying): void it. If
                    # the writer commits after all, its transaction fails on the void and it
                    # retries at new positions; if it committed first, the void is refused.
                    log.warning(
                        "voiding global position %d after %.1fs",
                        hole,
                        time.monotonic() - first_seen,
                    )
                    await self._writer.void([hole])
                    self._holes.pop(hole, None)
                    continue
                # The counter moved when the position was reserved and will not move again at
                # its commit, so no watcher will see that commit: look again shortly ourselves.
                asyncio.get_running_loop().call_later(0.05, self._notify)
                if hole == position:
                    break
                high = hole - 1  # read up to the hole; the rest comes with a later page
                continue
            for item in answer.get("Items", []):
                if "void" in item:
                    continue
                record = keys.record_from_item(item)
                if filter is None or filter.matches(record.stream_id, record.type):
                    found.append(record)
            position = scanned_to + 1
        if self._holes:
            # Forget holes that are behind this reader (filled since), bounding the dict.
            for passed in [p for p in self._holes if p < position]:
                del self._holes[passed]
        # Returning fewer than ``limit`` is fine: the next page starts after the last one.
        return found[:limit]

    async def _first_hole(self, pk: str, start: int, end: int) -> int:
        """The first position in ``start..end`` without a visible item (``end + 1``: none)."""
        expected = start
        last_key: keys.Item | None = None
        while True:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "pk = :p AND sk BETWEEN :from AND :to",
                "ExpressionAttributeValues": {
                    ":p": {"S": pk},
                    ":from": {"N": str(start)},
                    ":to": {"N": str(end)},
                },
                "ProjectionExpression": "sk",
            }
            if last_key is not None:
                kwargs["ExclusiveStartKey"] = last_key
            answer = await self._table.query(**kwargs)
            for item in answer.get("Items", []):
                if int(item["sk"]["N"]) != expected:
                    return expected
                expected += 1
            last_key = answer.get("LastEvaluatedKey")
            if last_key is None:
                return expected


def _contiguous(records: Sequence[RecordedEvent], first: int | None, step: int) -> int:
    """How many records, from the start, have consecutive versions (starting at ``first``)."""
    expected = first
    for index, record in enumerate(records):
        if expected is not None and record.version != expected:
            return index
        expected = record.version + step
    return len(records)


def _add_filter(kwargs: dict[str, Any], event_filter: EventFilter) -> None:
    """A server-side FilterExpression for the filter (saves bandwidth, not read capacity)."""
    clauses: list[str] = []
    values: dict[str, Any] = kwargs["ExpressionAttributeValues"]
    names: dict[str, str] = {}
    for attribute, wanted in (("type", event_filter.event_types), ("cat", event_filter.categories)):
        if wanted is None:
            continue
        if not wanted:
            clauses.append("attribute_not_exists(pk)")  # matches nothing
            continue
        if len(wanted) > _MAX_IN_OPERANDS:  # filtered here instead (filter.matches)
            continue
        placeholders = []
        for index, value in enumerate(wanted):
            placeholder = f":{attribute}{index}"
            values[placeholder] = {"S": value}
            placeholders.append(placeholder)
        names[f"#{attribute}"] = attribute
        clauses.append(f"#{attribute} IN ({', '.join(placeholders)})")
    if clauses:
        kwargs["FilterExpression"] = " AND ".join(clauses)
        if names:
            kwargs["ExpressionAttributeNames"] = names
