"""``dynamodb://TABLE?region=..&endpoint_url=..``: an event store in one DynamoDB table.

How an append stays correct with any number of writer processes (see ``docs/backends/
dynamodb.md`` for the measured cost):

* One ``TransactWriteItems`` per append, never ``batch_writer`` (which silently overwrites).
  It updates the stream's head item with a condition on its version (this is how
  ``expected_version`` is enforced by DynamoDB itself), updates the global counter item with a
  condition on its value, and puts each event twice (under its stream and under its global
  position) plus a guard item per event id, each with ``attribute_not_exists``.
* The global counter makes positions dense: a transaction that commits moved the counter from
  ``c`` to ``c + n`` and wrote exactly the positions ``c+1 .. c+n``; one that fails wrote
  nothing. So a hole in the positions can only be a transaction that is committing right now,
  and a reader that never returns an event past a hole (:meth:`_read_all_page` checks that with
  ``ScannedCount``) can never skip one. The price: every append in the table goes through one
  item, so appends are serialised (about 1,000 WCU/s on one partition: a few hundred appends
  per second at most on AWS).
* The guard items (``e#<event id>``) make idempotency permanent: a retry of a committed batch
  fails on its guards, and the original result is read back from them.

Conditions that fail come back with the current value (``ReturnValuesOnConditionCheckFailure``)
so a retry needs no extra read; ``TransactionConflict`` and throttling are retried with jittered
backoff until ``retry_timeout``, then raise :class:`BackendUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
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

#: TransactWriteItems takes at most 100 actions: 2 (head, counter) + 3 per event (stream item,
#: global item, id guard) gives 32 events.
MAX_TRANSACTION_ACTIONS = 100
MAX_APPEND_EVENTS = (MAX_TRANSACTION_ACTIONS - 2) // 3
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
# positions or versions) before it returns what is before the hole.
_HOLE_WAIT = 0.5


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
    watch_interval: float = Field(default=0.1, gt=0, le=60)
    """Seconds between two reads of the global counter while subscriptions are live."""
    connect_timeout: float = Field(default=5.0, gt=0, le=600)
    read_timeout: float = Field(default=30.0, gt=0, le=3600)
    max_pool_connections: int = Field(default=32, ge=1, le=1000)


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
        global_order="total",
        # Other processes' commits are seen by polling the counter item (watch_interval).
        live_subscriptions="poll",
        max_event_bytes=MAX_EVENT_BYTES,
        max_append_events=MAX_APPEND_EVENTS,
        max_snapshot_bytes=MAX_SNAPSHOT_BYTES,
    )

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        if not isinstance(options, DynamoDBOptions):  # pragma: no cover - connect() ensures it
            options = DynamoDBOptions.model_validate(options.model_dump())
        self._options = options
        self.table = _table_name(url)
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._watcher: asyncio.Task[None] | None = None
        # Appends of one process go through the same counter item anyway: queueing them here
        # spares DynamoDB (and the WCU bill) the conflicts they would have among themselves.
        self._append_lock = asyncio.Lock()
        self._counter_guess = 0
        self._heads: OrderedDict[str, int] = OrderedDict()

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        options = self._options
        session = aioboto3.Session(profile_name=options.profile, region_name=options.region)
        config = AioConfig(
            retries={"mode": "standard", "max_attempts": 4},
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
        self._watcher = asyncio.create_task(self._watch(), name=f"eventstore-dynamodb-{self.table}")

    async def _close(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    async def _watch(self) -> None:
        """Wake local subscriptions when another process moves the global counter."""
        last: int | None = None
        while True:
            if self._subscriptions:
                try:
                    current = await self._read_counter()
                except EventStoreError as error:
                    log.warning("reading the global counter failed: %s", error)
                else:
                    # The first reading notifies too: a commit may have landed between a
                    # subscription's last read and this one.
                    if current != last:
                        self._notifier.notify()
                    last = current
            else:
                last = None
            await asyncio.sleep(self._options.watch_interval)

    async def setup(self) -> None:
        """Create the table (on-demand billing) if it is missing, and wait until it is active.

        Idempotent and safe to run from several processes at once: a concurrent creation
        shows as ``ResourceInUseException``, after which everyone waits for the same table.
        """
        self._check_open()
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
        backoff = Backoff(self._options.retry_timeout)
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
            backoff = Backoff(self._options.retry_timeout)
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
        value = int(item["pos"]["N"]) if item and "pos" in item else 0
        self._counter_guess = max(self._counter_guess, value)
        return value

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
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        async with self._append_lock:
            return await self._append_locked(stream_id, events, expected_version)

    async def _append_locked(
        self, stream_id: str, events: Sequence[PreparedEvent], expected: ExpectedVersion
    ) -> AppendResult:
        head = await self._head_guess(stream_id, expected)
        counter = self._counter_guess
        backoff = Backoff(self._options.retry_timeout)
        n = len(events)
        while True:
            transaction = self._transaction(stream_id, events, head, counter)
            try:
                await self._client.transact_write_items(
                    TransactItems=transaction,
                    # botocore resends the same request (same token) after a lost answer, and
                    # DynamoDB then answers success instead of failing on its own guards.
                    ClientRequestToken=str(uuid4()),
                )
            except ClientError as error:
                code = error_code(error)
                if code == "TransactionCanceledException":
                    reasons: list[Any] = error.response.get("CancellationReasons", [])
                    codes = [reason.get("Code", "None") for reason in reasons]
                    if "ConditionalCheckFailed" in codes[2 + 2 * n :]:
                        return await self._idempotent(stream_id, events)
                    stale = False
                    if codes and codes[0] == "ConditionalCheckFailed":
                        head = await self._actual(reasons[0], "ver", self._read_head, stream_id)
                        # DynamoDB refused the condition: ``head`` is the real version now.
                        check_expected_version(stream_id, expected, head)
                        stale = True
                    if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                        counter = await self._actual(reasons[1], "pos", None, stream_id)
                        stale = True
                    # With a stale head or counter, the event puts fail too (their keys are
                    # taken); with both right, a taken key means foreign writes.
                    if not stale and "ConditionalCheckFailed" in codes[2 : 2 + 2 * n]:
                        raise EventStoreError(
                            f"stream {stream_id!r}: an event item exists beyond the version in "
                            "its head item; the table was changed outside eventstore"
                        ) from error
                    if set(codes) <= {"None", "ConditionalCheckFailed"}:
                        # A fresh value came back, so another writer made progress: retry at
                        # once (sleeping would only lower the table's throughput), with a
                        # jitter of a few ms to break lockstep between writers.
                        if backoff.expired:
                            raise _gave_up(codes, backoff) from error
                        backoff.attempts += 1
                        if backoff.attempts > 2:
                            await asyncio.sleep(random.uniform(0, min(0.02, 0.002 * backoff.attempts)))
                        continue
                    # TransactionConflict (another transaction holds one of the items),
                    # ThrottlingError, ... : back off and try again.
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
                # Retrying after a lost answer is safe: if the first attempt committed, the
                # guards fail and the original result is read back.
                if is_retryable(error) and await backoff.wait():
                    continue
                raise translate(error, "TransactWriteItems", write=True) from error
            self._remember_head(stream_id, head + n)
            self._counter_guess = max(self._counter_guess, counter + n)
            return AppendResult(version=head + n, position=Position((counter + n,)))

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

    async def _actual(
        self, reason: dict[str, Any], attribute: str, reread: Any, stream_id: str
    ) -> int:
        """The current value from a failed condition (``ALL_OLD``), else read it again."""
        item = reason.get("Item")
        if item is not None:
            return int(item[attribute]["N"]) if attribute in item else 0
        # Engines without ReturnValuesOnConditionCheckFailure (moto) need one more read.
        if reread is not None:
            value: int = await reread(stream_id)
            return value
        return await self._read_counter()

    def _transaction(
        self, stream_id: str, events: Sequence[PreparedEvent], head: int, counter: int
    ) -> list[dict[str, Any]]:
        """The TransactWriteItems actions of one attempt (see the module docstring)."""
        n = len(events)
        table = self.table
        now_us = time.time_ns() // 1000
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table,
                    "Key": keys.head_key(stream_id),
                    "UpdateExpression": "SET ver = :new",
                    "ConditionExpression": "attribute_not_exists(ver)"
                    if head == 0
                    else "ver = :old",
                    "ExpressionAttributeValues": {":new": {"N": str(head + n)}}
                    | ({} if head == 0 else {":old": {"N": str(head)}}),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": table,
                    "Key": keys.COUNTER_KEY,
                    "UpdateExpression": "SET pos = :new",
                    "ConditionExpression": "attribute_not_exists(pos)"
                    if counter == 0
                    else "pos = :old",
                    "ExpressionAttributeValues": {":new": {"N": str(counter + n)}}
                    | ({} if counter == 0 else {":old": {"N": str(counter)}}),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
        bodies = [
            keys.event_attributes(stream_id, head + i + 1, counter + i + 1, event, now_us)
            for i, event in enumerate(events)
        ]
        stream_items = [
            keys.stream_event_key(stream_id, head + i + 1) | body for i, body in enumerate(bodies)
        ]
        global_items = [keys.all_key(counter + i + 1) | body for i, body in enumerate(bodies)]
        guards = [
            keys.guard_key(event.id)
            | {
                "sid": {"S": stream_id},
                "ver": {"N": str(head + i + 1)},
                "pos": {"N": str(counter + i + 1)},
            }
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
        return idempotent_result(stream_id, events, existing)

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
        # Read the counter first: every position up to it belongs to a committed transaction
        # (the counter moves only in the transaction that writes those positions).
        high = await self._read_counter()
        position = after.parts[0] + 1 if after is not None else 1
        found: list[RecordedEvent] = []
        deadline = time.monotonic() + _HOLE_WAIT
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
            # Dense positions: the range position..scanned_to must hold exactly that many items.
            # Fewer means a hole, i.e. a transaction committing right now; never read past it.
            if answer.get("ScannedCount", 0) != scanned_to - position + 1:
                if time.monotonic() <= deadline:
                    await asyncio.sleep(0.01)
                    continue
                # Still there: read up to the hole only; the rest comes with a later page.
                hole = await self._first_hole(keys.all_pk(position), position, scanned_to)
                if hole == position:
                    break
                high = hole - 1
                continue
            for item in answer.get("Items", []):
                record = keys.record_from_item(item)
                if filter is None or filter.matches(record.stream_id, record.type):
                    found.append(record)
            position = scanned_to + 1
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
