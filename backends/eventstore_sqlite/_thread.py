"""One ``sqlite3`` connection owned by one thread, driven from the event loop.

Why not aiosqlite: it hops to its thread and back for every statement, so an append (BEGIN,
the version read, the insert, the position, COMMIT) cost five or six thread switches and as
many event-loop wake-ups; profiled, the loop spent most of an append waiting in ``epoll`` for
those round trips. Here a whole unit of work (a read, a transaction) is one call run in the
thread: one hand-off there, one ``call_soon_threadsafe`` back.

The thread is a daemon: a close that never finishes (a second Ctrl-C during shutdown) cannot
keep the process alive. SQLite's own journal makes that safe: a transaction cut short by the
process exiting is rolled back when the file is next opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["STOP", "ConnectionThread", "Job"]

T = TypeVar("T")


class Job(Generic[T]):
    """A call to run in the connection's thread, and the future that receives its outcome."""

    __slots__ = ("append", "fn", "future", "groupable", "rows", "single_statement")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T],
        future: asyncio.Future[T] | None,
        groupable: bool = False,
        single_statement: bool = False,
        rows: int = 1,
        append: Any = None,
    ) -> None:
        self.fn = fn
        #: None for a job posted from another thread that nobody awaits.
        self.future = future
        #: Whether the writer may run it inside a transaction shared with other jobs.
        self.groupable = groupable
        #: Whether it writes with one statement at most: SQLite undoes a failed statement by
        #: itself, so such a job needs no savepoint of its own in a shared transaction.
        self.single_statement = single_statement
        #: Roughly how many rows it writes (the writer's estimate of the WAL's growth).
        self.rows = rows
        #: For an append, its arguments: the writer runs the appends of a group together.
        self.append = append

    @property
    def wanted(self) -> bool:
        """False once the caller has given up (cancelled) before the job started."""
        # Read from the connection's thread: a benign race. A job the caller cancels just as
        # it starts runs anyway, exactly as if the cancellation had come a moment later.
        return self.future is None or not self.future.done()


#: The sentinel that tells the thread to close its connection and end.
STOP = None


class ConnectionThread:
    """A daemon thread that opens a connection, runs jobs in order, and closes it on stop."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        translate: Callable[[BaseException], BaseException],
    ) -> None:
        self._name = name
        self._connect = connect
        #: Turns what a job raised (a sqlite3 error...) into what its caller sees.
        self.translate = translate
        self._jobs: queue.SimpleQueue[Job[Any] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._finished: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start the thread and open the connection in it; raise what opening raised."""
        loop = self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._finished = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(opened,), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await opened
        except BaseException:
            # Failed to open (the thread has ended) or cancelled while opening (it stops
            # once open): either way nothing is left running.
            await self.stop()
            raise

    def submit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        groupable: bool = False,
        single_statement: bool = False,
        rows: int = 1,
        append: Any = None,
    ) -> asyncio.Future[T]:
        """Queue ``fn(connection)``; its result or exception settles the future returned."""
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put(Job(fn, future, groupable, single_statement, rows, append))
        return future

    def post(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``fn(connection)`` from any thread, with nobody waiting for its outcome."""
        self._jobs.put(Job(fn, None))

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the thread and return its result."""
        return await self.submit(fn)

    async def stop(self) -> None:
        """Let queued jobs finish, close the connection and wait until the thread has ended."""
        thread, finished = self._thread, self._finished
        if thread is None or finished is None:
            return
        self._jobs.put(STOP)
        # ``finished`` is settled by the thread's very last step, through the loop. A second
        # Ctrl-C can raise KeyboardInterrupt inside that very callback and lose it, so the
        # wait also checks the thread itself now and then rather than trust the callback.
        while thread.is_alive() and not finished.done():
            await asyncio.wait([finished], timeout=0.05)
        # The thread has ended or is ending right now: this join is immediate, and afterwards
        # the thread is gone (no "stray thread" right after close()).
        thread.join()
        self._thread = None

    # -- in the thread ---------------------------------------------------------------------

    def _main(self, opened: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as error:
            self.settle([(opened, None, error)])
            self._drain_until_stop(error)
            self.settle([(self._finished, None, None)])
            return
        self.settle([(opened, None, None)])
        try:
            self.serve(conn)
        finally:
            conn.close()
            self.settle([(self._finished, None, None)])

    def _drain_until_stop(self, error: BaseException) -> None:
        # Opening failed: fail anything queued meanwhile, and end at the stop sentinel.
        while (job := self._jobs.get()) is not STOP:
            self.settle([(job.future, None, error)])

    def serve(self, conn: sqlite3.Connection) -> None:
        """Run jobs one at a time until the stop sentinel."""
        while (job := self._jobs.get()) is not STOP:
            self.run_alone(conn, job)

    def run_alone(self, conn: sqlite3.Connection, job: Job[Any]) -> None:
        """Run one job, unless its caller has given up, and settle its future."""
        if not job.wanted:
            return
        if job.future is None:
            with contextlib.suppress(Exception):  # nobody to tell; the next post tries again
                job.fn(conn)
            return
        try:
            result = job.fn(conn)
        except BaseException as error:
            self.settle([(job.future, None, self.translate(error))])
        else:
            self.settle([(job.future, result, None)])

    def settle(
        self, outcomes: list[tuple[asyncio.Future[Any] | None, Any, BaseException | None]]
    ) -> None:
        """Hand outcomes to the event loop in one wake-up (a whole group commit at once)."""
        loop = self._loop
        assert loop is not None
        # A closed loop (RuntimeError) means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[tuple[asyncio.Future[Any] | None, Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future is None or future.done():
            continue  # a caller that was cancelled: the others still get theirs
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
