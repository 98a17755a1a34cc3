"""The workloads of ``eventstore compare``, each with the correctness checks it carries.

Every workload talks to the store through the public API only (``import eventstore_core as
es``), is seeded, and is time-boxed (it stops at ``Sizes.seconds`` or ``Sizes.max_ops``,
whichever comes first), so a slow backend costs the same wall time as a fast one. A workload
returns a :class:`WorkloadResult`: figures (events/s and operations/s, labelled; latency
percentiles; client CPU per 1,000 events; a per-interval series) and :class:`Check` results.
A failed check makes the result *unsound*, which keeps the backend out of every
recommendation that rests on it.

The workloads of one backend share a :class:`Ledger` of what was written, so the read
workloads verify the exact events, ids and versions the write workloads stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import eventstore_core as es
from eventstore_core.compare.stats import Zipf, latency_summary, per_interval_rates

#: Bytes of padding in each event's data (with the rest, about 200 bytes of JSON).
PAYLOAD_PAD = 160


@dataclass(frozen=True)
class Sizes:
    """How much each workload does. :data:`QUICK` and :data:`DEFAULT` are the presets."""

    seconds: float
    """Time box of one throughput variant."""
    max_ops: int
    """Operation cap of one throughput variant (the time box usually ends it first)."""
    writers: tuple[int, ...]
    """Concurrent writers of the single-event append variants."""
    streams_per_writer: int
    """Streams each single-event writer appends to, round robin (exact versions)."""
    batch_sizes: tuple[int, ...]
    hot_writers: int
    hot_streams: int
    """K: the writers of the contention workload choose among K streams by Zipf."""
    zipf_s: float
    live_rate: float
    """Events per second the live-delivery writer sends, on a fixed schedule."""
    live_seconds: float
    warmup_seconds: float
    """Unmeasured single-event appends before the first workload (a JVM's JIT, caches)."""

    def scaled(self, factor: float) -> Sizes:
        """The same workloads, ``factor`` times as long (for tests and tiny machines)."""
        return replace(
            self,
            seconds=self.seconds * factor,
            max_ops=max(5, int(self.max_ops * factor)),
            live_seconds=self.live_seconds * factor,
            warmup_seconds=self.warmup_seconds * factor,
        )


QUICK = Sizes(
    seconds=1.5,
    max_ops=100_000,
    writers=(1, 4),
    streams_per_writer=25,
    batch_sizes=(10, 100),
    hot_writers=4,
    hot_streams=8,
    zipf_s=1.1,
    live_rate=50.0,
    live_seconds=2.0,
    warmup_seconds=4.0,
)
DEFAULT = Sizes(
    seconds=15.0,
    max_ops=500_000,
    writers=(1, 4, 16),
    streams_per_writer=100,
    batch_sizes=(10, 100),
    hot_writers=8,
    hot_streams=16,
    zipf_s=1.1,
    live_rate=100.0,
    live_seconds=20.0,
    warmup_seconds=15.0,
)


@dataclass
class Check:
    """One correctness check of a workload: what was verified and what was found."""

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The check as stored in ``results.json``."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class WorkloadResult:
    """What one workload variant measured on one backend."""

    key: str
    """Stable id, e.g. ``append_single.w4``; the rules refer to figures by it."""
    label: str
    """What it did, in words, e.g. ``single-event appends, 4 writers``."""
    events: int = 0
    operations: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    cpu_seconds: float = 0.0
    series: list[float] = field(default_factory=list)
    series_interval: float = 0.5
    """Seconds per window of ``series``."""
    extra: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        """Whether it ran to the end and every check passed."""
        return self.error is None and all(check.passed for check in self.checks)

    def figures(self) -> dict[str, float]:
        """The figures by name (``events_per_s``, ``latency_ms.p99`` ...), NaN if unmeasured."""
        values: dict[str, float] = {
            "events_per_s": self.events / self.seconds if self.seconds else math.nan,
            "ops_per_s": self.operations / self.seconds if self.seconds else math.nan,
            "cpu_ms_per_1000_events": (
                self.cpu_seconds * 1000.0 / self.events * 1000.0 if self.events else math.nan
            ),
        }
        for name, value in latency_summary(self.latencies).items():
            values[f"latency_ms.{name}"] = value
        values.update(self.extra)
        return values

    def to_json(self) -> dict[str, Any]:
        """The result as stored in ``results.json`` (latencies summarised, not listed)."""
        figures = self.figures()
        return {
            "key": self.key,
            "label": self.label,
            "params": self.params,
            "events": self.events,
            "operations": self.operations,
            "seconds": round(self.seconds, 4),
            "figures": {name: _rounded(value) for name, value in figures.items()},
            "series_events_per_s": [round(value, 1) for value in self.series],
            "series_interval_s": self.series_interval,
            "latency_sample_ms": _sample_ms(self.latencies),
            "checks": [check.to_json() for check in self.checks],
            "sound": self.sound,
            "error": self.error,
            "skipped": self.skipped,
        }


def _rounded(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 4)


def _sample_ms(latencies: list[float], size: int = 400) -> list[float]:
    """An evenly spaced sample of the sorted latencies (for distribution plots)."""
    ordered = sorted(latencies)
    if len(ordered) <= size:
        return [round(value * 1000.0, 3) for value in ordered]
    step = (len(ordered) - 1) / (size - 1)
    return [round(ordered[round(i * step)] * 1000.0, 3) for i in range(size)]


class Ledger:
    """What the workloads of one backend wrote: each stream's event ids in version order."""

    def __init__(self, category: str) -> None:
        """Start an empty ledger for streams of ``category`` (the run's own category)."""
        self.category = category
        self.streams: dict[str, list[uuid.UUID]] = {}

    def version(self, stream_id: str) -> int:
        """The version the stream has if the store kept everything the ledger recorded."""
        return len(self.streams.get(stream_id, ()))

    def record(self, stream_id: str, ids: list[uuid.UUID]) -> None:
        """Note that ``ids`` were appended to the stream, in order."""
        self.streams.setdefault(stream_id, []).extend(ids)

    @property
    def events(self) -> int:
        """Events recorded in all streams."""
        return sum(len(ids) for ids in self.streams.values())

    def stream(self, name: str) -> str:
        """A stream id of the run's category."""
        return f"{self.category}-{name}"


@dataclass
class Context:
    """What the workloads of one backend share."""

    sizes: Sizes
    ledger: Ledger
    seed: int
    capabilities: es.Capabilities
    head: es.Position | None = None
    """The last position ``read_all`` saw: the live workload subscribes after it."""
    read_filter: es.EventFilter | None = None
    """Set for a store that may hold other data (a URL the user gave): ``read_all`` then
    reads the run's own category only, instead of a whole production store."""
    progress: Callable[[str], None] = lambda _label: None


def _event(i: int, writer: int) -> es.NewEvent:
    return es.NewEvent(
        "CompareEvent",
        {"i": i, "pad": "x" * PAYLOAD_PAD},
        metadata={"writer": writer},
    )


class _Timer:
    """Records each operation's latency, completion time and event count."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.latencies: list[float] = []
        self.completions: list[float] = []
        self.counts: list[int] = []

    def done(self, began: float, events: int) -> None:
        now = time.perf_counter()
        self.latencies.append(now - began)
        self.completions.append(now - self.started)
        self.counts.append(events)

    def finish(self, result: WorkloadResult) -> None:
        result.seconds = time.perf_counter() - self.started
        result.cpu_seconds = time.process_time() - self.cpu_started
        result.latencies = self.latencies
        result.events = sum(self.counts)
        result.operations = len(self.counts)
        # About ten windows per variant, each between 0.1 s and 1 s long.
        result.series_interval = max(0.1, min(1.0, round(result.seconds / 10, 1)))
        result.series = per_interval_rates(self.completions, self.counts, result.series_interval)


async def _stale_write_is_refused(
    store: es.EventStore, ledger: Ledger, stream_id: str, batch: int
) -> Check:
    """Append with an out-of-date expected version: it must raise and write nothing."""
    version = ledger.version(stream_id)
    events = [_event(-1, -1) for _ in range(batch)]
    try:
        await store.append(stream_id, events, expected_version=max(0, version - 1))
    except es.ConcurrencyError:
        after = await store.stream_version(stream_id)
        if after != version:
            return Check(
                "stale expected version refused",
                False,
                f"refused, but {stream_id} moved from version {version} to {after}",
            )
        return Check(
            "stale expected version refused",
            True,
            f"append at expected {max(0, version - 1)} to a stream at {version} raised "
            "ConcurrencyError and wrote nothing",
        )
    # A store that accepted it really holds the events: keep the ledger true to the store.
    ledger.record(stream_id, [event.id for event in events])
    return Check(
        "stale expected version refused",
        False,
        f"append at expected {max(0, version - 1)} to a stream at {version} was accepted",
    )


async def _versions_match(store: es.EventStore, ledger: Ledger, streams: list[str]) -> Check:
    wrong = []
    for stream_id in streams:
        actual = await store.stream_version(stream_id)
        if actual != ledger.version(stream_id):
            wrong.append(f"{stream_id}: {actual} (wrote {ledger.version(stream_id)})")
    return Check(
        "stored versions match what was written",
        not wrong,
        f"{len(streams)} streams checked" + (f"; wrong: {', '.join(wrong[:3])}" if wrong else ""),
    )


async def _writers(
    count: int, sizes: Sizes, body: Callable[[int, _Timer], Awaitable[None]], timer: _Timer
) -> None:
    deadline = time.perf_counter() + sizes.seconds
    budget = [sizes.max_ops]

    async def loop(writer: int) -> None:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            await body(writer, timer)

    await asyncio.gather(*(loop(writer) for writer in range(count)))


# -- warm-up ----------------------------------------------------------------------------------


async def warm_up(store: es.EventStore, ctx: Context) -> int:
    """Unmeasured appends by 4 writers for ``warmup_seconds``, in a category of their own.

    A fresh server is slower at first (DynamoDB Local's JVM runs its first thousand requests
    several times slower), which would flatter whichever workload runs last. Returns the
    events written; they are outside the ledger's category, so no check counts them.
    """
    deadline = time.perf_counter() + ctx.sizes.warmup_seconds
    written = [0]

    async def loop(writer: int) -> None:
        stream_id = f"{ctx.ledger.category}Warm-{writer}"
        while time.perf_counter() < deadline and written[0] < ctx.sizes.max_ops:
            await store.append(stream_id, [_event(written[0], writer)])
            written[0] += 1

    await asyncio.gather(*(loop(writer) for writer in range(4)))
    return written[0]


# -- single-event appends with exact versions ---------------------------------------------


async def append_single(store: es.EventStore, ctx: Context, writers: int) -> WorkloadResult:
    """Writers each append one event at a time to their own streams, at the exact version."""
    result = WorkloadResult(
        f"append_single.w{writers}",
        f"single-event appends, {writers} writer{'s' if writers > 1 else ''}",
        params={"writers": writers, "streams_per_writer": ctx.sizes.streams_per_writer},
    )
    ledger = ctx.ledger
    mismatches: list[str] = []
    counters = [0] * writers

    async def body(writer: int, timer: _Timer) -> None:
        i = counters[writer]
        counters[writer] += 1
        stream_id = ledger.stream(f"w{writers}x{writer}s{i % ctx.sizes.streams_per_writer}")
        expected = ledger.version(stream_id)
        event = _event(i, writer)
        began = time.perf_counter()
        try:
            appended = await store.append(stream_id, [event], expected_version=expected)
        except es.ConcurrencyError as error:
            # Only this writer writes this stream: the store lost or invented events.
            mismatches.append(f"{stream_id}: refused at {expected}, store at {error.actual}")
            return
        timer.done(began, 1)
        ledger.record(stream_id, [event.id])
        if appended.version != expected + 1:
            mismatches.append(f"{stream_id}: {appended.version} after {expected}")

    timer = _Timer()
    await _writers(writers, ctx.sizes, body, timer)
    timer.finish(result)
    result.checks.append(
        Check(
            "each append lands at exactly the expected version + 1",
            not mismatches,
            f"{result.operations} appends"
            + (f"; wrong: {', '.join(mismatches[:3])}" if mismatches else ""),
        )
    )
    written = [s for s in ledger.streams if s.startswith(ledger.stream(f"w{writers}x"))]
    result.checks.append(await _versions_match(store, ledger, written[:50]))
    if written:
        result.checks.append(await _stale_write_is_refused(store, ledger, written[0], 1))
    return result


# -- atomic batches -----------------------------------------------------------------------


async def append_batch(store: es.EventStore, ctx: Context, size: int) -> WorkloadResult:
    """One writer appends batches of ``size`` events at the exact version; all or nothing."""
    limit = ctx.capabilities.max_append_events
    batch = min(size, limit)
    label = f"atomic batches of {size}"
    if batch < size:
        label = f"atomic batches of {batch} (the store's limit; {size} asked)"
    result = WorkloadResult(
        f"append_batch.b{size}", label, params={"batch": batch, "asked": size, "writers": 1}
    )
    ledger = ctx.ledger
    mismatches: list[str] = []
    count = [0]
    streams = 10

    async def body(writer: int, timer: _Timer) -> None:
        i = count[0]
        count[0] += 1
        stream_id = ledger.stream(f"b{size}s{i % streams}")
        expected = ledger.version(stream_id)
        events = [_event(i * batch + k, writer) for k in range(batch)]
        began = time.perf_counter()
        try:
            appended = await store.append(stream_id, events, expected_version=expected)
        except es.ConcurrencyError as error:
            mismatches.append(f"{stream_id}: refused at {expected}, store at {error.actual}")
            return
        timer.done(began, batch)
        ledger.record(stream_id, [event.id for event in events])
        if appended.version != expected + batch:
            mismatches.append(f"{stream_id}: {appended.version} after {expected}+{batch}")

    timer = _Timer()
    await _writers(1, ctx.sizes, body, timer)
    timer.finish(result)
    result.checks.append(
        Check(
            "each batch lands whole at the expected version + batch size",
            not mismatches,
            f"{result.operations} batches of {batch}"
            + (f"; wrong: {', '.join(mismatches[:3])}" if mismatches else ""),
        )
    )
    written = [s for s in ledger.streams if s.startswith(ledger.stream(f"b{size}s"))]
    if written:
        # The last batch of a stream must read back contiguous, in order, with its own ids.
        stream_id = written[0]
        ids = ledger.streams[stream_id]
        first = len(ids) - batch + 1
        read = [event async for event in store.read_stream(stream_id, from_version=first)]
        good = [e.version for e in read] == list(range(first, len(ids) + 1)) and [
            e.id for e in read
        ] == ids[first - 1 :]
        result.checks.append(
            Check(
                "a batch reads back contiguous and in order",
                good,
                f"{stream_id} versions {first}..{len(ids)}"
                + ("" if good else f": got {[e.version for e in read][:5]}..."),
            )
        )
        result.checks.append(await _versions_match(store, ledger, written))
        result.checks.append(await _stale_write_is_refused(store, ledger, stream_id, batch))
    return result


# -- hot-stream contention ------------------------------------------------------------------


async def hot_streams(store: es.EventStore, ctx: Context) -> WorkloadResult:
    """Writers choose among K streams by Zipf; read the version, append at it, retry conflicts.

    The figure that matters is *useful* appends per second (those that committed); the
    conflict rate is how many attempts lost the race.
    """
    sizes = ctx.sizes
    writers, k = sizes.hot_writers, sizes.hot_streams
    result = WorkloadResult(
        "hot_streams",
        f"hot-stream contention, {writers} writers, Zipf(s={sizes.zipf_s}) over {k} streams",
        params={"writers": writers, "streams": k, "zipf_s": sizes.zipf_s},
    )
    ledger = ctx.ledger
    samplers = [Zipf(k, sizes.zipf_s, ctx.seed * 1000 + w) for w in range(writers)]
    conflicts = [0]
    lost: list[str] = []
    counters = [0] * writers

    async def body(writer: int, timer: _Timer) -> None:
        stream_id = ledger.stream(f"hot{samplers[writer].sample()}")
        counters[writer] += 1
        began = time.perf_counter()
        while True:
            seen = await store.stream_version(stream_id)
            event = _event(counters[writer], writer)
            try:
                appended = await store.append(stream_id, [event], expected_version=seen)
            except es.ConcurrencyError:
                conflicts[0] += 1
                continue
            break
        timer.done(began, 1)
        ledger.record(stream_id, [event.id])
        if appended.version != seen + 1:
            lost.append(f"{stream_id}: {appended.version} after {seen}")

    timer = _Timer()
    await _writers(writers, sizes, body, timer)
    timer.finish(result)
    attempts = result.operations + conflicts[0]
    result.extra["conflict_rate"] = conflicts[0] / attempts if attempts else math.nan
    result.extra["attempts_per_s"] = attempts / result.seconds if result.seconds else math.nan
    result.extra["top_stream_share"] = samplers[0].share_of_top()
    result.checks.append(
        Check(
            "no lost update: each committed append is at the version its writer read + 1",
            not lost,
            f"{result.operations} commits, {conflicts[0]} conflicts retried"
            + (f"; wrong: {', '.join(lost[:3])}" if lost else ""),
        )
    )
    hot = [ledger.stream(f"hot{rank}") for rank in range(k)]
    result.checks.append(
        await _versions_match(store, ledger, [s for s in hot if s in ledger.streams])
    )
    return result


# -- stream reads ---------------------------------------------------------------------------


async def stream_reads(store: es.EventStore, ctx: Context) -> WorkloadResult:
    """Read whole streams chosen by Zipf over every stream written so far; verify each read."""
    ledger = ctx.ledger
    streams = sorted(ledger.streams)
    result = WorkloadResult(
        "stream_reads",
        f"whole-stream reads, Zipf(s={ctx.sizes.zipf_s}) over {len(streams)} streams",
        params={"streams": len(streams), "readers": 1},
    )
    if not streams:
        result.skipped = "no streams were written"
        return result
    order = list(streams)
    random.Random(ctx.seed).shuffle(order)  # the hottest stream is any stream, not the first
    zipf = Zipf(len(order), ctx.sizes.zipf_s, ctx.seed)
    wrong: list[str] = []

    async def body(_writer: int, timer: _Timer) -> None:
        stream_id = order[zipf.sample()]
        began = time.perf_counter()
        read = [event async for event in store.read_stream(stream_id)]
        timer.done(began, len(read))
        ids = ledger.streams[stream_id]
        if [e.version for e in read] != list(range(1, len(ids) + 1)) or [e.id for e in read] != ids:
            wrong.append(f"{stream_id}: {len(read)} events read, {len(ids)} written")

    timer = _Timer()
    await _writers(1, ctx.sizes, body, timer)
    timer.finish(result)
    result.checks.append(
        Check(
            "every read returns the stream's events, versions 1..n, in order",
            not wrong,
            f"{result.operations} reads" + (f"; wrong: {', '.join(wrong[:3])}" if wrong else ""),
        )
    )
    return result


# -- read_all catch-up ------------------------------------------------------------------------


async def read_all(store: es.EventStore, ctx: Context) -> WorkloadResult:
    """Read the whole store in global order, as a projection catching up does.

    The first pass is verified: every event written appears exactly once, positions only
    grow, and each stream's events come in version order. Further passes (until the time box)
    only measure.
    """
    ledger = ctx.ledger
    label = "read_all catch-up from the start"
    if ctx.read_filter is not None:
        label += " (the run's own category only)"
    result = WorkloadResult("read_all", label, params={"filtered": ctx.read_filter is not None})
    timer = _Timer()
    deadline = time.perf_counter() + ctx.sizes.seconds
    problems: list[str] = []
    passes = 0
    while True:
        began = time.perf_counter()
        seen: dict[uuid.UUID, int] = {}
        last_version: dict[str, int] = {}
        previous: es.Position | None = None
        unordered = 0
        count = 0
        async for event in store.read_all(filter=ctx.read_filter):
            count += 1
            if passes:
                continue
            if previous is not None:
                with contextlib.suppress(TypeError):  # partitioned positions may not compare
                    if not previous < event.position:
                        unordered += 1
            previous = event.position
            if event.stream_id.startswith(ledger.category + "-"):
                seen[event.id] = seen.get(event.id, 0) + 1
                if event.version <= last_version.get(event.stream_id, 0):
                    problems.append(f"{event.stream_id} v{event.version} out of order")
                last_version[event.stream_id] = event.version
        timer.done(began, count)
        if not passes:
            ctx.head = previous
            written = {i for ids in ledger.streams.values() for i in ids}
            missing = len(written - seen.keys())
            extra = len(seen.keys() - written)
            repeated = sum(1 for n in seen.values() if n > 1)
            if missing or extra or repeated:
                problems.append(f"{missing} missing, {repeated} repeated, {extra} unknown")
            if unordered:
                problems.append(f"{unordered} positions not after their predecessor")
            result.params["events_in_store"] = count
        passes += 1
        if time.perf_counter() >= deadline or passes >= 50:
            break
    timer.finish(result)
    result.checks.append(
        Check(
            "every written event exactly once, positions increasing, streams in order",
            not problems,
            f"{ledger.events} events written, first pass read {result.params['events_in_store']}"
            + (f"; {'; '.join(problems[:3])}" if problems else ""),
        )
    )
    return result


# -- live delivery latency ---------------------------------------------------------------------


async def live_delivery(store: es.EventStore, ctx: Context) -> WorkloadResult:
    """Append at a fixed rate on a fixed schedule; measure delivery to a live subscription.

    Open loop: event ``i`` is due at ``start + i / rate``, and its latency is counted from
    that due time, not from when the writer got round to it, so a slow append shows up in the
    latencies of the events queued behind it (no coordinated omission).
    """
    sizes = ctx.sizes
    rate = sizes.live_rate
    total = max(5, int(rate * sizes.live_seconds))
    result = WorkloadResult(
        "live",
        f"live delivery at {rate:g} events/s (open loop)",
        params={"rate": rate, "events": total},
    )
    stream_id = ctx.ledger.stream("live")
    arrivals: dict[int, list[float]] = {}
    order: list[int] = []
    due: list[float] = []
    cpu_started = time.process_time()
    started = time.perf_counter()

    async with store.subscribe(after=ctx.head) as subscription:

        async def receive() -> None:
            async for event in subscription:
                if event.stream_id != stream_id:
                    continue
                i = int(event.data["i"])
                arrivals.setdefault(i, []).append(time.perf_counter())
                order.append(i)
                if len(order) >= total:
                    return

        receiver = asyncio.create_task(receive())
        for _ in range(100):  # up to 5 s to catch up before the clock starts
            if subscription.is_live or receiver.done():
                break
            await asyncio.sleep(0.05)
        start = time.perf_counter() + 0.05
        ids: list[uuid.UUID] = []
        for i in range(total):
            at = start + i / rate
            due.append(at)
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            event = _event(i, 0)
            await store.append(stream_id, [event])
            ids.append(event.id)
        sent = time.perf_counter()
        ctx.ledger.record(stream_id, ids)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(receiver), timeout=10.0)
        if not receiver.done():
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        elif not receiver.cancelled() and (failure := receiver.exception()) is not None:
            raise failure
    # events/s over the sending window: the delivered rate at the offered rate.
    result.seconds = max(sent - start, 1e-9)
    result.params["wall_seconds"] = round(time.perf_counter() - started, 3)
    result.cpu_seconds = time.process_time() - cpu_started
    result.latencies = [arrivals[i][0] - due[i] for i in sorted(arrivals) if i < len(due)]
    result.events = len(result.latencies)
    result.operations = result.events
    missing = total - len(arrivals)
    repeated = sum(1 for times in arrivals.values() if len(times) > 1)
    in_order = order == sorted(order)
    result.checks.append(
        Check(
            "every event delivered exactly once, in order",
            not missing and not repeated and in_order,
            f"{total} sent, {len(arrivals)} delivered, {repeated} repeated"
            + ("" if in_order else ", out of order"),
        )
    )
    return result


#: A workload variant: the store and the shared context in, a result out.
Step = Callable[[es.EventStore, Context], Awaitable[WorkloadResult]]


def plan(sizes: Sizes) -> list[tuple[str, Step]]:
    """The workload variants for ``sizes`` in running order, as (label, step) pairs.

    The read workloads come after the writes: they verify what the writes stored.
    """
    steps: list[tuple[str, Step]] = []
    for writers in sizes.writers:
        steps.append((f"single appends x{writers}", partial(_single_step, writers=writers)))
    for size in sizes.batch_sizes:
        steps.append((f"batches of {size}", partial(_batch_step, size=size)))
    steps.append(("hot streams", hot_streams))
    steps.append(("stream reads", stream_reads))
    steps.append(("read_all", read_all))
    steps.append(("live delivery", live_delivery))
    return steps


async def _single_step(store: es.EventStore, ctx: Context, *, writers: int) -> WorkloadResult:
    return await append_single(store, ctx, writers)


async def _batch_step(store: es.EventStore, ctx: Context, *, size: int) -> WorkloadResult:
    return await append_batch(store, ctx, size)


__all__ = [
    "DEFAULT",
    "QUICK",
    "Check",
    "Context",
    "Ledger",
    "Sizes",
    "Step",
    "WorkloadResult",
    "append_batch",
    "append_single",
    "hot_streams",
    "live_delivery",
    "plan",
    "read_all",
    "stream_reads",
    "warm_up",
]
