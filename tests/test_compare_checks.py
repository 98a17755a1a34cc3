"""Each correctness check of ``eventstore compare`` catches a store broken on purpose.

A broken store is a real ``memory://`` store behind a wrapper that breaks one promise (it
ignores the expected version, drops an event from ``read_all``, reorders a stream, writes
half a batch, loses a live event). The workload must report the matching check as failed
and its result as unsound; the same workloads on the unbroken store pass.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import pytest

import eventstore_core as es
from eventstore_core.compare import workloads
from eventstore_core.compare.runner import RunOptions, run_comparison
from eventstore_core.compare.targets import memory_target
from eventstore_core.compare.workloads import QUICK, Context, Ledger, WorkloadResult

TINY = QUICK.scaled(0.1)


class Wrapper:
    """Forwards everything to the real store; subclasses break one method."""

    def __init__(self, inner: es.EventStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class IgnoresExpectedVersion(Wrapper):
    """Appends whatever the expected version, after yielding (so writers race)."""

    async def append(self, stream_id: str, events: Any, expected_version: Any = es.ANY) -> Any:
        await asyncio.sleep(0.001)
        return await self.inner.append(stream_id, events)


class WritesHalfABatch(Wrapper):
    """Keeps only the first half of a batch (but reports success)."""

    async def append(self, stream_id: str, events: Any, expected_version: Any = es.ANY) -> Any:
        kept = list(events)[: max(1, len(events) // 2)]
        return await self.inner.append(stream_id, kept, expected_version=expected_version)


class DropsFromReadAll(Wrapper):
    """``read_all`` skips every seventh event."""

    def read_all(self, **kwargs: Any) -> AsyncIterator[es.RecordedEvent]:
        async def skipping() -> AsyncIterator[es.RecordedEvent]:
            index = 0
            async for event in self.inner.read_all(**kwargs):
                index += 1
                if index % 7:
                    yield event

        return skipping()


class ReordersStreams(Wrapper):
    """``read_stream`` swaps the first two events of every stream."""

    def read_stream(self, stream_id: str, **kwargs: Any) -> AsyncIterator[es.RecordedEvent]:
        async def swapped() -> AsyncIterator[es.RecordedEvent]:
            events = [e async for e in self.inner.read_stream(stream_id, **kwargs)]
            if len(events) > 1:
                events[0], events[1] = events[1], events[0]
            for event in events:
                yield event

        return swapped()


class LosesLiveEvents(Wrapper):
    """Live subscriptions drop every third event."""

    def subscribe(self, **kwargs: Any) -> Any:
        real = self.inner.subscribe(**kwargs)

        class Lossy:
            is_live = True

            async def __aenter__(self) -> Lossy:
                self.opened = await real.__aenter__()
                return self

            async def __aexit__(self, *exc: object) -> None:
                await real.__aexit__(*exc)

            async def __aiter__(self) -> AsyncIterator[es.RecordedEvent]:
                index = 0
                async for event in self.opened:
                    index += 1
                    if index % 3:
                        yield event

        return Lossy()


async def _run(
    workload: Any, wrapper: type[Wrapper] | None, *, prefill: bool = False, **kwargs: Any
) -> WorkloadResult:
    async with es.connect("memory://") as real:
        await real.setup()
        store = cast(es.EventStore, wrapper(real) if wrapper else real)
        ctx = Context(TINY, Ledger("Chk"), 7, real.capabilities)
        if prefill:  # the read workloads verify what the writes stored
            await workloads.append_single(cast(es.EventStore, real), ctx, 2)
            await workloads.append_batch(cast(es.EventStore, real), ctx, 10)
        result: WorkloadResult = await workload(store, ctx, **kwargs)
        return result


def _failed(result: WorkloadResult) -> list[str]:
    return [check.name for check in result.checks if not check.passed]


@pytest.mark.parametrize(
    ("workload", "kwargs", "prefill"),
    [
        (workloads.append_single, {"writers": 4}, False),
        (workloads.append_batch, {"size": 10}, False),
        (workloads.hot_streams, {}, False),
        (workloads.stream_reads, {}, True),
        (workloads.read_all, {}, True),
        (workloads.live_delivery, {}, True),
    ],
    ids=["single", "batch", "hot", "stream_reads", "read_all", "live"],
)
async def test_every_workload_is_sound_on_a_correct_store(
    workload: Any, kwargs: dict[str, Any], prefill: bool
) -> None:
    result = await _run(workload, None, prefill=prefill, **kwargs)
    assert result.checks, "a workload without checks proves nothing"
    assert result.sound, result.checks
    assert result.events > 0


async def test_a_store_ignoring_expected_versions_fails_the_stale_write_check() -> None:
    result = await _run(workloads.append_single, IgnoresExpectedVersion, writers=1)
    assert "stale expected version refused" in _failed(result)
    assert not result.sound


async def test_a_store_ignoring_expected_versions_loses_updates_under_contention() -> None:
    result = await _run(workloads.hot_streams, IgnoresExpectedVersion)
    assert any(name.startswith("no lost update") for name in _failed(result))
    assert not result.sound


async def test_a_store_writing_half_a_batch_fails_the_batch_checks() -> None:
    result = await _run(workloads.append_batch, WritesHalfABatch, size=10)
    failed = _failed(result)
    assert "each batch lands whole at the expected version + batch size" in failed
    assert "stored versions match what was written" in failed


async def test_a_store_dropping_events_from_read_all_fails_the_catch_up_check() -> None:
    result = await _run(workloads.read_all, DropsFromReadAll, prefill=True)
    assert _failed(result) == [
        "every written event exactly once, positions increasing, streams in order"
    ]
    assert "missing" in result.checks[0].detail


async def test_a_store_reordering_a_stream_fails_the_stream_read_check() -> None:
    result = await _run(workloads.stream_reads, ReordersStreams, prefill=True)
    assert _failed(result) == ["every read returns the stream's events, versions 1..n, in order"]


async def test_a_subscription_losing_events_fails_the_delivery_check() -> None:
    result = await _run(workloads.live_delivery, LosesLiveEvents, prefill=True)
    assert _failed(result) == ["every event delivered exactly once, in order"]


def test_the_runner_marks_a_broken_backend_unsound_and_keeps_its_row() -> None:
    broken = memory_target()
    broken.name = "broken memory"
    broken.kind = "embedded"
    broken.wrap = lambda store: cast(es.EventStore, IgnoresExpectedVersion(store))
    results = run_comparison([memory_target(), broken], RunOptions(TINY))
    by_name = {entry["name"]: entry for entry in results["backends"]}
    assert by_name["memory:// (reference)"]["sound"] is True
    assert by_name["broken memory"]["status"] == "ok"
    assert by_name["broken memory"]["sound"] is False
    failed = [
        check["name"]
        for workload in by_name["broken memory"]["workloads"]
        for check in workload["checks"]
        if not check["passed"]
    ]
    assert "stale expected version refused" in failed


class SwallowsCancellation(Wrapper):
    """Like a driver that reports a cancelled call as its own error (which workloads record).

    It also presses Ctrl-C itself, at its 50th append, so the interruption lands inside a
    workload whatever the machine's speed.
    """

    appends = 0

    async def append(self, stream_id: str, events: Any, expected_version: Any = es.ANY) -> Any:
        SwallowsCancellation.appends += 1
        if SwallowsCancellation.appends == 50:
            os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            raise es.EventStoreError("the call was cancelled") from None
        return await self.inner.append(stream_id, events, expected_version=expected_version)


def test_ctrl_c_stops_the_run_even_when_the_store_swallows_the_cancellation() -> None:
    stubborn = memory_target()
    stubborn.name = "stubborn"
    stubborn.kind = "embedded"
    stubborn.wrap = lambda store: cast(es.EventStore, SwallowsCancellation(store))
    after = memory_target()
    after.name = "after"
    sizes = replace(QUICK.scaled(0.5), warmup_seconds=0.0)
    # Python's own Ctrl-C handling, whatever this process inherited (a background job in a
    # non-interactive shell starts with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        results = run_comparison([stubborn, after], RunOptions(sizes))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert SwallowsCancellation.appends >= 50
    assert results["interrupted"] is True
    statuses = [entry["status"] for entry in results["backends"]]
    assert statuses == ["interrupted", "not run (interrupted)"]
