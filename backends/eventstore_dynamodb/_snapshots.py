"""Snapshots: one header item per stream, and chunks when the JSON outgrows one item.

A snapshot of up to one chunk lives in its header (``n#<stream id>``, sk 0). A larger one is
cut into chunks (sk 1..k) written with the header in one transaction, so a reader sees the old
snapshot or the new one, never a mix: the chunks carry the header's generation, and chunks of
another generation (an older, longer snapshot) are ignored. The header's condition keeps the
snapshot of the highest version: an older one saved late loses.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

from botocore.exceptions import ClientError

from eventstore_core.adapter import Backoff, EventStoreError, Snapshot, serialization
from eventstore_dynamodb import _items as keys
from eventstore_dynamodb._errors import (
    CAUGHT,
    error_code,
    is_retryable,
    may_have_applied,
    translate,
)
from eventstore_dynamodb._table import HOLE_WAIT, Table

__all__ = ["MAX_SNAPSHOT_BYTES", "SNAPSHOT_CHUNK_BYTES", "load_snapshot", "save_snapshot"]

#: A snapshot is cut into chunks of this size, written in one transaction.
SNAPSHOT_CHUNK_BYTES = 350_000
MAX_SNAPSHOT_BYTES = 10 * SNAPSHOT_CHUNK_BYTES


async def save_snapshot(table: Table, snapshot: Snapshot, data: bytes) -> None:
    """Store ``data`` (the snapshot's JSON) unless a snapshot of a higher version is stored."""
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
    condition = {
        "ConditionExpression": "attribute_not_exists(ver) OR ver <= :v",
        "ExpressionAttributeValues": {":v": {"N": str(snapshot.version)}},
    }
    if len(chunks) == 1:
        header["d"] = {"B": chunks[0]}
        await table.call(
            "put_item",
            write=True,
            # Refused: a snapshot of a higher version is stored, and stays.
            ok_codes=frozenset({"ConditionalCheckFailedException"}),
            TableName=table.name,
            Item=header,
            **condition,
        )
        return
    actions: list[dict[str, Any]] = [
        {"Put": {"TableName": table.name, "Item": header, **condition}}
    ] + [
        {
            "Put": {
                "TableName": table.name,
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
    await _transact(table, actions, generation[:36])


async def _transact(table: Table, actions: list[dict[str, Any]], token: str) -> None:
    """Commit the header and chunks; a refused header (a newer snapshot is stored) is success."""
    backoff = Backoff(table.retry_timeout)
    maybe_applied = False
    while True:
        try:
            await table.client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
            return
        except CAUGHT as error:
            if (
                isinstance(error, ClientError)
                and error_code(error) == "TransactionCanceledException"
            ):
                reasons = error.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return  # a newer snapshot is stored
                if await backoff.wait():
                    continue
            else:
                maybe_applied = maybe_applied or may_have_applied(error)
                if is_retryable(error) and await backoff.wait():
                    continue
            raise translate(error, "TransactWriteItems", maybe_applied=maybe_applied) from error


async def load_snapshot(table: Table, stream_id: str) -> Snapshot | None:
    """The stored snapshot of ``stream_id``, waiting briefly for a save that is committing."""
    deadline = time.monotonic() + HOLE_WAIT
    query = {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": keys.snapshot_pk(stream_id)}},
    }
    while True:
        answer = await table.query(**query)
        items: list[keys.Item] = answer.get("Items", [])
        while answer.get("LastEvaluatedKey"):
            answer = await table.query(**query, ExclusiveStartKey=answer["LastEvaluatedKey"])
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
