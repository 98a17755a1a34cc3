"""Optional fault hooks: what an adapter's test harness may give the suite to provoke faults.

The suite can only observe a store from outside. Some faults cannot be provoked from outside
at will — a commit that lands after later ones, for instance — so the suite asks the
adapter's test harness for a *hook*, through a fixture the harness overrides. Where no hook is
provided, the tests that need one skip and the terminal summary says so: nothing passes
silently.

This module is loaded with the plugin (``-p eventstore_conformance``). Each section below is
one hook; sections are independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import pytest

import eventstore_core as es

__all__ = [
    "HOLD_REPORT_KEY",
    "CommitGate",
    "HeldAppend",
    "HoldCommit",
    "HoldReport",
    "NotApplicable",
    "eventstore_hold_commit",
    "hold_append",
    "hold_summary",
    "not_applicable",
    "report_hold",
]


@dataclasses.dataclass(frozen=True)
class NotApplicable:
    """A hook the store has no use for, with the reason (reported in the summary)."""

    reason: str


def not_applicable(reason: str) -> NotApplicable:
    """Declare that a hook makes no sense for this store, and why."""
    if not reason.strip():
        raise ValueError("not_applicable needs a reason")
    return NotApplicable(reason)


# =============================================================================================
# Held commits: eventstore_hold_commit
# =============================================================================================
#
# A store whose global positions are assigned before commit (a sequence, a reserved counter)
# may commit position 7 after position 8 was committed and read. A reader that moves past 8
# then never sees 7 unless the store prevents it (PostgreSQL's snapshot gate, DynamoDB's
# filled reservations). Racing writers meet that window only by chance; the hook opens it on
# purpose: it holds one append open after its positions are assigned and before it commits,
# while later appends commit, and the suite checks that no reader, pager or subscriber skips
# the held events once they commit (test_out_of_order_commits.py).


@dataclasses.dataclass
class HeldAppend:
    """One append held by a :data:`HoldCommit` hook; ``result`` is set once it committed."""

    stream_id: str
    events: Sequence[es.NewEvent]
    result: es.AppendResult | None = None
    serialised: bool = False
    """True when the store's commits take turns (the hook holds their lock): later appends
    then wait for the held one, and the test does not wait for them to commit first."""


class HoldCommit(Protocol):
    """``hold(store, stream_id, events)``: an async context manager holding one append open.

    On entry it has started ``store.append(stream_id, events)`` *through the store's own write
    path* and returns once that append has its positions assigned and has not committed (the
    hook's business: an adapter seam, a proxied client, a lock held elsewhere); other appends,
    through this store or others, go on normally. On exit it lets the append commit, waits for
    it (failing the test if it does not finish within a few seconds) and sets
    :attr:`HeldAppend.result`. A store whose writers are serialised (a file lock) cannot
    commit out of order: its hook may hold the lock instead, and the test then checks only
    that nothing is lost (the summary says so).
    """

    def __call__(
        self, store: es.EventStore, stream_id: str, events: Sequence[es.NewEvent]
    ) -> AbstractAsyncContextManager[HeldAppend]: ...


@pytest.fixture
def eventstore_hold_commit() -> HoldCommit | NotApplicable | None:
    """The store's hold-commit hook (:class:`HoldCommit`); None by default.

    Override it in the adapter's ``conftest.py`` (or a plugin module loaded with ``-p``) to
    return a hook, or :func:`not_applicable` with the reason when appends can never be open
    while others commit (an in-process store whose appends do not await). With None the
    out-of-order-commit test skips and the terminal summary lists it as not run.
    """
    return None


class CommitGate:
    """The waiting point a hook puts between "positions assigned" and "commit".

    An adapter seam (or a proxied client) awaits :meth:`wait` at that point in the held
    append only; :func:`hold_append` sets :attr:`reached` and :attr:`released`.
    """

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.released = asyncio.Event()
        self.task: asyncio.Task[es.AppendResult] | None = None
        self._used = False

    def is_held(self) -> bool:
        """Whether the current task is the held append, not yet at its gate (a retry inside
        the adapter passes freely: only the first attempt is held)."""
        return self.task is not None and asyncio.current_task() is self.task and not self._used

    async def wait(self) -> None:
        """Called by the held append: report the point reached, wait for the release."""
        self._used = True
        self.reached.set()
        await self.released.wait()


@contextlib.asynccontextmanager
async def hold_append(
    store: es.EventStore,
    stream_id: str,
    events: Sequence[es.NewEvent],
    gate: CommitGate,
    *,
    within: float = 10.0,
    before: Callable[[], Awaitable[None]] | None = None,
    reached: Callable[[], Awaitable[None]] | None = None,
    release: Callable[[], Awaitable[None]] | None = None,
    serialised: bool = False,
) -> AsyncIterator[HeldAppend]:
    """Run ``store.append(stream_id, events)`` in a task, held at ``gate``; yield it held.

    The building block of a :data:`HoldCommit` hook: install the gate (make the adapter await
    ``gate.wait()`` when ``gate.is_held()``), then ``async with hold_append(...)``. By default
    entry waits for the append to reach the gate. A hook that holds something else (a lock)
    passes ``before`` (awaited before the append starts: take the lock), ``reached`` (awaited
    instead of the gate) and ``release`` (awaited on exit, before the append is awaited), and
    says ``serialised=True``. Every wait is bounded by ``within`` seconds.
    """
    held = HeldAppend(stream_id, list(events), serialised=serialised)
    if before is not None:
        async with asyncio.timeout(within):
            await before()
    task = asyncio.ensure_future(store.append(stream_id, events))
    gate.task = task
    try:
        async with asyncio.timeout(within):
            if reached is not None:
                await reached()
            else:
                waiting = asyncio.ensure_future(gate.reached.wait())
                try:
                    await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()
                if not gate.reached.is_set():
                    task.result()  # the append failed: raise its error
                    pytest.fail("the hold-commit hook let the append commit without holding it")
    except TimeoutError:
        task.cancel()
        pytest.fail(f"the hold-commit hook did not hold the append within {within}s")
    try:
        yield held
    finally:
        gate.released.set()
        if release is not None:
            await release()
        try:
            async with asyncio.timeout(within):
                held.result = await task
        except TimeoutError:
            task.cancel()
            pytest.fail(f"the held append did not commit within {within}s of its release")


@dataclasses.dataclass(frozen=True)
class HoldReport:
    """What one run of the out-of-order-commit test found (for the terminal summary)."""

    test: str
    outcome: str


#: Reports of the out-of-order-commit test, in run order.
HOLD_REPORT_KEY = pytest.StashKey[list[HoldReport]]()


def report_hold(config: pytest.Config, test: str, outcome: str) -> None:
    """Record what the out-of-order-commit test found, for the terminal summary."""
    config.stash.setdefault(HOLD_REPORT_KEY, []).append(HoldReport(test, outcome))


def hold_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Write the out-of-order-commit section of the terminal summary."""
    reports = terminalreporter.config.stash.get(HOLD_REPORT_KEY, [])
    if not reports:
        return
    terminalreporter.section("eventstore conformance: out-of-order commits")
    for report in reports:
        terminalreporter.write_line(f"{report.test}: {report.outcome}")
