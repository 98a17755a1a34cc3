"""Readers that watch the log while writers commit, and the checks made on what they saw.

Each observer runs as a task until the writers are done and it has seen every committed event
(or a deadline passes), then the test checks it saw each event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

import eventstore_core as es
from eventstore_conformance.harness import budget
from eventstore_conformance.workers import Committed

__all__ = [
    "Target",
    "check_observed",
    "check_streams",
    "observe_pages",
    "observe_subscription",
    "watch_while_writing",
]


@dataclasses.dataclass
class Target:
    """What the observers wait for: every id committed, once the writers are done."""

    category: str
    expected: set[str] | None = None
    """Set when the writers have finished: the ids of every committed event."""

    def finish(self, committed: Iterable[Committed]) -> None:
        """The writers are done: these appends committed."""
        self.expected = {event_id for c in committed for event_id in c.event_ids}

    def reached(self, seen: set[str]) -> bool:
        """Whether ``seen`` holds every committed id."""
        return self.expected is not None and self.expected <= seen


async def observe_subscription(
    store: es.EventStore,
    after: es.Position,
    target: Target,
    filtered: bool,
    seen: list[es.RecordedEvent],
    ready: asyncio.Event | None = None,
) -> None:
    """Subscribe after ``after``; collect into ``seen`` the category's events until all arrived.

    With ``filtered`` the subscription filters by category; otherwise it reads everything and
    this function keeps the category's events. ``ready`` is set once the subscription started.
    """
    ids: set[str] = set()
    event_filter = es.EventFilter(categories=[target.category]) if filtered else None

    async def consume() -> None:
        async with store.subscribe(after=after, filter=event_filter) as subscription:
            if ready is not None:
                ready.set()
            async for event in subscription:
                if event.category != target.category:
                    continue
                seen.append(event)
                ids.add(str(event.id))
                if target.reached(ids):
                    return

    consumer = asyncio.create_task(consume())
    try:
        while not consumer.done():
            if target.reached(ids):
                break
            await asyncio.wait([consumer], timeout=0.05)
        if consumer.done():
            consumer.result()
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def observe_pages(
    store: es.EventStore,
    after: es.Position,
    target: Target,
    limit: int,
    seen: list[es.RecordedEvent],
) -> None:
    """Page through ``read_all`` with ``limit`` and string tokens until every event was seen."""
    ids: set[str] = set()
    token = str(after)
    only_ours = es.EventFilter(categories=[target.category])
    while not target.reached(ids):
        page = [e async for e in store.read_all(after=token, filter=only_ours, limit=limit)]
        if not page:
            await asyncio.sleep(0.01)
            continue
        seen.extend(page)
        ids.update(str(e.id) for e in page)
        token = str(page[-1].position)


def check_observed(
    who: str, events: list[es.RecordedEvent], committed: list[Committed], total_order: bool
) -> None:
    """Assert ``events`` hold every committed event exactly once, each stream in order."""
    ids = [str(e.id) for e in events]
    duplicates = len(ids) - len(set(ids))
    assert not duplicates, f"{who}: {duplicates} event(s) delivered more than once"
    expected = {event_id for c in committed for event_id in c.event_ids}
    missing = expected - set(ids)
    assert not missing, f"{who}: {len(missing)} of {len(expected)} committed events never seen"
    extra = set(ids) - expected
    assert not extra, f"{who}: {len(extra)} event(s) seen that no writer reported as committed"
    if total_order:
        for before, after in itertools.pairwise(events):
            assert before.position < after.position, (
                f"{who}: position {after.position} delivered after {before.position}"
            )
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event.stream_id].append(event.version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), (
            f"{who}: stream {stream} versions out of order or with gaps: {seen[:20]}..."
        )
    last_of_batch = {c.event_ids[-1]: c for c in committed}
    for event in events:
        batch = last_of_batch.get(str(event.id))
        if batch is not None:
            assert event.position == es.Position.parse(batch.position), (
                f"{who}: event {event.id} read at {event.position}, append said {batch.position}"
            )
            assert event.version == batch.version


async def check_streams(store: es.EventStore, committed: list[Committed]) -> None:
    """Assert every stream holds exactly the committed batches, each contiguous, in order."""
    by_stream: dict[str, list[Committed]] = defaultdict(list)
    for c in committed:
        by_stream[c.stream_id].append(c)
    for stream, batches in by_stream.items():
        events = [e async for e in store.read_stream(stream)]
        versions = [e.version for e in events]
        assert versions == list(range(1, len(events) + 1)), f"{stream}: versions {versions[:20]}"
        total = sum(len(c.event_ids) for c in batches)
        assert len(events) == total, f"{stream}: {len(events)} events, {total} committed"
        assert await store.stream_version(stream) == total
        for c in batches:
            first = c.version - len(c.event_ids)
            got = [str(e.id) for e in events[first : c.version]]
            assert got == list(c.event_ids), (
                f"{stream}: the batch reported at version {c.version} is not stored contiguously"
            )


async def watch_while_writing(
    *,
    readers: list[es.EventStore],
    after: es.Position,
    category: str,
    write: Callable[[], Awaitable[list[Committed]]],
    total_order: bool,
    settle: float = 30.0,
) -> list[Committed]:
    """Run ``write()`` while subscribers and a pager read; check each saw everything once.

    ``readers`` are the stores to read through (round robin): an unfiltered subscription, a
    subscription filtered by ``category`` and a pager (``read_all`` with ``limit`` and string
    tokens). Each must, within ``settle`` seconds of the writers finishing, have seen every
    committed event exactly once, in order.
    """
    target = Target(category)
    observed: dict[str, list[es.RecordedEvent]] = {
        "live subscriber": [],
        "filtered subscriber": [],
        "pager": [],
    }
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [
        asyncio.create_task(
            observe_subscription(
                readers[0], after, target, False, observed["live subscriber"], ready[0]
            )
        ),
        asyncio.create_task(
            observe_subscription(
                readers[1 % len(readers)],
                after,
                target,
                True,
                observed["filtered subscriber"],
                ready[1],
            )
        ),
        asyncio.create_task(
            observe_pages(readers[2 % len(readers)], after, target, 7, observed["pager"])
        ),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), budget(settle))
        committed = await write()
        target.finish(committed)
        done, pending = await asyncio.wait(tasks, timeout=budget(settle))
        for task in done:
            task.result()  # an observer's own failure
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for who, events in observed.items():
        check_observed(who, events, committed, total_order)
    assert not pending, "an observer did not finish although it saw every event"
    return committed
