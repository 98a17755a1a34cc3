"""Writer processes sharing one store: versions hold and readers miss nothing.

Each writer is a separate interpreter (``multiprocessing`` spawn context) that connects to the
same URL and runs several tasks; the processes start writing together, behind a barrier.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
from typing import Any

import pytest

import eventstore_core as es
from eventstore_conformance.harness import StoreContext, budget, requires, store_test
from eventstore_conformance.observers import check_streams, watch_while_writing
from eventstore_conformance.workers import Committed, WriterSpec, process_writer

PROCESSES = 3
TASKS = 4
APPENDS = 7
START_TIMEOUT = 120.0


async def _run_processes(url: str, specs: list[WriterSpec]) -> list[Committed]:
    """Start one writer process per spec, wait for all, return every committed append."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(specs) + 1)
    results: Any = context.Queue()
    processes = [
        context.Process(
            target=process_writer,
            args=(url, spec, barrier, results),
            name=f"eventstore-conformance-{spec.name}",
            daemon=True,
        )
        for spec in specs
    ]
    for process in processes:
        process.start()
    try:
        # Every process has connected: release them together.
        await asyncio.to_thread(barrier.wait, budget(START_TIMEOUT))
        reports = []
        for _ in specs:
            try:
                reports.append(await asyncio.to_thread(results.get, True, budget(START_TIMEOUT)))
            except queue.Empty:
                pytest.fail("a writer process neither reported nor failed in time")
        for report in reports:
            if report[0] == "error":
                pytest.fail(f"writer process {report[1]} failed:\n{report[2]}")
        for process in processes:
            await asyncio.to_thread(process.join, budget(30))
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(5)
        results.close()
        results.join_thread()
    return [c for report in reports for c in report[2]]


def _specs(ctx: StoreContext, hot: str) -> list[WriterSpec]:
    return [
        WriterSpec(f"p{i}", ctx.category, hot, tasks=TASKS, appends=APPENDS)
        for i in range(PROCESSES)
    ]


@requires(shared_across_processes=True, concurrency="multi-writer")
@store_test
async def test_writer_processes_never_lose_a_version(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """3 processes x 4 tasks on one hot stream (exact and ANY versions): nothing lost."""
    hot = ctx.stream()
    committed = await _run_processes(ctx.url, _specs(ctx, hot))
    assert len(committed) == PROCESSES * TASKS * APPENDS
    await check_streams(store, committed)


@requires(shared_across_processes=True, concurrency="multi-writer")
@store_test
async def test_readers_miss_nothing_while_writer_processes_commit(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Two subscribers and a pager see every event of 3 writer processes once, in order."""
    hot = ctx.stream()
    readers = [store, await ctx.connect(), await ctx.connect()]
    marker = await ctx.marker()

    async def write() -> list[Committed]:
        return await _run_processes(ctx.url, _specs(ctx, hot))

    committed = await watch_while_writing(
        readers=readers,
        after=marker,
        category=ctx.category,
        write=write,
        total_order=ctx.capabilities.global_order == "total",
    )
    assert len(committed) == PROCESSES * TASKS * APPENDS
    await check_streams(store, committed)
