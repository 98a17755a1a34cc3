"""SQLite benchmarks: the eventstore-core adapter, ``eventsourcing``'s recorder, raw ``sqlite3``.

All three run side by side, in one run, on one disk, with the same 220-byte payload, each at
the same ``synchronous`` setting (WAL mode for all):

* ``eventstore`` - ``es.connect("sqlite:///...")``: validation, the expected-version check,
  permanent idempotency, commit-ordered positions, the wake-up; everything a user gets.
* ``eventsourcing`` - ``eventsourcing.sqlite.SQLiteApplicationRecorder`` (threads, its own
  connection pool), whose only check is the ``(originator_id, version)`` primary key.
* ``raw sqlite3`` - one connection per thread doing the same skip-free insert into the
  adapter's own table under ``BEGIN IMMEDIATE`` with versions it already knows, and nothing
  else. The ceiling for this design on this machine.

Scenarios: single-event appends to new streams by 1 and 4 writers (tasks for the adapter,
threads for the others); 100-event batches by 1 and 4 writers; ``read_stream`` and
``read_all`` of the same 50,000 events (one stream, written in 100-event batches);
single-event appends by 3 writer processes on one file; group-commit latency (the adapter
alone). ``--scenarios profile`` measures where an append's time goes: raw ``sqlite3`` into
variants of the adapter's table (without an index, with time-ordered ids) and into
eventsourcing's, side by side, CPU and WAL frames per commit, and the adapter's Python work
per event. ``--scenarios handoff`` measures a round trip from the event loop to a thread and
back, and every contender's lone single appends, as scheduled and with the process on one
CPU: what the writer thread costs a lone writer on this machine. ``--million`` adds a
``read_all`` over 1M events, reporting resident memory growth.

Usage:

    uv run python benchmarks/sqlite_bench.py [--seconds 2] [--rounds 2] [--synchronous FULL,NORMAL]
                                             [--scenarios single,batch,...] [--ids uuid7]
                                             [--dir /tmp/x] [--million]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psutil  # type: ignore[import-untyped]

import eventstore_core as es

PAYLOAD = {
    "order_id": "0b0f3a4c-9a41-4d5e-8a8e-1f1f2b7d3c11",
    "customer": "c-1234567890",
    "total": 1234,
    "currency": "EUR",
    "items": [{"sku": "SKU-0001", "qty": 2}, {"sku": "SKU-0002", "qty": 1}],
    "note": "x" * 48,
}
DATA = orjson.dumps(PAYLOAD)
assert 200 <= len(DATA) <= 240, len(DATA)
BATCH = 100
READ_PAGE = 500  # the adapter's default page_size, for everyone


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48 bits of milliseconds, then random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10)) & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 4122 variant
    return uuid.UUID(int=value)


#: How event ids are made: the library's default (random UUIDv4), or time-ordered (--ids uuid7).
new_id: Callable[[], uuid.UUID] = uuid.uuid4


# --------------------------------------------------------------------------------------------
# eventstore-core
# --------------------------------------------------------------------------------------------


def es_url(path: Path, synchronous: str) -> str:
    return f"sqlite:///{path}?synchronous={synchronous}"


async def es_appends(url: str, seconds: float, writers: int, batch: int) -> float:
    """Events/s appended through the adapter by ``writers`` tasks, ``batch`` events per call."""
    async with es.connect(url) as store:
        await store.setup()
        stop = time.perf_counter() + seconds
        counts = [0] * writers
        prefix = uuid.uuid4().hex[:8]

        async def writer(w: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                events = [es.NewEvent("OrderPlaced", PAYLOAD, id=new_id()) for _ in range(batch)]
                await store.append(f"Order-{prefix}{w}x{n}", events, es.NO_STREAM)
                n += 1
            counts[w] = n * batch

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return sum(counts) / (time.perf_counter() - start)


async def es_latency(url: str, seconds: float, writers: int) -> tuple[float, float, float, float]:
    """Single-event appends by ``writers`` tasks: rate, p50 and p99 latency (ms), group size."""
    async with es.connect(url) as store:
        await store.setup()
        writer = store._writer  # type: ignore[attr-defined]
        commits = writer.commits
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        prefix = uuid.uuid4().hex[:8]

        async def one(w: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                start = time.perf_counter()
                event = es.NewEvent("OrderPlaced", PAYLOAD, id=new_id())
                await store.append(f"Order-{prefix}{w}x{n}", [event], es.NO_STREAM)
                latencies.append(time.perf_counter() - start)
                n += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(w) for w in range(writers)))
        elapsed = time.perf_counter() - start
        latencies.sort()
        group = len(latencies) / max(1, writer.commits - commits)
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        return len(latencies) / elapsed, p50, p99, group


def latency(directory: Path, seconds: float, settings: list[str]) -> None:
    """Group commit's cost and gain: per-append latency as concurrent writers grow."""
    print("\n| synchronous | writers | appends/s | p50 ms | p99 ms | appends per commit |")
    print("|---|---:|---:|---:|---:|---:|")
    for sync in settings:
        for writers in (1, 4, 16, 64):
            url = es_url(directory / f"latency-{sync}.db", sync)
            rate, p50, p99, group = asyncio.run(es_latency(url, seconds, writers))
            print(
                f"| {sync} | {writers} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {group:.1f} |",
                flush=True,
            )


