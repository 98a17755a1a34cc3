"""Out-of-order commits: an append that commits after later ones is never skipped by a reader.

A store that assigns positions before commit (a sequence, a reserved counter) can commit
position 7 after 8; a reader that has moved past 8 by then must still get 7. Racing writers
meet that window only by chance, so this test needs the adapter's hold-commit hook
(:mod:`eventstore_conformance.faults`): it holds one append open after its positions were
assigned while later appends commit and readers read, then lets it commit.
"""

from __future__ import annotations

import asyncio

import pytest

import eventstore_core as es
from eventstore_conformance.faults import HoldCommit, NotApplicable, report_hold
from eventstore_conformance.harness import StoreContext, budget, new_events, store_test
from eventstore_conformance.observers import (
    Target,
    check_observed,
    observe_pages,
    observe_subscription,
)
from eventstore_conformance.workers import Committed

#: Seconds the held append stays open once a later append has committed (and at most, on a
#: store whose commits take turns), for readers to read past it if they would.
HOLD = 0.5
#: Appends committed (or queued) while the first one is held, each to its own stream.
LATER = 4


def _committed(stream: str, events: list[es.NewEvent], result: es.AppendResult) -> Committed:
    return Committed(stream, tuple(str(e.id) for e in events), result.version, str(result.position))


@store_test
async def test_no_reader_skips_events_committed_after_later_ones(
    store: es.EventStore,
    ctx: StoreContext,
    eventstore_hold_commit: HoldCommit | NotApplicable | None,
    request: pytest.FixtureRequest,
) -> None:
    """Hold one append after its positions are assigned; commit four later appends meanwhile;
    release it. Two live subscribers (one filtered) and a pager reading one event at a time,
    each on its own connection, see every event exactly once, in position order — none moves
    past the held events and misses them."""
    config, test = request.config, request.node.name
    hook = eventstore_hold_commit
    if hook is None:
        report_hold(
            config,
            test,
            "NOT RUN: no eventstore_hold_commit hook; out-of-order commits are untested "
            "(see the README of eventstore_conformance)",
        )
        pytest.skip("no eventstore_hold_commit hook is provided for this store")
    if isinstance(hook, NotApplicable):
        report_hold(config, test, f"not applicable: {hook.reason}")
        pytest.skip(f"holding a commit is not applicable: {hook.reason}")
    writer = await ctx.connect()
    readers = [await ctx.connect() for _ in range(3)]
    marker = await ctx.marker()
    target = Target(ctx.category)
    observed: dict[str, list[es.RecordedEvent]] = {
        "live subscriber": [],
        "filtered subscriber": [],
        "pager": [],
    }
    ready = [asyncio.Event(), asyncio.Event()]
    observers = [
        asyncio.ensure_future(
            observe_subscription(
                readers[0], marker, target, False, observed["live subscriber"], ready[0]
            )
        ),
        asyncio.ensure_future(
            observe_subscription(
                readers[1], marker, target, True, observed["filtered subscriber"], ready[1]
            )
        ),
        asyncio.ensure_future(observe_pages(readers[2], marker, target, 1, observed["pager"])),
    ]
    later: list[asyncio.Future[es.AppendResult]] = []
    try:
        async with asyncio.timeout(budget(10.0)):
            await asyncio.gather(*(r.wait() for r in ready))
        await asyncio.sleep(0.1)  # let the subscriptions catch up and wait for news
        held_stream = ctx.stream()
        held_events = new_events(2, held=True)
        later_writes = [(ctx.stream(), new_events(1)) for _ in range(LATER)]
        async with hook(store, held_stream, held_events) as held:
            later = [asyncio.ensure_future(writer.append(s, e)) for s, e in later_writes]
            if held.serialised:  # they wait for the held one: give them a moment to queue
                done, _ = await asyncio.wait(later, timeout=HOLD)
            else:  # wait until one committed (all, if they are quick), however slow the store
                done, _ = await asyncio.wait(
                    later, timeout=budget(10.0), return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    more, _ = await asyncio.wait(later, timeout=HOLD)
                    done |= more
            early = [task.result() for task in done]
            await asyncio.sleep(0.2)  # the readers read what is visible by now
        assert held.result is not None
        async with asyncio.timeout(budget(10.0)):
            results = await asyncio.gather(*later)
        committed = [
            _committed(held_stream, held_events, held.result),
            *(_committed(s, e, r) for (s, e), r in zip(later_writes, results, strict=True)),
        ]
        target.finish(committed)
        _, pending = await asyncio.wait(observers, timeout=budget(10.0))
        for task in observers:
            if task.done():
                task.result()  # an observer's own failure
    finally:
        for observer in observers:
            observer.cancel()
        for append in later:
            append.cancel()
        await asyncio.gather(*observers, *later, return_exceptions=True)
    total_order = ctx.capabilities.global_order == "total"
    try:
        for who, events in observed.items():
            check_observed(who, events, committed, total_order)
        assert not pending, "an observer did not finish although it saw every event"
    except AssertionError as error:
        report_hold(config, test, f"FAILED: {str(error).splitlines()[0]}")
        raise
    # Later appends that committed at greater positions while the held one was open: the
    # out-of-order commits this test is about (on a partitioned store, all that committed).
    reordered = [r for r in early if not total_order or r.position > held.result.position]
    if reordered:
        outcome = (
            f"passed: {len(reordered)} later append(s) committed at greater positions while the "
            "held one was open (out of order); no reader skipped the held events"
        )
    elif early:
        outcome = (
            "passed: the held append gave up its positions and took new ones after the later "
            "commits (a reservation voided while it was held); nothing was lost"
        )
    elif held.serialised:
        outcome = (
            "passed trivially: the store's commits take turns (later appends waited for the "
            "held one), so they cannot be out of order; nothing was lost"
        )
    else:
        pytest.fail("no later append committed while the held one was open")
    report_hold(config, test, outcome)
