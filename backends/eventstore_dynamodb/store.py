"""``dynamodb://TABLE?region=..&endpoint_url=..``: an event store in one DynamoDB table.

How an append stays correct with any number of writer processes (the measured cost is in
``docs/backends/dynamodb.md``):

* Global positions are reserved first, with an atomic ``ADD`` on one counter item (it never
  conflicts: DynamoDB serialises the increments). Then one ``TransactWriteItems``, never
  ``batch_writer`` (which silently overwrites), updates the stream's head item with a condition
  on its version (so ``expected_version`` is enforced by DynamoDB itself) and puts each event
  twice, under its stream and under its reserved position, plus a guard item per event id, all
  with ``attribute_not_exists``.
* Positions are reserved before commit, so they may commit out of order; what keeps readers
  from skipping is that *every* reserved position ends up holding an item: its event, or a
  "void" written by a writer that gave up (expected-version mismatch, idempotent retry, error).
  A reader reads positions up to the counter and never past a hole (checked with
  ``ScannedCount``): a hole is a transaction in flight. If a hole outlives ``hole_timeout``
  (its writer crashed between reserving and committing), the reader voids it with a
  conditional put; the late writer's transaction then fails on that void and retries at new
  positions. Either the event or the void wins, atomically, so nothing is ever skipped.
* The guard items (``e#<event id>``) make idempotency permanent: a retry of a committed batch
  fails on its guards, and the original result is read back through them. Each guard also
  holds its batch's first and last versions, so that part of a batch is not taken for it.

A failed head condition comes back with the current version
(``ReturnValuesOnConditionCheckFailure``), so a retry needs no extra read; ``TransactionConflict``
and throttling are retried with jittered backoff until ``retry_timeout``, then raise
:class:`BackendUnavailableError`.

An earlier design, measured and dropped, checked the counter inside the transaction
(``pos = :old``): correct and simple, but all writers of the table then raced on one condition,
and with four connections throughput fell below that of one, with p99 latency over 400 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit
from uuid import UUID, uuid4

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from eventstore_core import serialization
from eventstore_core.config import ParsedUrl, StoreOptions
from eventstore_core.errors import (
    BackendUnavailableError,
    ConfigurationError,
    EventStoreError,
    InvalidEventError,
)
from eventstore_core.models import (
    AppendResult,
    Capabilities,
    EventFilter,
    ExpectedVersion,
    Position,
    RecordedEvent,
    Snapshot,
    StreamState,
)
from eventstore_core.store import EventStore, check_expected_version, idempotent_result
from eventstore_core.validation import PreparedEvent
from eventstore_dynamodb import items as keys
from eventstore_dynamodb.errors import Backoff, error_code, is_retryable, translate

__all__ = ["DynamoDBEventStore", "DynamoDBOptions"]

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
#: A snapshot is cut into chunks of this size, written in one transaction.
SNAPSHOT_CHUNK_BYTES = 350_000
MAX_SNAPSHOT_BYTES = 10 * SNAPSHOT_CHUNK_BYTES

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_HEAD_CACHE_SIZE = 10_000
# How long a reader waits for a transaction that is committing right now (a hole in the
# positions or versions) before it returns what is before the hole. Commits take milliseconds.
_HOLE_WAIT = 0.1


class DynamoDBOptions(StoreOptions):
    """Options of ``dynamodb://`` URLs. Credentials come from the usual AWS chain only."""

    region: str | None = None
    """The AWS region; default: the AWS configuration (``AWS_DEFAULT_REGION``, profile)."""
    endpoint_url: str | None = None
    """Another endpoint, for DynamoDB Local (``http://localhost:8000``) or a VPC endpoint."""
    profile: str | None = None
    """A named profile of the AWS configuration files."""
    retry_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds to keep retrying conflicts and throttling before BackendUnavailableError."""
    hole_timeout: float = Field(default=2.0, gt=0, le=3600)
    """Seconds a reader waits at a reserved position whose writer never commits (it crashed,
    or lost its connection) before it voids that position and reads on."""
    watch_interval: float = Field(default=0.1, gt=0, le=60)
    """Seconds between two reads of the global counter while subscriptions are live."""
    connect_timeout: float = Field(default=5.0, gt=0, le=600)
    """Seconds to wait for a connection to DynamoDB."""
    read_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds to wait for an answer."""
    max_pool_connections: int = Field(default=32, ge=1, le=1000)
    """HTTP connections the client keeps open at most."""


