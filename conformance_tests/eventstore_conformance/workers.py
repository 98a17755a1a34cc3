"""Writer workloads for the concurrency tests, in tasks or in separate processes.

The process tests start writers with ``multiprocessing``'s *spawn* context, which imports this
module in a fresh interpreter: everything a child runs is a top-level function here, and
everything it receives and returns is picklable (plain tuples, strings, ints).

A writer appends small batches, alternating between an exact expected version on a stream
every writer shares (re-reading the version and retrying on ``ConcurrencyError``), ``ANY`` on
that shared stream, and an exact expected version on a stream of its own. It reports every
append that succeeded, so the test knows exactly which events were committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import traceback
from typing import Any, Protocol

import eventstore_core as es

__all__ = [
    "Committed",
    "WriterSpec",
    "process_writer",
    "run_writer",
]


@dataclasses.dataclass(frozen=True, slots=True)
class WriterSpec:
    """What one writer (a process, or a group of tasks) does."""

    name: str
    """Unique among the writers; names the writer's own streams."""
    category: str
    """The category of every stream written (the test's own)."""
    hot_stream: str
    """The stream every writer appends to (in ``category``)."""
    tasks: int
    """Concurrent tasks in this writer."""
    appends: int
    """Successful appends per task."""


@dataclasses.dataclass(frozen=True, slots=True)
class Committed:
    """One successful append: the stream, the batch's event ids (str), the result."""

    stream_id: str
    event_ids: tuple[str, ...]
    version: int
    position: str
    """``str(result.position)``: positions cross process boundaries as tokens."""


class _Barrier(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...


class _Queue(Protocol):
    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None: ...


async def _append_retrying(
    store: es.EventStore,
    stream: str,
    batch: list[es.NewEvent],
    expected: es.ExpectedVersion | None,
) -> tuple[es.AppendResult, int]:
    """Append ``batch``; ``expected=None`` means "the exact current version", re-read on conflict.

    A lost connection is retried with the same batch (idempotent), so the event is committed
    exactly once. Returns the result and how many conflicts were retried.
    """
    conflicts = 0
    unavailable = 0
    while True:
        version: es.ExpectedVersion = (
            await store.stream_version(stream) if expected is None else expected
        )
        try:
            return await store.append(stream, batch, expected_version=version), conflicts
        except es.ConcurrencyError:
            if expected is not None:
                raise
            conflicts += 1
        except es.BackendUnavailableError:
            unavailable += 1
            if unavailable > 20:
                raise
            await asyncio.sleep(0.05 * unavailable)


async def run_writer(stores: list[es.EventStore], spec: WriterSpec) -> tuple[list[Committed], int]:
    """Run ``spec.tasks`` writer tasks over ``stores`` (round robin); report what committed."""
    committed: list[Committed] = []
    conflicts = 0

    async def task(index: int) -> None:
        nonlocal conflicts
        store = stores[index % len(stores)]
        own = f"{spec.category}-{spec.name}t{index}"
        for n in range(spec.appends):
            size = 1 + (index + n) % 3
            batch = [
                es.NewEvent("Written", {"writer": spec.name, "task": index, "n": n, "i": i})
                for i in range(size)
            ]
            mode = (index + n) % 3
            if mode == 0:
                stream, expected = spec.hot_stream, None  # exact version, retried
            elif mode == 1:
                stream, expected = spec.hot_stream, es.ANY
            else:
                stream, expected = own, None
            result, retried = await _append_retrying(store, stream, batch, expected)
            conflicts += retried
            committed.append(
                Committed(
                    stream, tuple(str(e.id) for e in batch), result.version, str(result.position)
                )
            )

    await asyncio.gather(*(task(i) for i in range(spec.tasks)))
    return committed, conflicts


async def _process_main(
    url: str, spec: WriterSpec, barrier: _Barrier
) -> tuple[list[Committed], int]:
    async with es.connect(url) as store:
        # Start writing together with the other processes, once everyone has connected.
        await asyncio.to_thread(barrier.wait, 120)
        return await run_writer([store], spec)


def process_writer(url: str, spec: WriterSpec, barrier: _Barrier, results: _Queue) -> None:
    """Entry point of a writer process: connect to ``url``, write, put the report on ``results``.

    Puts ``("ok", name, committed, conflicts)`` or ``("error", name, traceback)``.
    """
    try:
        committed, conflicts = asyncio.run(_process_main(url, spec, barrier))
    except BaseException:
        results.put(("error", spec.name, traceback.format_exc()))
        raise
    results.put(("ok", spec.name, committed, conflicts))
