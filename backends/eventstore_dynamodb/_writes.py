"""The write path: reserve global positions, commit one transaction, or void what was reserved.

How an append stays correct with any number of writer processes (the measured cost is in
``docs/backends/dynamodb.md``):

* Global positions are reserved first, with an atomic ``ADD`` on one counter item (it never
  conflicts: DynamoDB serialises the increments). Then one ``TransactWriteItems``, never
  ``batch_writer`` (which silently overwrites), updates the stream's head item with a condition
  on its version (so ``expected_version`` is enforced by DynamoDB itself) and puts each event
  twice, under its stream and under its reserved position, plus a guard item per event id, all
  with ``attribute_not_exists``.
* Positions are reserved before commit, so they may commit out of order; what keeps readers
  from skipping (``_log``) is that *every* reserved position ends up holding an item: its
  event, or a "void" written by a writer that did not commit (refused, or failed). A void never
  replaces an event (a conditional put), so voiding is safe even when a lost answer hid a
  commit. A reader voids a hole that outlives ``hole_timeout``; the late writer's transaction
  then fails on that void and is sent again at new positions.
* The guard items (``e#<event id>``) make idempotency permanent: a retry of a committed batch
  fails on its guards, and the stored events are read back through them for the core to judge.

What the storage found is reported to the core (:class:`~eventstore_core.adapter.Refused`),
which decides between an idempotent retry, :class:`DuplicateEventIdError` and
:class:`ConcurrencyError`. What stays here is the storage's own business: positions voided by
a reader, a stream whose last event sits after our positions, ``TransactionConflict`` and
throttling (retried with jittered backoff until ``retry_timeout``, then
:class:`BackendUnavailableError`), and the race of optimistic writers on one stream head: a
head that moved to a version ``expected_range`` allows is tried again at once, with the same
positions. (Through the core's bounded re-call instead, 12 of 20 concurrent ``ANY`` appends to
one stream failed with ``ConcurrencyError``.)

A failed head condition comes back with the current version
(``ReturnValuesOnConditionCheckFailure``), so the next attempt needs no extra read.

An earlier design, measured and dropped, checked the counter inside the transaction
(``pos = :old``): correct and simple, but all writers of the table then raced on one condition,
and with four connections throughput fell below that of one, with p99 latency over 400 ms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from botocore.exceptions import ClientError

from eventstore_core.adapter import (
    BackendUnavailableError,
    Backoff,
    EventStoreError,
    ExpectedVersion,
    InvalidEventError,
    Position,
    PreparedEvent,
    Refused,
    Written,
    expected_range,
    now_micros,
)
from eventstore_dynamodb import _items as keys
from eventstore_dynamodb._errors import (
    CAUGHT,
    error_code,
    is_retryable,
    may_have_applied,
    translate,
)
from eventstore_dynamodb._table import HOLE_WAIT, Table

__all__ = [
    "MAX_APPEND_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_ITEM_BYTES",
    "MAX_TRANSACTION_BYTES",
    "Writer",
]

log = logging.getLogger("eventstore_dynamodb")

#: TransactWriteItems takes at most 100 actions: 1 (the stream's head) + 3 per event (stream
#: item, global item, id guard) gives 33 events.
MAX_TRANSACTION_ACTIONS = 100
MAX_APPEND_EVENTS = (MAX_TRANSACTION_ACTIONS - 1) // 3
#: TransactWriteItems takes at most 4 MB in all; we stay a little below.
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024 - 64 * 1024
#: One item takes at most 400 KB. An event item adds at most ~6 KB of keys and attributes
#: (stream id, category and ids of up to 255 characters) to the counted event bytes.
MAX_ITEM_BYTES = 400 * 1024
MAX_EVENT_BYTES = 400_000

_HEAD_CACHE_SIZE = 10_000
_FAILED = "ConditionalCheckFailed"


#: How long closing waits for the voids of cancelled appends (readers void the rest later).
_DRAIN_SECONDS = 5.0


class Writer:
    """Appends to one table, with a cache of the stream versions this process last saw."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._heads: OrderedDict[str, int] = OrderedDict()
        #: Voids still being written for appends whose callers were cancelled.
        self._voiding: set[asyncio.Future[None]] = set()

    async def drain(self) -> None:
        """Wait (at most 5 s) for the voids of cancelled appends, before the client closes."""
        if self._voiding:
            await asyncio.wait(list(self._voiding), timeout=_DRAIN_SECONDS)

    # -- the stream heads ------------------------------------------------------------------

    async def read_head(self, stream_id: str) -> int:
        """A stream's version, read now (and remembered)."""
        item = await self._table.get(keys.head_key(stream_id))
        version = int(item["ver"]["N"]) if item and "ver" in item else 0
        self._remember_head(stream_id, version)
        return version

    def _remember_head(self, stream_id: str, version: int) -> None:
        self._heads[stream_id] = version
        self._heads.move_to_end(stream_id)
        if len(self._heads) > _HEAD_CACHE_SIZE:
            self._heads.popitem(last=False)

    async def _head_guess(self, stream_id: str, lo: int, hi: int) -> int:
        """The version to put in the head condition: the expected one, or the best known."""
        if lo == hi:  # an exact version, or NO_STREAM: nothing else can succeed
            return lo
        cached = self._heads.get(stream_id)
        # Versions only grow, so a cached version at or above ``lo`` still is; a wrong guess
        # only costs one refused transaction, which returns the real version.
        if cached is not None and lo <= cached <= hi:
            return cached
        return await self.read_head(stream_id)

    async def _actual_head(self, reason: dict[str, Any], stream_id: str) -> tuple[int, int]:
        """A stream's version and last position, from a failed condition or read again."""
        item = reason.get("Item")
        if item is None:
            # Engines without ReturnValuesOnConditionCheckFailure (moto) need one more read.
            item = await self._table.get(keys.head_key(stream_id)) or {}
        version = int(item["ver"]["N"]) if "ver" in item else 0
        self._remember_head(stream_id, version)
        return version, int(item["last"]["N"]) if "last" in item else 0

    # -- positions -------------------------------------------------------------------------

    async def reserve(self, n: int) -> int:
        """Take ``n`` global positions; returns the last one."""
        # Not a write of the append's events: a lost answer leaves a hole, never an event
        # (readers void it after hole_timeout), so a failure here says maybe_applied=False.
        answer = await self._table.call(
            "update_item",
            TableName=self._table.name,
            Key=keys.COUNTER_KEY,
            UpdateExpression="ADD pos :n",
            ExpressionAttributeValues={":n": {"N": str(n)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["pos"]["N"])

    async def void(self, positions: Sequence[int]) -> None:
        """Mark reserved positions that will never hold an event (best effort)."""
        table = self._table

        async def void_one(position: int) -> None:
            await table.call(
                "put_item",
                write=True,
                ok_codes=frozenset({"ConditionalCheckFailedException"}),
                TableName=table.name,
                Item=keys.all_key(position) | {"void": {"BOOL": True}},
                ConditionExpression="attribute_not_exists(pk)",
            )

        try:
            await asyncio.gather(*(void_one(position) for position in positions))
        except EventStoreError as error:
            # Readers will void them after hole_timeout instead.
            log.warning("could not void reserved positions %s: %s", list(positions), error)

    # -- appending -------------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected: ExpectedVersion
    ) -> Written | Refused:
        """Write the batch, or report what refused it (see the module docstring)."""
        _check_utf8(events)
        lo, hi = expected_range(expected)
        head = await self._head_guess(stream_id, lo, hi)
        if not lo <= head <= hi:
            # STREAM_EXISTS on a stream without events (just read): refused, but ids decide
            # first, so look for stored ones before saying so.
            return await self._stored(stream_id, events, head) or Refused(head)
        n = len(events)
        # Positions first: an atomic ADD on the counter never conflicts (unlike a condition on
        # it inside the transaction, which made writers of the whole table retry each other).
        last = await self.reserve(n)
        backoff = Backoff(self._table.retry_timeout)
        committed = False
        # Whether an attempt may have committed although no answer said so (a lost answer):
        # once true, every error this append raises says maybe_applied.
        maybe_applied = False
        request: dict[str, Any] | None = None
        try:
            while True:
                first = last - n + 1
                if request is None:
                    request = {
                        "TransactItems": self._transaction(stream_id, events, head, first),
                        # Sent again unchanged after a lost answer, the same token makes
                        # DynamoDB answer success if the first one committed (10 minutes).
                        "ClientRequestToken": str(uuid4()),
                    }
                try:
                    await self._table.client.transact_write_items(**request)
                    committed = True
                    break
                except ClientError as error:
                    code = error_code(error)
                    if code == "ValidationException":
                        message = error.response.get("Error", {}).get("Message", "")
                        raise InvalidEventError(
                            f"DynamoDB refused the batch: {message}", field="events"
                        ) from error
                    if code != "TransactionCanceledException":
                        maybe_applied = maybe_applied or may_have_applied(error)
                        if is_retryable(error) and await backoff.wait():
                            continue
                        raise translate(
                            error, "TransactWriteItems", maybe_applied=maybe_applied
                        ) from error
                    # Cancelled: nothing of this attempt was written. The next attempt gets a
                    # new request and token (a token is only for resending a lost answer's).
                    request = None
                    reasons: list[Any] = error.response.get("CancellationReasons", [])
                    codes = [reason.get("Code", "None") for reason in reasons]
                    if _FAILED in codes[1 + 2 * n :]:
                        # Some ids are stored already: a retry of a committed batch, or misuse.
                        refused = await self._stored(stream_id, events, head)
                        if refused is None:
                            raise EventStoreError(
                                f"stream {stream_id!r}: an event id guard refused the batch "
                                "and then could not be read"
                            ) from error
                        return refused
                    if codes and codes[0] == _FAILED:
                        # DynamoDB refused the head's condition, and says what the head is.
                        actual, stream_last = await self._actual_head(reasons[0], stream_id)
                        if not lo <= actual <= hi:
                            return Refused(actual)  # for the core: a ConcurrencyError
                        if backoff.expired:
                            raise _gave_up(codes, backoff, maybe_applied) from error
                        if actual != head:
                            # A race: another writer moved the stream to a version that
                            # ``expected`` allows. Go again at it here, not through the core:
                            # on a hot stream a writer may lose many such races in a row (the
                            # core gives a few attempts), and here positions can be kept.
                            head = actual
                        elif stream_last < first and not await backoff.wait():
                            # Refused with the values we sent (a head changed and changed back
                            # cannot happen; a foreign head item can): don't spin.
                            raise _gave_up(codes, backoff, maybe_applied) from error
                        if stream_last >= first:
                            # The stream has an event after our positions (reserved earlier,
                            # committed later): take newer ones, so that the stream's order
                            # stays the global order.
                            await self.void(range(first, last + 1))
                            last = await self.reserve(n)
                        continue
                    if _FAILED in codes[1 + n : 1 + 2 * n]:
                        # A reader gave up waiting for our positions and voided them.
                        if backoff.expired:
                            raise _gave_up(codes, backoff, maybe_applied) from error
                        log.info("positions up to %d were voided by a reader; retrying", last)
                        last = await self.reserve(n)
                        continue
                    if _FAILED in codes[1 : 1 + n]:
                        # Engines that report only some failed conditions (moto) land here on
                        # a moved head: read it to tell that from foreign writes.
                        moved, _ = await self._actual_head({}, stream_id)
                        if moved == head:
                            raise EventStoreError(
                                f"stream {stream_id!r}: an event item exists beyond the version "
                                "in its head item; the table was changed outside eventstore"
                            ) from error
                        if not lo <= moved <= hi:
                            return Refused(moved)
                        if backoff.expired:
                            raise _gave_up(codes, backoff, maybe_applied) from error
                        head = moved
                        await self.void(range(first, last + 1))
                        last = await self.reserve(n)
                        continue
                    # TransactionConflict (another transaction holds one of the items),
                    # throttling, ...: back off and try again.
                    if await backoff.wait():
                        continue
                    raise _gave_up(codes, backoff, maybe_applied) from error
                except CAUGHT as error:
                    # A lost answer: the same request (and token) is sent again, which is safe
                    # (if the first attempt committed, DynamoDB answers success for its token).
                    maybe_applied = maybe_applied or may_have_applied(error)
                    if is_retryable(error) and await backoff.wait():
                        continue
                    raise translate(
                        error, "TransactWriteItems", maybe_applied=maybe_applied
                    ) from error
        finally:
            if not committed:
                # Readers wait at a reserved position until it is filled: fill ours with
                # voids now rather than make them wait for hole_timeout. Also when the caller
                # was cancelled: the voids then go on in a task of their own (awaited at
                # close), since a void never replaces an event (a conditional put) and an
                # unfilled reservation costs every reader hole_timeout.
                voiding = asyncio.ensure_future(self.void(range(last - n + 1, last + 1)))
                try:
                    await asyncio.shield(voiding)
                except asyncio.CancelledError:
                    self._voiding.add(voiding)
                    voiding.add_done_callback(self._voiding.discard)
                    raise
        self._remember_head(stream_id, head + n)
        return Written(version=head + n, position=Position((last,)))

    def _transaction(
        self, stream_id: str, events: Sequence[PreparedEvent], head: int, first: int
    ) -> list[dict[str, Any]]:
        """The TransactWriteItems actions of one attempt: events at positions ``first``..."""
        n = len(events)
        table = self._table.name
        now_us = now_micros()
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": keys.head_key(stream_id),
                    "UpdateExpression": "SET ver = :new, #last = :last",
                    # The version check is expected_version; the position check keeps each
                    # stream's events in increasing global positions (see append).
                    "ConditionExpression": "attribute_not_exists(ver)"
                    if head == 0
                    else "ver = :old AND (attribute_not_exists(#last) OR #last < :first)",
                    "ExpressionAttributeNames": {"#last": "last"},
                    "ExpressionAttributeValues": {
                        ":new": {"N": str(head + n)},
                        ":last": {"N": str(first + n - 1)},
                    }
                    | (
                        {} if head == 0 else {":old": {"N": str(head)}, ":first": {"N": str(first)}}
                    ),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
        bodies = [
            keys.event_attributes(stream_id, head + i + 1, first + i, event, now_us)
            for i, event in enumerate(events)
        ]
        stream_items = [
            keys.stream_event_key(stream_id, head + i + 1) | body for i, body in enumerate(bodies)
        ]
        global_items = [keys.all_key(first + i) | body for i, body in enumerate(bodies)]
        guards = [
            keys.guard_item(event.id, stream_id, head + i + 1, first + i, (head + 1, head + n))
            for i, event in enumerate(events)
        ]
        total = 0
        for item in stream_items + global_items + guards:
            size = keys.item_size(item)
            if size > MAX_ITEM_BYTES:  # pragma: no cover - max_event_bytes keeps us below
                raise InvalidEventError(
                    f"an event item would be {size} bytes; DynamoDB items hold at most 400 KB",
                    field="data",
                )
            total += size
        if total > MAX_TRANSACTION_BYTES:
            raise InvalidEventError(
                f"this batch needs {total} bytes in one DynamoDB transaction (each event is "
                "stored twice: under its stream and under its global position), over the "
                f"4 MB TransactWriteItems limit ({MAX_TRANSACTION_BYTES} bytes usable); "
                "nothing was written: split the batch into smaller appends",
                field="events",
            )
        condition = "attribute_not_exists(pk)"
        actions.extend(
            {"Put": {"TableName": table, "Item": item, "ConditionExpression": condition}}
            for item in stream_items + global_items + guards
        )
        return actions

    async def _stored(
        self, stream_id: str, events: Sequence[PreparedEvent], actual: int
    ) -> Refused | None:
        """The refusal for a batch some of whose ids are stored (None if none is)."""
        guards = await self._table.batch_get([keys.guard_key(event.id) for event in events])
        if not guards:
            return None
        wanted = [keys.stream_event_key(g["sid"]["S"], int(g["ver"]["N"])) for g in guards]
        deadline = time.monotonic() + HOLE_WAIT
        while True:
            found = await self._table.batch_get(wanted)
            # A guard is visible, so its transaction committed; its event items may still be
            # on their way (reads are read-committed per item), so wait for them briefly.
            if len(found) == len(wanted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        existing = [keys.record_from_item(item) for item in found]
        guard_ids = {UUID(_guard_id(guard)) for guard in guards}
        if {event.id for event in existing} != guard_ids:
            raise EventStoreError(
                f"stream {stream_id!r}: event id guards exist without their events"
            )
        # A guard without bounds (written before guards carried them) is no batch: not a retry.
        bounds = {
            UUID(_guard_id(guard)): bound
            for guard in guards
            if (bound := keys.guard_bounds(guard)) is not None
        }
        return Refused(actual, existing, bounds)


def _check_utf8(events: Sequence[PreparedEvent]) -> None:
    """Refuse, before anything is sent, ids that DynamoDB's UTF-8 strings cannot hold."""
    for index, event in enumerate(events):
        for name, value in (
            ("correlation_id", event.correlation_id),
            ("causation_id", event.causation_id),
        ):
            if value is None or value.isascii():
                continue
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidEventError(
                    f"events[{index}].{name} {value!r} is not valid Unicode text (it holds a "
                    "lone surrogate); nothing was written",
                    field=f"events[{index}].{name}",
                ) from None


def _gave_up(
    codes: Sequence[str], backoff: Backoff, maybe_applied: bool
) -> BackendUnavailableError:
    reasons = ", ".join(sorted(set(codes) - {"None"})) or "unknown"
    outcome = "" if maybe_applied else "; nothing was written"
    return BackendUnavailableError(
        f"DynamoDB TransactWriteItems: gave up after {backoff.attempts} attempts within "
        f"retry_timeout ({reasons}){outcome}",
        maybe_applied=maybe_applied,
    )


def _guard_id(guard: keys.Item) -> str:
    return str(guard["pk"]["S"]).removeprefix("e#")