def _table_name(url: ParsedUrl) -> str:
    parts = urlsplit(url.url)
    # The host keeps its case here (ParsedUrl.host is lower-cased); DynamoDB names are
    # case-sensitive. ``dynamodb:///TABLE`` is accepted too.
    name = unquote(parts.netloc.rsplit("@", 1)[-1] or parts.path.lstrip("/"))
    if not _TABLE_NAME.match(name):
        raise ConfigurationError(
            f"dynamodb:// URL needs a table name of 3-255 characters among a-z A-Z 0-9 _ . -, "
            f"as in dynamodb://events?region=eu-west-1; got {name!r}"
        )
    return name


class DynamoDBEventStore(EventStore):
    """An event store in one DynamoDB table, through aioboto3."""

    Options: ClassVar[type[StoreOptions]] = DynamoDBOptions
    capabilities = Capabilities(
        concurrency="multi-writer",
        idempotency="permanent",
        unique_event_ids="store",
        global_order="total",
        # Other processes' commits are seen by polling the counter item (watch_interval).
        live_subscriptions="poll",
        max_event_bytes=MAX_EVENT_BYTES,
        max_append_events=MAX_APPEND_EVENTS,
        max_snapshot_bytes=MAX_SNAPSHOT_BYTES,
    )
    #: A position is one sequence number: a token of another shape is refused at the call.
    position_parts = 1

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        if not isinstance(options, DynamoDBOptions):  # pragma: no cover - connect() ensures it
            options = DynamoDBOptions.model_validate(options.model_dump())
        self._options = options
        self.table = _table_name(url)
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        # Where a reader first saw each position it is waiting for (see _read_all_page).
        self._holes: dict[int, float] = {}
        self._heads: OrderedDict[str, int] = OrderedDict()

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        options = self._options
        session = aioboto3.Session(profile_name=options.profile, region_name=options.region)
        config = AioConfig(
            # One retry layer only, ours (errors.Backoff): it knows which answers are worth a
            # retry (TransactionConflict among them) and honours retry_timeout; botocore's
            # own backoff would add seconds behind it.
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_pool_connections=options.max_pool_connections,
        )
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                session.client("dynamodb", endpoint_url=options.endpoint_url, config=config)
            )
        except (BotoCoreError, ClientError, OSError) as error:
            await stack.aclose()
            raise translate(error, "open") from error
        self._stack = stack

    async def _close(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    async def _watch(self) -> None:
        """Wake local subscriptions when another process moves the global counter."""
        last: int | None = None
        failing: str | None = None
        while True:
            try:
                current = await self._read_counter()
            except EventStoreError as error:
                if str(error) != failing:  # once per kind of failure, not every tick
                    log.warning("reading the global counter failed: %s", error)
                failing = str(error)
            else:
                failing = None
                # The first reading notifies too: a commit may have landed between a
                # subscription's last read and this one.
                if current != last:
                    self._notifier.notify()
                last = current
            await asyncio.sleep(self._options.watch_interval)

    async def _setup(self) -> None:
        """Create the table (on-demand billing) if it is missing, and wait until it is active.

        Idempotent and safe to run from several processes at once: a concurrent creation
        shows as ``ResourceInUseException``, after which everyone waits for the same table.
        """
        try:
            await self._client.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "N"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            log.info("created DynamoDB table %s", self.table)
        except ClientError as error:
            if error_code(error) != "ResourceInUseException":
                raise translate(error, "CreateTable") from error
        except (BotoCoreError, OSError) as error:
            raise translate(error, "CreateTable") from error
        deadline = time.monotonic() + 300
        while True:
            description = await self._call("describe_table", TableName=self.table)
            table = description["Table"]
            schema = {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]}
            if schema != {("pk", "HASH"), ("sk", "RANGE")}:
                raise ConfigurationError(
                    f"DynamoDB table {self.table!r} exists with another key schema "
                    f"({sorted(schema)}); eventstore needs pk (S, HASH) and sk (N, RANGE)"
                )
            if table["TableStatus"] == "ACTIVE":
                return
            if time.monotonic() > deadline:
                raise EventStoreError(f"DynamoDB table {self.table!r} did not become ACTIVE")
            await asyncio.sleep(0.5)

    # -- low-level calls -------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        *,
        write: bool = False,
        ok_codes: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> Any:
        """Call a client method, retrying throttling, and translating every driver error.

        An error whose code is in ``ok_codes`` is an expected answer: the call returns None.
        """
        self._check_open()
        backoff = Backoff(self._options.retry_timeout, cap=1.0)
        while True:
            try:
                return await getattr(self._client, operation)(**kwargs)
            except (TimeoutError, BotoCoreError, ClientError, OSError) as error:
                if error_code(error) in ok_codes:
                    return None
                if is_retryable(error) and await backoff.wait():
                    continue
                raise translate(error, operation, write=write) from error

    async def _get(self, key: keys.Item) -> keys.Item | None:
        answer = await self._call("get_item", TableName=self.table, Key=key, ConsistentRead=True)
        item: keys.Item | None = answer.get("Item")
        return item

    async def _batch_get(self, wanted: Sequence[keys.Item]) -> list[keys.Item]:
        """Strongly consistent reads of up to any number of keys (100 per request)."""
        found: list[keys.Item] = []
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self.table: {"Keys": list(wanted[start : start + 100]), "ConsistentRead": True}
            }
            backoff = Backoff(self._options.retry_timeout, cap=1.0)
            while request:
                answer = await self._call("batch_get_item", RequestItems=request)
                found.extend(answer.get("Responses", {}).get(self.table, []))
                request = answer.get("UnprocessedKeys") or {}
                if request and not await backoff.wait():
                    raise translate(
                        ClientError(
                            {"Error": {"Code": "ThrottlingException", "Message": "unprocessed"}},
                            "BatchGetItem",
                        ),
                        "BatchGetItem",
                    )
        return found

    async def _read_counter(self) -> int:
        item = await self._get(keys.COUNTER_KEY)
        return int(item["pos"]["N"]) if item and "pos" in item else 0

    async def _read_head(self, stream_id: str) -> int:
        item = await self._get(keys.head_key(stream_id))
        version = int(item["ver"]["N"]) if item and "ver" in item else 0
        self._remember_head(stream_id, version)
        return version

    def _remember_head(self, stream_id: str, version: int) -> None:
        self._heads[stream_id] = version
        self._heads.move_to_end(stream_id)
        if len(self._heads) > _HEAD_CACHE_SIZE:
            self._heads.popitem(last=False)

    # -- appending -------------------------------------------------------------------------

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected: ExpectedVersion
    ) -> AppendResult:
        head = await self._head_guess(stream_id, expected)
        n = len(events)
        # Positions first: an atomic ADD on the counter never conflicts (unlike a condition on
        # it inside the transaction, which made writers of the whole table retry each other).
        last = await self._reserve(n)
        backoff = Backoff(self._options.retry_timeout)
        committed = False
        request: dict[str, Any] | None = None
        try:
            while True:
                if request is None:
                    request = {
                        "TransactItems": self._transaction(stream_id, events, head, last - n + 1),
                        # Sent again unchanged after a lost answer, the same token makes
                        # DynamoDB answer success if the first one committed (10 minutes).
                        "ClientRequestToken": str(uuid4()),
                    }
                try:
                    await self._client.transact_write_items(**request)
                    committed = True
                    break
                except ClientError as error:
                    code = error_code(error)
                    if code == "TransactionCanceledException":
                        # A new request (and token) for the next attempt: a token is only
                        # meant for resending a request whose answer was lost.
                        request = None
                        reasons: list[Any] = error.response.get("CancellationReasons", [])
                        codes = [reason.get("Code", "None") for reason in reasons]
                        if "ConditionalCheckFailed" in codes[1 + 2 * n :]:
                            # Some ids exist already: a retry of a committed batch, or misuse.
                            return await self._idempotent(stream_id, events)
                        refused, stream_last = head, 0
                        if codes and codes[0] == "ConditionalCheckFailed":
                            # DynamoDB refused the head's condition: here is the real head.
                            head, stream_last = await self._actual_head(reasons[0], stream_id)
                            check_expected_version(stream_id, expected, head)
                        if backoff.expired:  # every path below tries again
                            raise _gave_up(codes, backoff) from error
                        if codes and codes[0] == "ConditionalCheckFailed":
                            if head == refused and stream_last < last - n + 1:
                                # Refused with the values we sent (a head changed and changed
                                # back cannot happen; a foreign head item can): don't spin.
                                if not await backoff.wait():
                                    raise _gave_up(codes, backoff) from error
                            elif stream_last >= last - n + 1:
                                # The stream has an event after our positions (reserved
                                # earlier, committed later): take newer ones, so that the
                                # stream's order stays the global order.
                                await self._void(range(last - n + 1, last + 1))
                                last = await self._reserve(n)
                            continue
                        if "ConditionalCheckFailed" in codes[1 + n : 1 + 2 * n]:
                            # A reader gave up waiting for our positions and voided them.
                            log.info("positions up to %d were voided by a reader; retrying", last)
                            last = await self._reserve(n)
                            continue
                        if "ConditionalCheckFailed" in codes[1 : 1 + n]:
                            # Engines that report only some failed conditions (moto) land
                            # here on a moved head: read it to tell that from foreign writes.
                            moved, _ = await self._actual_head({}, stream_id)
                            if moved != head:
                                check_expected_version(stream_id, expected, moved)
                                head = moved
                                await self._void(range(last - n + 1, last + 1))
                                last = await self._reserve(n)
                                continue
                            raise EventStoreError(
                                f"stream {stream_id!r}: an event item exists beyond the version "
                                "in its head item; the table was changed outside eventstore"
                            ) from error
                        # TransactionConflict (another transaction holds one of the items),
                        # throttling, ...: back off and try again.
                        if await backoff.wait():
                            continue
                        raise _gave_up(codes, backoff) from error
                    if code == "ValidationException":
                        message = error.response.get("Error", {}).get("Message", "")
                        raise InvalidEventError(
                            f"DynamoDB refused the batch: {message}", field="events"
                        ) from error
                    if is_retryable(error) and await backoff.wait():
                        continue
                    raise translate(error, "TransactWriteItems", write=True) from error
                except (TimeoutError, BotoCoreError, OSError) as error:
                    # Retrying after a lost answer is safe: if the first attempt committed,
                    # the guards fail and the original result is read back.
                    if is_retryable(error) and await backoff.wait():
                        continue
                    raise translate(error, "TransactWriteItems", write=True) from error
        finally:
            if not committed:
                # Readers wait at a reserved position until it is filled: fill ours with
                # voids now rather than make them wait for hole_timeout. A void never
                # replaces an event (conditional put), so this is safe even if a lost
                # answer hid a commit.
                await self._void(range(last - n + 1, last + 1))
        self._remember_head(stream_id, head + n)
        return AppendResult(version=head + n, position=Position((last,)))

    async def _reserve(self, n: int) -> int:
        """Take ``n`` global positions; returns the last one."""
        answer = await self._call(
            "update_item",
            write=True,
            TableName=self.table,
            Key=keys.COUNTER_KEY,
            UpdateExpression="ADD pos :n",
            ExpressionAttributeValues={":n": {"N": str(n)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["pos"]["N"])

    async def _void(self, positions: Sequence[int]) -> None:
        """Mark reserved positions that will never hold an event (best effort)."""

        async def void_one(position: int) -> None:
            await self._call(
                "put_item",
                write=True,
                ok_codes=frozenset({"ConditionalCheckFailedException"}),
                TableName=self.table,
                Item=keys.all_key(position) | {"void": {"BOOL": True}},
                ConditionExpression="attribute_not_exists(pk)",
            )

        try:
            await asyncio.gather(*(void_one(position) for position in positions))
        except EventStoreError as error:
            # Readers will void them after hole_timeout instead.
            log.warning("could not void reserved positions %s: %s", list(positions), error)

    async def _head_guess(self, stream_id: str, expected: ExpectedVersion) -> int:
        """The version to put in the head condition: the expected one, or the best known."""
        if isinstance(expected, int):
            return expected
        if expected is StreamState.NO_STREAM:
            return 0
        cached = self._heads.get(stream_id)
        # Versions only grow, so a cached version > 0 proves the stream exists; a wrong guess
        # only costs one refused transaction, which returns the real version.
        if cached is None or (cached == 0 and expected is StreamState.STREAM_EXISTS):
            cached = await self._read_head(stream_id)
        check_expected_version(stream_id, expected, cached)
        return cached

    async def _actual_head(self, reason: dict[str, Any], stream_id: str) -> tuple[int, int]:
        """A stream's version and last position, from a failed condition or read again."""
        item = reason.get("Item")
        if item is None:
            # Engines without ReturnValuesOnConditionCheckFailure (moto) need one more read.
            item = await self._get(keys.head_key(stream_id)) or {}
        version = int(item["ver"]["N"]) if "ver" in item else 0
        self._remember_head(stream_id, version)
        return version, int(item["last"]["N"]) if "last" in item else 0

    def _transaction(
        self, stream_id: str, events: Sequence[PreparedEvent], head: int, first: int
    ) -> list[dict[str, Any]]:
        """The TransactWriteItems actions of one attempt: events at positions ``first``..."""
        n = len(events)
        table = self.table
        now_us = time.time_ns() // 1000
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": keys.head_key(stream_id),
                    "UpdateExpression": "SET ver = :new, #last = :last",
                    # The version check is expected_version; the position check keeps each
                    # stream's events in increasing global positions (see _append).
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
        for item in stream_items + global_items:
            actions.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        for item in guards:
            actions.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        return actions

    async def _idempotent(self, stream_id: str, events: Sequence[PreparedEvent]) -> AppendResult:
        """Some event ids exist: the original result of this very batch, or an error."""
        guards = await self._batch_get([keys.guard_key(event.id) for event in events])
        wanted = [keys.stream_event_key(g["sid"]["S"], int(g["ver"]["N"])) for g in guards]
        deadline = time.monotonic() + _HOLE_WAIT
        while True:
            found = await self._batch_get(wanted)
            # A guard is visible, so its transaction committed; its event items may still be
            # on their way (reads are read-committed per item), so wait for them briefly.
            if len(found) == len(wanted) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        existing = [keys.record_from_item(item) for item in found]
        existing_ids = {event.id for event in existing}
        wanted_ids: set[UUID] = {UUID(_guard_id(g)) for g in guards}
        if existing_ids != wanted_ids:
            raise EventStoreError(
                f"stream {stream_id!r}: event id guards exist without their events"
            )
        # A guard without bounds (written before guards carried them) is no batch: not a retry.
        bounds = {UUID(_guard_id(g)): b for g in guards if (b := keys.guard_bounds(g)) is not None}
        return idempotent_result(stream_id, events, existing, batch_bounds=bounds)

    # -- reading ---------------------------------------------------------------------------

    async def _query(self, **kwargs: Any) -> Any:
        return await self._call("query", TableName=self.table, ConsistentRead=True, **kwargs)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
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
        deadline = time.monotonic() + _HOLE_WAIT
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
            answer = await self._query(**page_kwargs)
            records.extend(keys.record_from_item(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                break
        return records

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        # Read the counter first: every position up to it was reserved by a writer, and will
        # hold its event or a void (see _append). Above it, nothing can be read yet.
        high = await self._read_counter()
        position = after.parts[0] + 1 if after is not None else 1
        found: list[RecordedEvent] = []
        settle = time.monotonic() + _HOLE_WAIT
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
            answer = await self._query(**kwargs)
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
                if time.monotonic() - first_seen >= self._options.hole_timeout:
                    # Its writer is gone (crashed, or cut off and not retrying): void it. If
                    # the writer commits after all, its transaction fails on the void and it
                    # retries at new positions; if it committed first, the void is refused.
                    log.warning(
                        "voiding global position %d after %.1fs",
                        hole,
                        time.monotonic() - first_seen,
                    )
                    await self._void([hole])
                    self._holes.pop(hole, None)
                    continue
                # The counter moved when the position was reserved and will not move again at
                # its commit, so no watcher will see that commit: look again shortly ourselves.
                asyncio.get_running_loop().call_later(0.05, self._notifier.notify)
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
            answer = await self._query(**kwargs)
            for item in answer.get("Items", []):
                if int(item["sk"]["N"]) != expected:
                    return expected
                expected += 1
            last_key = answer.get("LastEvaluatedKey")
            if last_key is None:
                return expected

    async def _stream_version(self, stream_id: str) -> int:
        return await self._read_head(stream_id)

    # -- checkpoints -----------------------------------------------------------------------

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        await self._call(
            "put_item",
            write=True,
            TableName=self.table,
            Item=keys.checkpoint_key(name) | {"p": {"S": str(position)}},
        )

    async def _load_checkpoint(self, name: str) -> Position | None:
        item = await self._get(keys.checkpoint_key(name))
        return Position.parse(item["p"]["S"]) if item else None

    # -- snapshots -------------------------------------------------------------------------

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        pk = keys.snapshot_pk(snapshot.stream_id)
        generation = uuid4().hex
        chunks = [
            data[start : start + SNAPSHOT_CHUNK_BYTES]
            for start in range(0, len(data), SNAPSHOT_CHUNK_BYTES)
        ] or [b""]
        header: keys.Item = {
            "pk": {"S": pk},
            "sk": {"N": "0"},
            "ver": {"N": str(snapshot.version)},
            "type": {"S": snapshot.type},
            "gen": {"S": generation},
            "chunks": {"N": str(len(chunks))},
        }
        # Keep the snapshot of the highest version: an older one saved late loses.
        condition = {
            "ConditionExpression": "attribute_not_exists(ver) OR ver <= :v",
            "ExpressionAttributeValues": {":v": {"N": str(snapshot.version)}},
        }
        if len(chunks) == 1:
            header["d"] = {"B": chunks[0]}
            await self._call(
                "put_item",
                write=True,
                # Refused: a snapshot of a higher version is stored, and stays.
                ok_codes=frozenset({"ConditionalCheckFailedException"}),
                TableName=self.table,
                Item=header,
                **condition,
            )
            return
        # Over one item's 400 KB: chunks plus header in one transaction, so a reader sees the
        # old snapshot or the new one; chunks carry the generation to tell them apart.
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": header, **condition}}
        ] + [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": {"S": pk},
                        "sk": {"N": str(index + 1)},
                        "gen": {"S": generation},
                        "d": {"B": chunk},
                    },
                }
            }
            for index, chunk in enumerate(chunks)
        ]
        backoff = Backoff(self._options.retry_timeout)
        while True:
            try:
                await self._client.transact_write_items(
                    TransactItems=actions, ClientRequestToken=generation[:36]
                )
                return
            except ClientError as error:
                if error_code(error) == "TransactionCanceledException":
                    reasons = error.response.get("CancellationReasons", [])
                    if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                        return  # a newer snapshot is stored
                    if await backoff.wait():
                        continue
                elif is_retryable(error) and await backoff.wait():
                    continue
                raise translate(error, "TransactWriteItems", write=True) from error
            except (TimeoutError, BotoCoreError, OSError) as error:
                if is_retryable(error) and await backoff.wait():
                    continue
                raise translate(error, "TransactWriteItems", write=True) from error

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        deadline = time.monotonic() + _HOLE_WAIT
        while True:
            answer = await self._query(
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": keys.snapshot_pk(stream_id)}},
            )
            items: list[keys.Item] = answer.get("Items", [])
            while answer.get("LastEvaluatedKey"):
                answer = await self._query(
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": keys.snapshot_pk(stream_id)}},
                    ExclusiveStartKey=answer["LastEvaluatedKey"],
                )
                items.extend(answer.get("Items", []))
            by_sk = {int(item["sk"]["N"]): item for item in items}
            header = by_sk.get(0)
            if header is None:
                return None
            if "d" in header:
                data = bytes(header["d"]["B"])
            else:
                generation = header["gen"]["S"]
                parts = [by_sk.get(index) for index in range(1, int(header["chunks"]["N"]) + 1)]
                if any(part is None or part["gen"]["S"] != generation for part in parts):
                    # A save is committing: its header and chunks become visible one by one.
                    if time.monotonic() > deadline:
                        raise EventStoreError(f"snapshot of {stream_id!r} is incomplete")
                    await asyncio.sleep(0.01)
                    continue
                data = b"".join(bytes(part["d"]["B"]) for part in parts if part is not None)
            return Snapshot(
                stream_id=stream_id,
                version=int(header["ver"]["N"]),
                type=header["type"]["S"],
                data=serialization.loads(data),
            )


def _gave_up(codes: Sequence[str], backoff: Backoff) -> BackendUnavailableError:
    reasons = ", ".join(sorted(set(codes) - {"None"})) or "unknown"
    return BackendUnavailableError(
        f"DynamoDB TransactWriteItems: gave up after {backoff.attempts} attempts within "
        f"retry_timeout ({reasons}); nothing was written"
    )


def _guard_id(guard: keys.Item) -> str:
    return str(guard["pk"]["S"]).removeprefix("e#")


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
        if len(wanted) > 99:  # IN takes at most 100 operands: filter these here instead
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
