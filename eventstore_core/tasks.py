"""Background work the core runs for a backend: supervised tasks and the counter watcher.

A backend never starts a task of its own. It gives the core a coroutine function — its
``_background`` (from open to close: a log tailer, a LISTEN connection) or its ``_watch``
(only while a subscription is open) — and :class:`Supervised` runs it: started on demand,
restarted with backoff when it fails (logged, once per distinct failure), cancelled and
awaited by the core, so that nothing outlives the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from eventstore_core.errors import EventStoreError
from eventstore_core.retry import Backoff

__all__ = ["CounterWatcher", "Supervised"]

log = logging.getLogger("eventstore_core.tasks")


class Supervised:
    """One long-running coroutine, restarted with backoff whenever it fails.

    A coroutine that returns normally is done (it is not restarted). Restarts wait 0.05 s,
    doubling to ``max_delay``; a run that lasted longer than ``max_delay`` resets the delay.
    """

    def __init__(
        self, run: Callable[[], Awaitable[None]], name: str, *, max_delay: float = 5.0
    ) -> None:
        self._run = run
        self._name = name
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, not yet awaited

    @property
    def running(self) -> bool:
        """Whether the task exists and has not finished."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task unless it is running (no-op then)."""
        if not self.running:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    def cancel(self) -> None:
        """Ask the task to stop without waiting (safe from callbacks); start() may follow."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def stop(self) -> None:
        """Cancel the task and wait until it (and any cancelled before) has ended."""
        self.cancel()
        for task in list(self._stopping):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        backoff = Backoff(None, base=0.025, cap=self._max_delay, jitter=False)
        last_failure = ""
        while True:
            started = loop.time()
            try:
                await self._run()
                return
            except Exception as error:
                if me in self._stopping:
                    # Asked to stop, it failed instead of ending cancelled: the cancellation
                    # became this error on its way out (Python 3.11's TaskGroup merges a stop
                    # with a child's failure that is cancelling it already, and raises only
                    # the failure). Restarting here would lose the stop for good: a store's
                    # close() then waited forever.
                    return
                failure = f"{type(error).__name__}: {error}"
                if failure != last_failure:
                    log.warning("%s failed (%s); restarting it", self._name, failure)
                last_failure = failure
            if loop.time() - started > self._max_delay:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())


class CounterWatcher:
    """Poll a cheap counter every ``interval`` seconds; call ``notify`` when it changes.

    The shared ``_watch`` of backends whose storage has a change counter (SQLite's
    ``PRAGMA data_version``, DynamoDB's global position counter). The first reading notifies
    too: a commit may have landed between a subscription's last read and the watcher's start.
    A failing read is logged once per distinct failure; the subscription's own reads report
    a persistent problem.
    """

    def __init__(
        self,
        read: Callable[[], Awaitable[object]],
        notify: Callable[[], None],
        interval: float,
        what: str,
    ) -> None:
        self._read = read
        self._notify = notify
        self._interval = interval
        self._what = what

    async def run(self) -> None:
        """Watch until cancelled."""
        last: object = object()
        failing: str | None = None
        while True:
            try:
                current = await self._read()
            except EventStoreError as error:
                if str(error) != failing:
                    log.warning("reading %s failed: %s", self._what, error)
                failing = str(error)
            else:
                failing = None
                if current != last:
                    self._notify()
                last = current
            await asyncio.sleep(self._interval)
