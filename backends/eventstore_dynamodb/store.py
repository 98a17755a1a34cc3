"""``dynamodb://TABLE?region=..&endpoint_url=..``: an event store in one DynamoDB table.

This module is the adapter's face: options, capabilities, the client's lifecycle, ``setup``
and checkpoints. The rest lives beside it, one behaviour per module:

* ``_items``: the table's layout (every kind of item, its key and attributes);
* ``_table``: the low-level calls, their retries and error translation (``_errors``);
* ``_writes``: the write path (reserved positions, one transaction, voids, id guards);
* ``_log``: the hole-tolerant readers of the global log and of streams;
* ``_snapshots``: snapshots, chunked over items when large;
* ``_redaction``: keeping credentials out of botocore's debug logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from eventstore_core.adapter import (
    Capabilities,
    ConfigurationError,
    CounterWatcher,
    EventFilter,
    EventStore,
    EventStoreError,
    ExpectedVersion,
    ParsedUrl,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    StoreOptions,
    Written,
)
from eventstore_dynamodb import _items as keys
from eventstore_dynamodb._errors import translate
from eventstore_dynamodb._log import LogReader
from eventstore_dynamodb._redaction import redact_botocore_logs
from eventstore_dynamodb._snapshots import MAX_SNAPSHOT_BYTES, load_snapshot, save_snapshot
from eventstore_dynamodb._table import Table
from eventstore_dynamodb._writes import MAX_APPEND_EVENTS, MAX_EVENT_BYTES, Writer

__all__ = ["DynamoDBEventStore", "DynamoDBOptions"]

log = logging.getLogger("eventstore_dynamodb")

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


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
        self._table = Table(self.table, options.retry_timeout)
        self._writer = Writer(self._table)
        self._reader = LogReader(
            self._table, self._writer, options.hole_timeout, self._notifier.notify
        )
        self._stack: contextlib.AsyncExitStack | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        options = self._options
        session = aioboto3.Session(profile_name=options.profile, region_name=options.region)
        config = AioConfig(
            # One retry layer only, ours (the core's Backoff, in _table and _writes): it knows
            # which answers are worth a retry (TransactionConflict among them) and honours
            # retry_timeout; botocore's own backoff would add seconds behind it.
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_pool_connections=options.max_pool_connections,
        )
        stack = contextlib.AsyncExitStack()
        try:
            self._table.client = await stack.enter_async_context(
                session.client("dynamodb", endpoint_url=options.endpoint_url, config=config)
            )
        except (BotoCoreError, ClientError, OSError) as error:
            await stack.aclose()
            raise translate(error, "open") from error
        self._stack = stack
        # After the client exists, so that every botocore logger it uses exists too.
        redact_botocore_logs()

    async def _close(self) -> None:
        await self._writer.drain()
        stack, self._stack = self._stack, None
        self._table.client = None
        if stack is not None:
            await stack.aclose()

    async def _watch(self) -> None:
        """Wake local subscriptions when another process moves the global counter."""
        await CounterWatcher(
            self._table.read_counter,
            self._notifier.notify,
            self._options.watch_interval,
            "the global counter",
        ).run()

    async def _setup(self) -> None:
        """Create the table (on-demand billing) if it is missing, and wait until it is active.

        Idempotent and safe to run from several processes at once: a concurrent creation
        shows as ``ResourceInUseException``, after which everyone waits for the same table.
        """
        created = await self._table.call(
            "create_table",
            # Another process (or an earlier run) created it: wait for it like everyone.
            ok_codes=frozenset({"ResourceInUseException"}),
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
        if created is not None:
            log.info("created DynamoDB table %s", self.table)
        deadline = time.monotonic() + 300
        while True:
            description = await self._table.call("describe_table", TableName=self.table)
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

    # -- the hooks -------------------------------------------------------------------------

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        return await self._writer.append(stream_id, events, expected_version)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        return await self._reader.read_stream_page(stream_id, from_version, backwards, limit)

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        return await self._reader.read_all_page(after, filter, limit)

    async def _stream_version(self, stream_id: str) -> int:
        return await self._writer.read_head(stream_id)

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        await self._table.call(
            "put_item",
            write=True,
            TableName=self.table,
            Item=keys.checkpoint_key(name) | {"p": {"S": str(position)}},
        )

    async def _load_checkpoint(self, name: str) -> Position | None:
        item = await self._table.get(keys.checkpoint_key(name))
        return Position.parse(item["p"]["S"]) if item else None

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        await save_snapshot(self._table, snapshot, data)

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await load_snapshot(self._table, stream_id)
