"""The KurrentDB adapter beside raw kurrentdbclient, doing the same work on the same server.

    uv run python benchmarks/kurrentdb_bench.py                 # starts the protocol double
    uv run python benchmarks/kurrentdb_bench.py --url 'kurrentdb://127.0.0.1:2113?tls=false'

Without ``--url`` the server is the protocol double (``eventstore_kurrentdb.double``), a
Python process on the same cores: its figures measure **the library's overhead only**, never
KurrentDB's speed. Read the ratio column.

Scenarios (each side gets the same number of operations, after a warm-up; both sides encode
each event's JSON payload, as any user of the raw client must):

* 16 concurrent single-event appends, new streams (``NO_STREAM``; the raw client's
  ``append_to_stream`` with ``StreamState.NO_STREAM``) and to existing streams with ANY (the
  adapter keeps the new revision the BatchAppend answer carries; the raw client's
  ``append_to_stream`` drops it);
* appends of 100-event batches, ``NO_STREAM`` and ANY (the same BatchAppend on both sides);
* ``read_all`` of the whole log in pages (the adapter's ``page_size`` = the raw ``limit``);
* subscription latency: append, then wait for the event on a live catch-up subscription;
* the adapter's strict mode (marker streams in a multi-stream append) for the cost of
  permanent, store-wide idempotency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial

from kurrentdbclient import AsyncKurrentDBClient, NewEvent, StreamState

import eventstore_core as es
from eventstore_core.local.kurrentdb import kurrentdb_double
from eventstore_core.serialization import dumps

PAYLOAD = {"order": 42, "sku": "ABC-123", "qty": 3, "note": "x" * 150}  # ~200 B of JSON


def _with(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


async def _timed(total: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second of ``op(i)`` for ``i < total``, ``concurrency`` at a time."""
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


async def bench(
    url: str, appends: int, batches: int, latency_samples: int, rounds: int = 3
) -> list[tuple[str, float, float, str]]:
    """``(scenario, adapter, raw, unit)`` rows."""
    rows: list[tuple[str, float, float, str]] = []
    raw = AsyncKurrentDBClient(url)
    await raw.connect()
    tag = uuid.uuid4().hex[:8]
    async with es.connect(url) as store, es.connect(_with(url, "idempotency=strict")) as strict:
        # Warm-up: connections, code paths.
        await _timed(50, 4, lambda i: store.append(f"W{tag}-{i}", [es.NewEvent("E", PAYLOAD)]))
        await _timed(
            50,
            4,
            lambda i: raw.append_to_stream(
                f"w{tag}-{i}",
                events=[NewEvent(type="E", data=dumps(PAYLOAD))],
                current_version=StreamState.ANY,
            ),
        )

        # Each pair runs `rounds` times, alternating adapter and raw, and reports the medians:
        # the machine is shared, and a single run says more about the neighbours than the code.
        async def pair(
            name: str,
            adapter_op: Callable[[int, int], Awaitable[object]],
            raw_op: Callable[[int, int], Awaitable[object]],
            total: int,
            concurrency: int,
            per_op: int = 1,
        ) -> None:
            mine: list[float] = []
            base: list[float] = []
            for r in range(rounds):
                mine.append(per_op * await _timed(total, concurrency, partial(adapter_op, r)))
                base.append(per_op * await _timed(total, concurrency, partial(raw_op, r)))
            rows.append((name, statistics.median(mine), statistics.median(base), "events/s"))

        def raw_append(stream: str, count: int, state: int | StreamState) -> Awaitable[int]:
            return raw.append_to_stream(
                stream,
                events=[NewEvent(type="E", data=dumps(PAYLOAD)) for _ in range(count)],
                current_version=state,
            )

        def ours(count: int) -> list[es.NewEvent]:
            return [es.NewEvent("E", PAYLOAD) for _ in range(count)]

        await pair(
            "16 concurrent 1-event appends, NO_STREAM",
            lambda r, i: store.append(f"A{tag}-{r}-{i}", ours(1), expected_version=es.NO_STREAM),
            lambda r, i: raw_append(f"a{tag}-{r}-{i}", 1, StreamState.NO_STREAM),
            appends,
            16,
        )
        await pair(
            "16 concurrent 1-event appends, ANY",
            lambda r, i: store.append(f"A{tag}-{r}-{i % 16}", ours(1)),
            lambda r, i: raw_append(f"a{tag}-{r}-{i % 16}", 1, StreamState.ANY),
            appends,
            16,
        )
        await pair(
            "100-event batches, NO_STREAM",
            lambda r, i: store.append(f"B{tag}-{r}-{i}", ours(100), expected_version=es.NO_STREAM),
            lambda r, i: raw_append(f"b{tag}-{r}-{i}", 100, StreamState.NO_STREAM),
            batches,
            1,
            per_op=100,
        )
        await pair(
            "100-event batches, ANY",
            lambda r, i: store.append(f"C{tag}-{r}", ours(100)),
            lambda r, i: raw_append(f"c{tag}-{r}", 100, StreamState.ANY),
            batches,
            1,
            per_op=100,
        )
        await pair(
            "strict mode, 16 concurrent 1-event appends, NO_STREAM",
            lambda r, i: strict.append(f"S{tag}-{r}-{i}", ours(1), expected_version=es.NO_STREAM),
            lambda r, i: raw_append(f"s{tag}-{r}-{i}", 1, StreamState.NO_STREAM),
            appends,
            16,
        )
        await pair(
            "strict mode, 100-event batches, NO_STREAM",
            lambda r, i: strict.append(
                f"SB{tag}-{r}-{i}", ours(100), expected_version=es.NO_STREAM
            ),
            lambda r, i: raw_append(f"sb{tag}-{r}-{i}", 100, StreamState.NO_STREAM),
            batches,
            1,
            per_op=100,
        )

        # read_all: the whole log, same page size on both sides.
        start = time.perf_counter()
        count = 0
        async for _ in store.read_all():
            count += 1
        adapter = count / (time.perf_counter() - start)
        start = time.perf_counter()
        raw_count = 0
        position: int | None = None
        page = store.options.page_size
        while True:
            got = 0
            response = await raw.read_all(
                commit_position=position, limit=page + (position is not None)
            )
            async for event in response:
                if position is not None and event.commit_position == position:
                    continue
                got += 1
                raw_count += 1
                position = event.commit_position
            if got < page:
                break
        client = raw_count / (time.perf_counter() - start)
        rows.append((f"read_all ({count} events, pages of {page})", adapter, client, "events/s"))

        adapter_latency = await _latency_adapter(store, raw, tag, latency_samples)
        raw_latency = await _latency_raw(raw, tag, latency_samples)
        rows.append(("subscription latency, median", adapter_latency, raw_latency, "ms"))
    await raw.close()
    return rows