STREAM_EVENTS = 50_000
STREAM_ID = "Ledger-1"


async def es_write_stream(url: str) -> None:
    async with es.connect(url) as store:
        await store.setup()
        for _ in range(STREAM_EVENTS // BATCH):
            await store.append(STREAM_ID, [es.NewEvent("Posted", PAYLOAD) for _ in range(BATCH)])


async def es_read_stream(url: str) -> tuple[int, float]:
    async with es.connect(url) as store:
        start = time.perf_counter()
        n = 0
        async for _event in store.read_stream(STREAM_ID):
            n += 1
        return n, time.perf_counter() - start


async def es_read_all(url: str) -> tuple[int, float]:
    async with es.connect(url) as store:
        start = time.perf_counter()
        n = 0
        async for _event in store.read_all():
            n += 1
        return n, time.perf_counter() - start


# --------------------------------------------------------------------------------------------
# eventsourcing
# --------------------------------------------------------------------------------------------


def eventsourcing_recorder(path: Path, synchronous: str) -> Any:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(path), pool_size=8, lock_timeout=30)
    create = datastore.pool._create_connection

    def create_at_setting() -> Any:
        # eventsourcing has no synchronous option; set it on each new pooled connection.
        connection = create()
        connection._sqlite_conn.execute(f"PRAGMA synchronous = {synchronous}")
        return connection

    datastore.pool._create_connection = create_at_setting  # type: ignore[method-assign]
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def eventsourcing_appends(
    path: Path, synchronous: str, seconds: float, writers: int, batch: int
) -> float:
    from eventsourcing.persistence import StoredEvent

    recorder = eventsourcing_recorder(path, synchronous)
    counts = [0] * writers
    stop = time.perf_counter() + seconds

    def writer(w: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            originator = uuid.uuid4()
            recorder.insert_events(
                [StoredEvent(originator, v, "bench:OrderPlaced", DATA) for v in range(1, batch + 1)]
            )
            n += 1
        counts[w] = n * batch

    start = time.perf_counter()
    _run_threads(writer, writers)
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return sum(counts) / elapsed


_LEDGER = uuid.UUID("6c1d3f0e-8a57-4bd6-9a51-3cb1f0e7a001")


def eventsourcing_write_stream(path: Path, synchronous: str) -> None:
    from eventsourcing.persistence import StoredEvent

    recorder = eventsourcing_recorder(path, synchronous)
    for b in range(STREAM_EVENTS // BATCH):
        first = b * BATCH + 1
        recorder.insert_events(
            [StoredEvent(_LEDGER, v, "bench:Posted", DATA) for v in range(first, first + BATCH)]
        )
    recorder.datastore.close()


def eventsourcing_read_stream(path: Path, synchronous: str) -> tuple[int, float]:
    recorder = eventsourcing_recorder(path, synchronous)
    start = time.perf_counter()
    n = len(recorder.select_events(_LEDGER))
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return n, elapsed


def eventsourcing_read_all(path: Path, synchronous: str) -> tuple[int, float]:
    recorder = eventsourcing_recorder(path, synchronous)
    start = time.perf_counter()
    n, last = 0, 0
    while True:
        page = recorder.select_notifications(last + 1, READ_PAGE)
        n += len(page)
        if len(page) < READ_PAGE:
            break
        last = page[-1].id
    elapsed = time.perf_counter() - start
    recorder.datastore.close()
    return n, elapsed


# --------------------------------------------------------------------------------------------
# raw sqlite3
# --------------------------------------------------------------------------------------------

_RAW_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, category, data, metadata, "
    "correlation_id, causation_id, recorded_at, batch_first, batch_last) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 1, ?)"
)


def _raw_connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def raw_appends(path: Path, synchronous: str, seconds: float, writers: int, batch: int) -> float:
    """The adapter's table, written with nothing but BEGIN IMMEDIATE / INSERT / COMMIT."""
    counts = [0] * writers
    stop = time.perf_counter() + seconds
    prefix = uuid.uuid4().hex[:8]

    def writer(w: int) -> None:
        conn = _raw_connect(path, synchronous)
        n = 0
        while time.perf_counter() < stop:
            stream = f"Order-{prefix}{w}x{n}"
            now = time.time_ns() // 1000
            rows = [
                (stream, v, new_id().bytes, "OrderPlaced", "Order", DATA, b"{}", now, batch)
                for v in range(1, batch + 1)
            ]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_RAW_INSERT, rows)
            conn.execute("COMMIT")
            n += 1
        conn.close()
        counts[w] = n * batch

    start = time.perf_counter()
    _run_threads(writer, writers)
    return sum(counts) / (time.perf_counter() - start)


