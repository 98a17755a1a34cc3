"""eventstore-core in one page: appends, a read, a conflict, a retry and a live subscription.

    uv run python examples/quickstart.py              # EVENTSTORE_URL, else ./eventstore.db
    uv run python examples/quickstart.py memory://    # any store URL

Each run writes to a new stream (``Order-<random>``), so the example can be run again and again
against the same store. It uses only the public API (``import eventstore_core as es``).
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from rich.console import Console
from rich.table import Table

import eventstore_core as es

# soft_wrap: one line per message, however narrow the terminal (and the tests read lines).
console = Console(highlight=False, soft_wrap=True)


async def main(url: str | None) -> None:
    """Run the tour against the store at ``url`` (``None``: the configured default)."""
    async with es.connect(url) as store:
        await store.setup()  # idempotent: creates the tables on first use
        console.rule(f"eventstore-core quick start: {store.url}")
        order = f"Order-{uuid.uuid4().hex[:8]}"

        # 1. Appends. NO_STREAM: this must be the stream's first event. A batch is atomic.
        placed = await store.append(
            order,
            [es.NewEvent("OrderPlaced", {"customer": "ada"}, metadata={"user": "ada"})],
            expected_version=es.NO_STREAM,
        )
        console.print(f"1. appended OrderPlaced to {order}: version {placed.version}")
        items = await store.append(
            order,
            [
                es.NewEvent("ItemAdded", {"sku": "tea", "price": 4}),
                es.NewEvent("ItemAdded", {"sku": "cake", "price": 6}),
            ],
            expected_version=placed.version,
        )
        console.print(f"   appended 2 ItemAdded in one atomic batch: version {items.version}")

        # 2. Reads: a stream, oldest first, versions counted from 1.
        table = Table(title=f"2. read_stream({order!r})", title_justify="left")
        for column in ("version", "position", "type", "data"):
            table.add_column(column)
        async for event in store.read_stream(order):
            table.add_row(str(event.version), str(event.position), event.type, str(event.data))
        console.print(table)

        # 3. A conflict: a writer that still believes the stream is at version 1 is refused,
        #    and nothing of its batch is written.
        try:
            await store.append(order, [es.NewEvent("OrderCancelled", {})], expected_version=1)
        except es.ConcurrencyError as error:
            console.print(f"3. conflict, as expected: {error}")
        console.print(f"   the stream is still at version {await store.stream_version(order)}")

        # 4. An idempotent retry: the same batch (same event ids) again writes nothing and
        #    returns the original result, which makes retrying after a timeout safe.
        paid = [es.NewEvent("OrderPaid", {"amount": 10})]
        first = await store.append(order, paid, expected_version=3)
        retry = await store.append(order, paid, expected_version=3)
        console.print(
            f"4. appended OrderPaid: version {first.version}; the retry returned "
            f"version {retry.version} again and wrote nothing"
        )

        # 5. A subscription: catch up on what follows OrderPlaced, then receive new events live.
        #    Once it is live, another task ships the order; the subscription sees it at once.
        console.print("5. subscription to category 'Order', after OrderPlaced:")
        caught_up = asyncio.Event()
        shipper = asyncio.create_task(_ship_when(caught_up, store, order))
        subscription = store.subscribe(
            after=placed.position, filter=es.EventFilter(categories=["Order"])
        )
        async with subscription, asyncio.timeout(30):
            async for event in subscription:
                stage = "live    " if caught_up.is_set() else "catch-up"
                console.print(
                    f"   {stage}  {event.stream_id}@{event.version}  {event.type}  {event.data}"
                )
                if event.type == "OrderShipped":
                    break
                if subscription.is_live and not caught_up.is_set():
                    console.print("   (caught up: now waiting for new events)")
                    caught_up.set()
        await shipper
        console.rule("done")


async def _ship_when(ready: asyncio.Event, store: es.EventStore, order: str) -> None:
    await ready.wait()
    await store.append(order, [es.NewEvent("OrderShipped", {"carrier": "post"})])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
