"""Append and read throughput of the DynamoDB adapter, beside raw aioboto3, with WCU per event.

    uv run python benchmarks/dynamodb_bench.py              # starts DynamoDB Local itself
    uv run python benchmarks/dynamodb_bench.py --url 'dynamodb://bench?region=..&endpoint_url=..'

Every request of both sides asks for ``ReturnConsumedCapacity=TOTAL`` (injected through
botocore's event hooks, so the adapter's own calls are measured unchanged), and the table shows
capacity units per event. DynamoDB Local reports capacity with its own arithmetic; the AWS
prices for the same requests are in ``docs/backends/dynamodb.md``. Throughput on DynamoDB Local
(a Java process on SQLite, sharing this machine's cores) says little about AWS: read the ratios.

Scenarios (under a minute in all on 2 cores, after a warm-up of the engine):

* raw ``PutItem`` with ``attribute_not_exists`` (no ordering, no idempotency, no version
  check): the floor any event store on DynamoDB starts from;
* raw ``TransactWriteItems`` of the adapter's shape, hand-built (to separate the engine's cost
  from the adapter's);
* adapter ``append`` of 1 and of 10 events, from 1 and from 4 connections (4 connections race
  on the global counter, like 4 processes);
* ``read_all`` and ``read_stream`` against raw ``Query`` pages of the same items.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aioboto3
from eventstore_dynamodb._items import item_size

import eventstore_core as es
from eventstore_core.local.dynamodb import (
    dynamodb_url,
    endpoint_of,
    ensure_dummy_credentials,
    with_table,
)

PAYLOAD = {"order": 42, "sku": "ABC-123", "qty": 3, "note": "x" * 150}  # ~200 B of JSON


@dataclass
class Capacity:
    """Capacity units consumed, summed from ``ConsumedCapacity`` in every answer."""

    read: float = 0.0
    write: float = 0.0
    requests: int = 0
    aws_write: float = 0.0
    """Write units AWS would bill for the same requests (DynamoDB Local's own figure for a
    transaction is a flat 4, whatever it holds): 1 per KB per item, doubled in a transaction."""

    def add(self, consumed: Any) -> None:
        entries = consumed if isinstance(consumed, list) else [consumed]
        for entry in entries:
            # Answers give CapacityUnits, plus Read/Write units when both kinds were used.
            units = float(entry.get("CapacityUnits", 0.0))
            read = entry.get("ReadCapacityUnits")
            write = entry.get("WriteCapacityUnits")
            if read is None and write is None:
                if entry.get("_kind") == "read":
                    self.read += units
                else:
                    self.write += units
            else:
                self.read += float(read or 0.0)
                self.write += float(write or 0.0)


@dataclass
class Row:
    name: str
    events: int
    seconds: float
    capacity: Capacity = field(default_factory=Capacity)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


_READ_OPS = {"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"}


def instrument(client: Any, capacity: Callable[[], Capacity]) -> None:
    """Ask every call of ``client`` for its consumed capacity, and add it up."""

    def before(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        capacity().aws_write += aws_write_units(model.name, params)

    def after(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        if consumed is None:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        kind = "read" if model.name in _READ_OPS else "write"
        capacity().add([dict(entry, _kind=kind) for entry in entries])
        capacity().requests += 1

    client.meta.events.register("provide-client-params.dynamodb.*", before)
    client.meta.events.register("after-call.dynamodb.*", after)


def _kb(item: dict[str, Any]) -> int:
    return max(1, math.ceil(item_size(item) / 1024))


def aws_write_units(operation: str, params: dict[str, Any]) -> float:
    """The WCU AWS charges for a write request (the AWS pricing rules, applied to its items)."""
    if operation == "PutItem":
        return _kb(params["Item"])
    if operation == "UpdateItem":
        return 1.0  # the counter item: a few bytes
    if operation != "TransactWriteItems":
        return 0.0
    units = 0
    for action in params["TransactItems"]:
        if "Put" in action:
            units += 2 * _kb(action["Put"]["Item"])
        elif "Update" in action:
            # The updated items here (head, counter) are far below 1 KB.
            units += 2
        else:
            units += 2
    return units


class Meter:
    """The capacity sink the hooks write to; switched per scenario."""

    def __init__(self) -> None:
        self.current = Capacity()

    def __call__(self) -> Capacity:
        return self.current


async def timed(
    name: str,
    meter: Meter,
    events_per_call: int,
    calls: int,
    concurrency: int,
    call: Callable[[int, int], Awaitable[None]],
) -> Row:
    """Run ``calls`` calls of ``call(worker, i)`` spread over ``concurrency`` workers."""
    meter.current = Capacity()
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for i in range(w, calls, concurrency):
            started = time.perf_counter()
            await call(w, i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    seconds = time.perf_counter() - started
    return Row(name, calls * events_per_call, seconds, meter.current, latencies)


def _table_spec(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


async def run(url: str, scale: float) -> list[Row]:
    rows: list[Row] = []
    meter = Meter()
    run_id = uuid.uuid4().hex[:8]
    n_single = int(400 * scale)
    n_batch = int(60 * scale)

    # -- raw aioboto3 --------------------------------------------------------------------
    endpoint = endpoint_of(url)
    region = dict(
        part.split("=", 1) for part in url.split("?", 1)[1].split("&") if "=" in part
    ).get("region", "us-east-1")
    session = aioboto3.Session(region_name=region)
    raw_table = f"raw_{run_id}"
    async with session.client("dynamodb", endpoint_url=endpoint) as typed_client:
        # Requests are built as plain dicts, like the adapter's; the stubs want TypedDicts.
        client: Any = typed_client
        instrument(client, meter)
        await client.create_table(**_table_spec(raw_table))
        body: dict[str, Any] = {"type": {"S": "OrderPlaced"}, "data": {"B": es_json(PAYLOAD)}}

        async def raw_put(worker: int, i: int) -> None:
            await client.put_item(
                TableName=raw_table,
                Item={"pk": {"S": f"s#raw-{i % 50}"}, "sk": {"N": str(i + 1)}} | body,
                ConditionExpression="attribute_not_exists(pk)",
            )

        # Warm up (not measured): a fresh DynamoDB Local JVM runs its first thousand requests
        # several times slower, which would flatter whatever is measured later.
        warm_started = time.perf_counter()
        for i in range(int(600 * scale)):
            await raw_put(0, 50_000_000 + i)
        print(f"warm-up: {time.perf_counter() - warm_started:.1f} s", file=sys.stderr)

        def raw_put_at(offset: int) -> Callable[[int, int], Awaitable[None]]:
            return lambda w, i: raw_put(w, i + offset)

        for concurrency in (1, 4):
            rows.append(
                await timed(
                    f"raw PutItem, conditional, 1 event, {concurrency} conn",
                    meter,
                    1,
                    n_single,
                    concurrency,
                    raw_put_at(concurrency * 1_000_000),
                )
            )

        async def raw_transaction(worker: int, i: int) -> None:
            # The adapter's requests for one event, hand-built: reserve a position with ADD,
            # then one transaction (head update + stream, global and guard puts).
            answer = await client.update_item(
                TableName=raw_table,
                Key={"pk": {"S": "ctr"}, "sk": {"N": "0"}},
                UpdateExpression="ADD pos :n",
                ExpressionAttributeValues={":n": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
            position = answer["Attributes"]["pos"]["N"]
            await client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": raw_table,
                            "Key": {"pk": {"S": f"h#{i}"}, "sk": {"N": "0"}},
                            "UpdateExpression": "SET ver = :v, #l = :p",
                            "ConditionExpression": "attribute_not_exists(ver)",
                            "ExpressionAttributeNames": {"#l": "last"},
                            "ExpressionAttributeValues": {":v": {"N": "1"}, ":p": {"N": position}},
                        }
                    },
                ]
                + [
                    {
                        "Put": {
                            "TableName": raw_table,
                            "Item": {"pk": {"S": f"{prefix}#{i}"}, "sk": {"N": position}} | body,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                    for prefix in ("s", "a", "e")
                ]
            )

        rows.append(
            await timed(
                "raw ADD + TransactWriteItems (the adapter's requests), 1 conn",
                meter,
                1,
                n_single,
                1,
                raw_transaction,
            )
        )

        async def raw_query_all() -> int:
            count = 0
            start: Any = None
            for stream in range(50):
                while True:
                    kwargs: dict[str, Any] = {
                        "TableName": raw_table,
                        "KeyConditionExpression": "pk = :p",
                        "ExpressionAttributeValues": {":p": {"S": f"s#raw-{stream}"}},
                        "ConsistentRead": True,
                        "Limit": 500,
                    }
                    if start:
                        kwargs["ExclusiveStartKey"] = start
                    answer = await client.query(**kwargs)
                    count += len(answer["Items"])
                    start = answer.get("LastEvaluatedKey")
                    if not start:
                        break
            return count

        meter.current = Capacity()
        started = time.perf_counter()
        count = await raw_query_all()
        rows.append(
            Row("raw Query, pages of 500", count, time.perf_counter() - started, meter.current)
        )

    # -- the adapter -----------------------------------------------------------------------
    table_url = with_table(url, f"bench_{run_id}")
    stores = [es.connect(table_url, page_size=500) for _ in range(4)]
    for store in stores:
        await store.open()
        instrument(store._table.client, meter)  # type: ignore[attr-defined]
    try:
        meter.current = Capacity()  # keep setup and warm-up off the rows
        await stores[0].setup()
        for i in range(int(100 * scale)):  # warm up the adapter's paths too (not measured)
            await stores[0].append(f"Warm-{i % 10}", [es.NewEvent("Warm", PAYLOAD)])

        async def append_one(store: es.EventStore, stream: str) -> None:
            await store.append(stream, [es.NewEvent("OrderPlaced", PAYLOAD)])

        def append_to(concurrency: int) -> Callable[[int, int], Awaitable[None]]:
            # Distinct streams per connection: the race is on the global log only.
            return lambda w, i: append_one(stores[w], f"Order-{concurrency}-{w}-{i % 12}")

        for concurrency in (1, 4):
            rows.append(
                await timed(
                    f"adapter append, 1 event, {concurrency} conn",
                    meter,
                    1,
                    n_single,
                    concurrency,
                    append_to(concurrency),
                )
            )

        async def append_batch(store: es.EventStore, stream: str, expected: int) -> None:
            await store.append(
                stream, [es.NewEvent("OrderPlaced", PAYLOAD) for _ in range(10)], expected
            )

        rows.append(
            await timed(
                "adapter append, 10 events, 1 conn (exact expected_version)",
                meter,
                10,
                n_batch,
                1,
                lambda w, i: append_batch(stores[0], f"Batch-{i}", 0),
            )
        )

        meter.current = Capacity()
        started = time.perf_counter()
        count = 0
        async for _ in stores[0].read_all():
            count += 1
        rows.append(
            Row(
                "adapter read_all, pages of 500",
                count,
                time.perf_counter() - started,
                meter.current,
            )
        )

        meter.current = Capacity()
        started = time.perf_counter()
        count = 0
        for stream in range(12):
            async for _ in stores[0].read_stream(f"Order-1-0-{stream}"):
                count += 1
        for stream in range(n_batch):
            async for _ in stores[0].read_stream(f"Batch-{stream}"):
                count += 1
        rows.append(
            Row(
                "adapter read_stream, all streams",
                count,
                time.perf_counter() - started,
                meter.current,
            )
        )
    finally:
        for store in stores:
            await store.close()
    return rows


def es_json(value: dict[str, Any]) -> bytes:
    from eventstore_core import serialization

    return serialization.dumps(value)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(rows: list[Row]) -> str:
    raw_put = next(
        row for row in rows if row.name.startswith("raw PutItem") and "1 conn" in row.name
    )
    raw_query = next(row for row in rows if row.name.startswith("raw Query"))
    lines = [
        "| scenario | events | events/s | vs raw | p50 ms | p99 ms | WCU/event (Local) "
        "| WCU/event (AWS rules) | RCU/event (Local) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        base = raw_query if "read" in row.name or "Query" in row.name else raw_put
        ratio = row.rate / base.rate if base.rate else 0.0
        lines.append(
            f"| {row.name} | {row.events} | {row.rate:,.0f} | {ratio:.2f}x | "
            f"{_percentile(row.latencies, 0.5) * 1000:.1f} | "
            f"{_percentile(row.latencies, 0.99) * 1000:.1f} | "
            f"{row.capacity.write / max(row.events, 1):.2f} | "
            f"{row.capacity.aws_write / max(row.events, 1):.2f} | "
            f"{row.capacity.read / max(row.events, 1):.2f} |"
        )
    return "\n".join(lines)


@contextmanager
def _engine(url: str | None) -> Iterator[str]:
    if url:
        if endpoint_of(url):  # a local engine: any credentials do
            ensure_dummy_credentials()
        yield url
        return
    with ExitStack() as stack:
        yield stack.enter_context(dynamodb_url("bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=os.environ.get("EVENTSTORE_TEST_DYNAMODB_URL"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the event counts")
    args = parser.parse_args()
    started = time.perf_counter()
    with _engine(args.url) as url:
        rows = asyncio.run(run(url, args.scale))
    print(report(rows))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