def raw_write_stream(path: Path, synchronous: str) -> None:
    conn = _raw_connect(path, synchronous)
    for b in range(STREAM_EVENTS // BATCH):
        rows = [
            (STREAM_ID, v, new_id().bytes, "Posted", "Ledger", DATA, b"{}", 0, v)
            for v in range(b * BATCH + 1, (b + 1) * BATCH + 1)
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_RAW_INSERT, rows)
        conn.execute("COMMIT")
    conn.close()


def raw_read_stream(path: Path, synchronous: str) -> tuple[int, float]:
    conn = _raw_connect(path, synchronous)
    start = time.perf_counter()
    n, version = 0, 1
    while True:
        rows = conn.execute(
            "SELECT stream_id, version, position, event_id, type, data, metadata, "
            "correlation_id, causation_id, recorded_at FROM events "
            "WHERE stream_id = ? AND version >= ? ORDER BY version LIMIT ?",
            (STREAM_ID, version, READ_PAGE),
        ).fetchall()
        n += len(rows)
        if len(rows) < READ_PAGE:
            break
        version = rows[-1][1] + 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n, elapsed


def raw_read_all(path: Path, synchronous: str) -> tuple[int, float]:
    conn = _raw_connect(path, synchronous)
    start = time.perf_counter()
    n, last = 0, 0
    while True:
        rows = conn.execute(
            "SELECT stream_id, version, position, event_id, type, data, metadata, "
            "correlation_id, causation_id, recorded_at FROM events WHERE position > ? "
            "ORDER BY position LIMIT ?",
            (last, READ_PAGE),
        ).fetchall()
        n += len(rows)
        if len(rows) < READ_PAGE:
            break
        last = rows[-1][2]
    elapsed = time.perf_counter() - start
    conn.close()
    return n, elapsed


def _run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(w,)) for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --------------------------------------------------------------------------------------------
# several processes on one file
# --------------------------------------------------------------------------------------------


def _process_writer(
    contender: str, path: str, synchronous: str, seconds: float, ids: str, out: Any
) -> None:
    global new_id
    new_id = uuid7 if ids == "uuid7" else uuid.uuid4
    file = Path(path)
    if contender == "eventstore":
        rate = asyncio.run(es_appends(es_url(file, synchronous), seconds, 1, 1))
    elif contender == "eventsourcing":
        rate = eventsourcing_appends(file, synchronous, seconds, 1, 1)
    else:
        rate = raw_appends(file, synchronous, seconds, 1, 1)
    out.put(rate)