async def _latency_adapter(
    store: es.EventStore, raw: AsyncKurrentDBClient, tag: str, samples: int
) -> float:
    times: list[float] = []
    seen = asyncio.Queue[float]()
    # Both sides start live, at the end of the log (the raw side from the same position).
    now = await raw.get_commit_position(filter_exclude=())
    after = f"{now}:{now}" if now else None
    async with store.subscribe(
        after=after, filter=es.EventFilter(categories=[f"L{tag}"])
    ) as subscription:

        async def consume() -> None:
            async for _event in subscription:
                seen.put_nowait(time.perf_counter())

        task = asyncio.create_task(consume())
        for i in range(samples):
            sent = time.perf_counter()
            await store.append(
                f"L{tag}-{i}", [es.NewEvent("E", PAYLOAD)], expected_version=es.NO_STREAM
            )
            times.append((await asyncio.wait_for(seen.get(), 10)) - sent)
        task.cancel()
    return statistics.median(times) * 1000


async def _latency_raw(raw: AsyncKurrentDBClient, tag: str, samples: int) -> float:
    times: list[float] = []
    seen = asyncio.Queue[float]()
    position = await raw.get_commit_position()
    subscription = await raw.subscribe_to_all(
        commit_position=position, filter_include=[f"l{tag}-.*"], filter_by_stream_name=True
    )

    async def consume() -> None:
        async for _event in subscription:
            seen.put_nowait(time.perf_counter())

    task = asyncio.create_task(consume())
    for i in range(samples):
        sent = time.perf_counter()
        await raw.append_to_stream(
            f"l{tag}-{i}",
            events=[NewEvent(type="E", data=dumps(PAYLOAD))],
            current_version=StreamState.NO_STREAM,
        )
        times.append((await asyncio.wait_for(seen.get(), 10)) - sent)
    task.cancel()
    await subscription.stop()
    return statistics.median(times) * 1000


@contextmanager
def _server(url: str | None) -> Iterator[str]:
    with ExitStack() as stack:
        yield url if url is not None else stack.enter_context(kurrentdb_double())


def main() -> None:
    """Run the scenarios and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a KurrentDB URL (default: start the double)")
    parser.add_argument("--appends", type=int, default=1600)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per scenario")
    args = parser.parse_args()
    with _server(args.url) as url:
        rows = asyncio.run(
            bench(url, args.appends, args.batches, args.latency_samples, args.rounds)
        )
    server = (
        "the protocol double (library overhead only)" if args.url is None else "the given server"
    )
    print(f"\nOn {server}:\n")
    print("| scenario | adapter | raw kurrentdbclient | adapter / raw |")
    print("|---|---:|---:|---:|")
    for name, adapter, client, unit in rows:
        ratio = client / adapter if unit == "ms" else adapter / client
        print(f"| {name} | {adapter:,.1f} {unit} | {client:,.1f} {unit} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
