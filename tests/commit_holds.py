"""The hold-commit hooks of the built-in backends, for the suite's out-of-order-commit test.

See :mod:`eventstore_conformance.faults`. Each hook holds one append open after its positions
are assigned and before it commits, through the backend's own write path:

- PostgreSQL: the adapter's test seam (``_hold_commit``) runs the held append in an explicit
  transaction and waits after the INSERT (``tx_id`` and ``seq`` drawn) and before COMMIT; later
  appends, in their own transactions, commit meanwhile.
- DynamoDB: the held append reserves its positions on the counter, then waits before its
  ``TransactWriteItems`` (the client is proxied for that one call): later appends reserve
  greater positions and commit first, so readers meet reserved positions filled late.
- SQLite: commits cannot be out of order there: every append draws its position while
  holding the file's write lock (``BEGIN IMMEDIATE``) and commits before releasing it. The
  hook holds that lock from a second connection, so the held append and every later one
  queue behind it and commit in lock order: the test is satisfied trivially, and says so.
- memory: not applicable; an append runs without an ``await`` between drawing its position
  and making it visible.
- KurrentDB: not applicable; the server's writer assigns log positions as it commits.
- Kafka: not applicable; the broker assigns offsets as it appends (no transactions are used).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

from eventstore_conformance import (
    CommitGate,
    HeldAppend,
    HoldCommit,
    NotApplicable,
    hold_append,
    not_applicable,
)

import eventstore_core as es

__all__ = ["HOLDS", "hold_at_seam", "hold_dynamodb", "hold_sqlite"]


@contextlib.asynccontextmanager
async def hold_at_seam(
    store: es.EventStore, stream_id: str, events: Sequence[es.NewEvent]
) -> AsyncIterator[HeldAppend]:
    """Hold the append at the adapter's ``_hold_commit`` seam (PostgreSQL: between its INSERT
    and its COMMIT)."""
    gate = CommitGate()

    def seam(stream: str) -> Awaitable[None] | None:
        return gate.wait() if stream == stream_id and gate.is_held() else None

    store._hold_commit = seam  # type: ignore[attr-defined]
    try:
        async with hold_append(store, stream_id, events, gate) as held:
            yield held
    finally:
        del store._hold_commit  # type: ignore[attr-defined]  # back to the class's None


class _HeldClient:
    """A DynamoDB client whose ``transact_write_items`` waits at the gate for the held append."""

    def __init__(self, client: Any, gate: CommitGate) -> None:
        self._client = client
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def transact_write_items(self, **request: Any) -> Any:
        if self._gate.is_held():
            await self._gate.wait()  # positions reserved, transaction not sent
        return await self._client.transact_write_items(**request)


@contextlib.asynccontextmanager
async def hold_dynamodb(
    store: es.EventStore, stream_id: str, events: Sequence[es.NewEvent]
) -> AsyncIterator[HeldAppend]:
    """Hold the append after it reserved its positions, before its transaction."""
    gate = CommitGate()
    client = store._client  # type: ignore[attr-defined]
    store._client = _HeldClient(client, gate)  # type: ignore[attr-defined]
    try:
        async with hold_append(store, stream_id, events, gate) as held:
            yield held
    finally:
        store._client = client  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def hold_sqlite(
    store: es.EventStore, stream_id: str, events: Sequence[es.NewEvent]
) -> AsyncIterator[HeldAppend]:
    """Hold the file's write lock from a second connection while the append waits for it."""
    holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)  # type: ignore[attr-defined]

    async def lock() -> None:
        await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")

    async def queued() -> None:
        await asyncio.sleep(0.05)  # the append is now waiting for the lock (busy_timeout)

    async def unlock() -> None:
        await asyncio.to_thread(holder.execute, "ROLLBACK")

    try:
        async with hold_append(
            store,
            stream_id,
            events,
            CommitGate(),
            before=lock,
            reached=queued,
            release=unlock,
            serialised=True,
        ) as held:
            yield held
    finally:
        holder.close()


_MEMORY = not_applicable(
    "an in-memory append draws its position and makes it visible with no await in between"
)
_KURRENTDB = not_applicable(
    "the server assigns a commit position as its single writer appends to the log: a position "
    "exists only once it is committed"
)
_KAFKA = not_applicable(
    "the broker assigns an offset as it appends to a partition's log (the adapter writes no "
    "transactions), and readers see each partition in offset order up to its high watermark"
)

#: Backend name (as in conftest.BACKENDS) -> its hook.
HOLDS: dict[str, HoldCommit | NotApplicable] = {
    "memory": _MEMORY,
    "memory3": _MEMORY,
    "sqlite": hold_sqlite,
    "postgres": hold_at_seam,
    "dynamodb": hold_dynamodb,
    "kurrentdb": _KURRENTDB,
    "kurrentdb-strict": _KURRENTDB,
    "kafka": _KAFKA,
    "kafka3": _KAFKA,
}