def processes_appends(
    contender: str, path: Path, synchronous: str, seconds: float, count: int
) -> float:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [
        context.Process(
            target=_process_writer,
            args=(contender, str(path), synchronous, seconds, new_id.__name__, out),
        )
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    rates: list[float] = [out.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    return sum(rates)


# --------------------------------------------------------------------------------------------
# profile: where an append's time goes
# --------------------------------------------------------------------------------------------

PROFILE_PREFILL = 50_000
_PEER_INSERT = "INSERT INTO stored_events VALUES (?,?,?,?)"


def _schema_variants() -> dict[str, tuple[str | None, Callable[[], uuid.UUID]]]:
    """The tables raw sqlite3 writes in the profile: the adapter's, the same minus an index
    (or with time-ordered ids), and eventsourcing's (None: its recorder creates it)."""
    from eventstore_sqlite._schema import SCHEMA

    no_id_index = SCHEMA.replace("event_id       BLOB    NOT NULL UNIQUE", "event_id BLOB NOT NULL")
    no_tc = "\n".join(line for line in SCHEMA.splitlines() if not line.startswith("CREATE INDEX"))
    assert no_id_index != SCHEMA, "the adapter's schema changed"
    assert no_tc != SCHEMA, "the adapter's schema changed"
    return {
        "eventsourcing's table": (None, uuid.uuid4),
        "eventstore table": (SCHEMA, uuid.uuid4),
        "  without UNIQUE(event_id)": (no_id_index, uuid.uuid4),
        "  without type/category idx": (no_tc, uuid.uuid4),
        "  with time-ordered ids": (SCHEMA, uuid7),
    }


def _profile_rows(peer: bool, stream: str, batch: int, ids: Callable[[], uuid.UUID]) -> list[Any]:
    if peer:
        originator = uuid.uuid4().hex
        return [(originator, v, "bench:OrderPlaced", DATA) for v in range(1, batch + 1)]
    now = time.time_ns() // 1000
    return [
        (stream, v, ids().bytes, "OrderPlaced", "Order", DATA, b"{}", now, batch)
        for v in range(1, batch + 1)
    ]


def _profile_variant(
    path: Path,
    schema: str | None,
    ids: Callable[[], uuid.UUID],
    sync: str,
    batch: int,
    seconds: float,
) -> tuple[float, float, float]:
    """SQLite's own work per event (thread CPU, rows built outside), and WAL frames per commit."""
    if schema is None:
        eventsourcing_recorder(path, sync).datastore.close()
    conn = _raw_connect(path, sync)
    if schema is not None:
        conn.executescript(schema)
    peer = schema is None
    insert = _PEER_INSERT if peer else _RAW_INSERT
    conn.execute("BEGIN")
    for n in range(PROFILE_PREFILL // BATCH):
        conn.executemany(insert, _profile_rows(peer, f"Pre-{n}", BATCH, ids))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the WAL keeps every frame: count them
    cpu = 0.0
    commits = 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        rows = _profile_rows(peer, f"Order-{commits}", batch, ids)
        start = time.thread_time()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
        cpu += time.thread_time() - start
        commits += 1
    frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][1]
    page_size = conn.execute("PRAGMA page_size").fetchall()[0][0]
    conn.close()
    return cpu / (commits * batch) * 1e6, frames / commits, frames * (page_size + 24) / commits


def _python_costs() -> list[tuple[str, float]]:
    """The adapter's per-event work before SQLite: building the event, validating, encoding."""
    import timeit

    from eventstore_core.validation import prepare_batch

    def per_event(fn: Callable[[], object], events: int) -> float:
        runs = max(1, 20_000 // events)
        return min(timeit.repeat(fn, number=runs, repeat=5)) / (runs * events) * 1e6

    limits: dict[str, Any] = {"max_event_bytes": 1 << 24, "max_append_events": 10_000}
    one = [es.NewEvent("OrderPlaced", PAYLOAD)]
    hundred = [es.NewEvent("OrderPlaced", PAYLOAD) for _ in range(BATCH)]
    return [
        ("uuid4() (NewEvent's default id)", per_event(uuid.uuid4, 1)),
        (
            "NewEvent(...) with its uuid4 id",
            per_event(lambda: es.NewEvent("OrderPlaced", PAYLOAD), 1),
        ),
        ("validate + encode, 1-event append", per_event(lambda: prepare_batch(one, **limits), 1)),
        (
            "validate + encode, 100-event append",
            per_event(lambda: prepare_batch(hundred, **limits), BATCH),
        ),
        ("  of which orjson.dumps (data)", per_event(lambda: orjson.dumps(PAYLOAD), 1)),
    ]


def profile(directory: Path, seconds: float, settings: list[str], rounds: int) -> None:
    """Raw sqlite3 into variants of the table, side by side: what each index costs."""
    print(f"\nSQLite's own work, {PROFILE_PREFILL:,} events stored first (best of {rounds}):")
    print(
        "\n| table | synchronous | events per commit | CPU us/event | WAL frames/commit "
        "| WAL KiB/commit |"
    )
    print("|---|---|---:|---:|---:|---:|")
    variants = _schema_variants()
    for sync in settings:
        for batch in (1, BATCH):
            best: dict[str, tuple[float, float, float]] = {}
            for r in range(rounds):
                for name, (schema, ids) in variants.items():
                    path = directory / f"profile-{len(best)}-{r}-{sync}-{batch}-{hash(name)}.db"
                    result = _profile_variant(path, schema, ids, sync, batch, seconds)
                    if name not in best or result[0] < best[name][0]:
                        best[name] = result
            for name, (cpu, frames, wal) in best.items():
                cells = f"{cpu:,.1f} | {frames:.1f} | {wal / 1024:,.0f}"
                print(f"| {name} | {sync} | {batch} | {cells} |", flush=True)
    print("\nThe adapter's Python work per event before SQLite (best of 5):\n")
    print("| step | us/event |")
    print("|---|---:|")
    for step, cost in _python_costs():
        print(f"| {step} | {cost:.2f} |")


# --------------------------------------------------------------------------------------------
# handoff: what a thread hand-off costs on this machine
# --------------------------------------------------------------------------------------------

HANDOFF_TRIPS = 20_000
_T = TypeVar("_T")


async def _round_trips(trips: int) -> tuple[float, float]:
    """Wall and CPU us of a no-op job sent from the event loop to a thread and answered back,
    the way the adapter's writer is reached (``SimpleQueue.put``, ``call_soon_threadsafe``)."""
    import queue

    loop = asyncio.get_running_loop()
    jobs: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()

    def serve() -> None:
        while (future := jobs.get()) is not None:
            loop.call_soon_threadsafe(future.set_result, None)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(trips):
        future = loop.create_future()
        jobs.put(future)
        await future
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    jobs.put(None)
    thread.join()
    return wall / trips * 1e6, cpu / trips * 1e6


def _on_one_cpu(fn: Callable[[], _T]) -> _T | None:
    """Run ``fn`` with this thread, and the threads it starts, on one CPU (Linux only)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # the calling thread; new threads inherit it
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, allowed)


def handoff(directory: Path, seconds: float, settings: list[str], rounds: int) -> None:
    """Why a lone writer pays for its thread: the hand-off, across CPUs and on one CPU.

    The adapter's writer thread keeps SQLite off the event loop; a lone writer's append is
    therefore one round trip to that thread. When the other CPU is idle, waking a thread on
    it costs far more than the append's own work on some machines (virtual ones especially);
    with the whole process on one CPU the same round trip is a plain context switch. The
    adapter does not pin its threads (an application's affinity is its own, and with
    ``synchronous=FULL`` it gains nothing): this only measures the cost. eventsourcing and
    raw sqlite3 write in the calling thread.
    """
    trips = [asyncio.run(_round_trips(HANDOFF_TRIPS)) for _ in range(rounds)]
    on_one = [_on_one_cpu(lambda: asyncio.run(_round_trips(HANDOFF_TRIPS))) for _ in range(rounds)]
    pinned_trips = [trip for trip in on_one if trip is not None]
    print(f"\nRound trip loop -> thread -> loop, no-op job (best of {rounds}):\n")
    print("| where | wall us | CPU us |")
    print("|---|---:|---:|")
    print(f"| as scheduled | {min(w for w, _ in trips):.1f} | {min(c for _, c in trips):.1f} |")
    if pinned_trips:
        wall, cpu = min(w for w, _ in pinned_trips), min(c for _, c in pinned_trips)
        print(f"| the process on one CPU | {wall:.1f} | {cpu:.1f} |")
    print("\nSingle-event appends, 1 writer, events/s (best of each):\n")
    print("| contender | synchronous | as scheduled | on one CPU |")
    print("|---|---|---:|---:|")
    for sync in settings:
        for contender in CONTENDERS:
            path = directory / f"handoff-{contender.replace(' ', '_')}-{sync}.db"
            if contender == "raw sqlite3":
                prepare_raw_schema(path, sync)
            free = pinned = 0.0
            for _ in range(rounds):
                free = max(free, appends(contender, path, sync, seconds, 1, 1))
                one = _on_one_cpu(functools.partial(appends, contender, path, sync, seconds, 1, 1))
                pinned = max(pinned, one or 0.0)
            print(f"| {contender} | {sync} | {free:,.0f} | {pinned:,.0f} |", flush=True)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

CONTENDERS = ("eventstore", "eventsourcing", "raw sqlite3")


def appends(
    contender: str, path: Path, sync: str, seconds: float, writers: int, batch: int
) -> float:
    if contender == "eventstore":
        return asyncio.run(es_appends(es_url(path, sync), seconds, writers, batch))
    if contender == "eventsourcing":
        return eventsourcing_appends(path, sync, seconds, writers, batch)
    return raw_appends(path, sync, seconds, writers, batch)


def write_stream(contender: str, path: Path, sync: str) -> None:
    if contender == "eventstore":
        asyncio.run(es_write_stream(es_url(path, sync)))
    elif contender == "eventsourcing":
        eventsourcing_write_stream(path, sync)
    else:
        raw_write_stream(path, sync)


def read_stream(contender: str, path: Path, sync: str) -> tuple[int, float]:
    if contender == "eventstore":
        return asyncio.run(es_read_stream(es_url(path, sync)))
    if contender == "eventsourcing":
        return eventsourcing_read_stream(path, sync)
    return raw_read_stream(path, sync)


def read_all(contender: str, path: Path, sync: str) -> tuple[int, float]:
    if contender == "eventstore":
        return asyncio.run(es_read_all(es_url(path, sync)))
    if contender == "eventsourcing":
        return eventsourcing_read_all(path, sync)
    return raw_read_all(path, sync)


def prepare_raw_schema(path: Path, sync: str) -> None:
    """The raw contender writes the adapter's table: let the adapter create it."""

    async def setup() -> None:
        async with es.connect(es_url(path, sync)) as store:
            await store.setup()

    asyncio.run(setup())


def run(
    directory: Path,
    seconds: float,
    settings: list[str],
    scenarios: set[str],
    contenders: list[str],
    rounds: int,
) -> None:
    """Each scenario runs every contender in turn, ``rounds`` times; the best rate is kept.

    Interleaving the contenders scenario by scenario, rather than one contender after the
    other, keeps a change in the machine's load (it is shared) from favouring one of them.
    """
    rows: list[tuple[str, str, str, float]] = []

    def record(scenario: str, sync: str, contender: str, value: float) -> None:
        rows.append((scenario, sync, contender, value))
        print(f"  {scenario:<28} {sync:<6} {contender:<14} {value:>12,.0f}", flush=True)

    def file(contender: str, sync: str, kind: str = "") -> Path:
        return directory / f"{kind}{contender.replace(' ', '_')}-{sync}.db"

    for sync in settings:
        for contender in contenders:
            if contender == "raw sqlite3":
                for kind in ("", "procs-", "stream-"):
                    prepare_raw_schema(file(contender, sync, kind), sync)
            elif contender == "eventsourcing":
                eventsourcing_recorder(file(contender, sync, "procs-"), sync).datastore.close()
        for writers, batch in ((1, 1), (4, 1), (1, BATCH), (4, BATCH)):
            if ("single" if batch == 1 else "batch") not in scenarios:
                continue
            scenario = f"{'single' if batch == 1 else f'batch {batch}'} x{writers} ev/s"
            best = dict.fromkeys(contenders, 0.0)
            for _ in range(rounds):
                for contender in contenders:
                    rate = appends(contender, file(contender, sync), sync, seconds, writers, batch)
                    best[contender] = max(best[contender], rate)
            for contender in contenders:
                record(scenario, sync, contender, best[contender])
        if "stream" in scenarios or "read" in scenarios:
            # The reads read the same events for everyone: one stream of STREAM_EVENTS.
            for contender in contenders:
                write_stream(contender, file(contender, sync, "stream-"), sync)
        if "stream" in scenarios:
            best = dict.fromkeys(contenders, 0.0)
            for _ in range(rounds):
                for contender in contenders:
                    n, elapsed = read_stream(contender, file(contender, sync, "stream-"), sync)
                    assert n == STREAM_EVENTS, (contender, n)
                    best[contender] = max(best[contender], n / elapsed)
            for contender in contenders:
                record(f"read_stream ({STREAM_EVENTS:,}) ev/s", sync, contender, best[contender])
        if "read" in scenarios:
            best_read: dict[str, tuple[int, float]] = {}
            for _ in range(rounds):
                for contender in contenders:
                    n, elapsed = read_all(contender, file(contender, sync, "stream-"), sync)
                    assert n == STREAM_EVENTS, (contender, n)
                    if contender not in best_read or n / elapsed > best_read[contender][1]:
                        best_read[contender] = (n, n / elapsed)
            for contender in contenders:
                n, rate = best_read[contender]
                record(f"read_all ({n:,}) ev/s", sync, contender, rate)
        if "processes" in scenarios:
            best = dict.fromkeys(contenders, 0.0)
            for _ in range(rounds):
                for contender in contenders:
                    path = file(contender, sync, "procs-")
                    rate = processes_appends(contender, path, sync, seconds, 3)
                    best[contender] = max(best[contender], rate)
            for contender in contenders:
                record("3 processes x1 ev/s", sync, contender, best[contender])

    print()
    print("| scenario | synchronous | eventstore | eventsourcing | raw sqlite3 | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    keys = list(dict.fromkeys((scenario.split(" (")[0], sync) for scenario, sync, _, _ in rows))
    for scenario, sync in keys:
        values = {c: v for s, y, c, v in rows if s.split(" (")[0] == scenario and y == sync}
        peer = values.get("eventsourcing", 0)
        ratio = values.get("eventstore", 0) / peer if peer else 0
        cells = " | ".join(f"{values.get(c, 0):,.0f}" for c in CONTENDERS)
        print(f"| {scenario} | {sync} | {cells} | {ratio:.2f}x |")


def million(directory: Path, sync: str) -> None:
    """Write 1M events (1,000-event batches), then ``read_all`` them watching resident memory."""
    path = directory / "million.db"
    url = es_url(path, sync)

    async def fill() -> None:
        async with es.connect(url) as store:
            await store.setup()
            for n in range(1000):
                events = [es.NewEvent("OrderPlaced", PAYLOAD) for _ in range(1000)]
                await store.append(f"Order-m{n}", events, es.NO_STREAM)

    start = time.perf_counter()
    asyncio.run(fill())
    print(f"  wrote 1,000,000 events in {time.perf_counter() - start:.1f}s", flush=True)

    async def read() -> None:
        process = psutil.Process()
        async with es.connect(url) as store:
            count, peak = 0, 0
            base = process.memory_info().rss
            start = time.perf_counter()
            async for _event in store.read_all():
                count += 1
                if count % 50_000 == 0:
                    peak = max(peak, process.memory_info().rss)
            elapsed = time.perf_counter() - start
            growth = (max(peak, process.memory_info().rss) - base) / 2**20
            print(
                f"  read_all 1M: {count:,} events in {elapsed:.1f}s ({count / elapsed:,.0f} ev/s), "
                f"resident memory growth {growth:.1f} MiB",
                flush=True,
            )

    asyncio.run(read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per append measurement")
    parser.add_argument("--synchronous", default="FULL,NORMAL")
    parser.add_argument(
        "--scenarios",
        default="single,batch,stream,read,processes,latency",
        help="comma-separated",
    )
    parser.add_argument("--ids", choices=("uuid4", "uuid7"), default="uuid4")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds, best kept")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--million", action="store_true", help="also read_all over 1M events")
    args = parser.parse_args()
    global new_id
    new_id = uuid7 if args.ids == "uuid7" else uuid.uuid4
    directory = args.dir or Path(tempfile.mkdtemp(prefix="sqlite-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"files in {directory}; load average {os.getloadavg()}", flush=True)
    try:
        run(
            directory,
            args.seconds,
            args.synchronous.split(","),
            set(args.scenarios.split(",")),
            args.contenders.split(","),
            args.rounds,
        )
        if "profile" in args.scenarios.split(","):
            profile(directory, min(args.seconds, 1.0), args.synchronous.split(","), args.rounds)
        if "handoff" in args.scenarios.split(","):
            handoff(directory, args.seconds, args.synchronous.split(","), args.rounds)
        if "latency" in args.scenarios.split(","):
            latency(directory, args.seconds, args.synchronous.split(","))
        if args.million:
            million(directory, "NORMAL")
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
        print(f"load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
