"""The write path: every write transaction is one call in the writer's thread, grouped.

**One call per transaction.** ``BEGIN IMMEDIATE``, the version read, the insert and ``COMMIT``
run back to back in the writer thread, so no transaction can be left open by the caller:
a caller cancelled while its append waits in the queue is skipped (nothing is written); one
cancelled once its transaction started only stops waiting, and the transaction still ends
with COMMIT or ROLLBACK in the thread. Either way the next write starts on a clean connection.

**Group commit.** When several tasks of one store write at once, the thread takes every job
already queued (up to :data:`MAX_GROUP`) and runs them in one ``BEGIN IMMEDIATE`` transaction
with one COMMIT, one fsync with ``synchronous=FULL``, and one wake-up of the event loop. Each
append still makes its own version check, against the versions the appends before it leave
(the group behaves as if they ran one after the other), and gets its own answer: the
appends of a group run as one read of their streams' versions and a few multi-row INSERTs
(:func:`_append_together`); when that cannot decide for all of them (an id already stored
or used twice in the group, a value SQLite refuses), they run one by one, a multi-statement
append in a ``SAVEPOINT`` of its own, so one refusal never touches the others. The group is
whatever queued up while the previous transaction ran: a lone writer never waits for
company. Writes reach the thread a turn of the event loop at a time (:meth:`Writer.submit`),
so the tasks one commit wakes share the next.

**Multi-process safety** is unchanged: ``BEGIN IMMEDIATE`` takes the file's write lock before
anything is read, so the version check and the insert are atomic across processes too, and
the positions (rowids drawn under that lock) become visible in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from eventstore_core.adapter import (
    ExpectedVersion,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    Written,
    category_of,
    expected_range,
    now_micros,
)

from ._errors import as_library_error, translate
from ._events import StoredEvent
from ._schema import EVENT_COLUMNS, INSERT_EVENT, SCHEMA, STREAM_VERSION
from ._thread import STOP, ConnectionThread, Job

__all__ = ["BACKSTOP_CHECKPOINT_PAGES", "MAX_GROUP", "Writer"]

T = TypeVar("T")

#: The most jobs one transaction takes: bounds the latency a group adds to its first member.
MAX_GROUP = 64
#: About how many WAL pages the writer adds before it asks for a background checkpoint.
CHECKPOINT_PAGES = 1000
#: The writer's own automatic checkpoint, a backstop should the background one fall behind.
BACKSTOP_CHECKPOINT_PAGES = 8000


class Writer(ConnectionThread):
    """The store's one writing connection, in its own thread, committing in groups."""

    def __init__(
        self, name: str, connect: Callable[[], sqlite3.Connection], path: Path, busy_timeout: float
    ) -> None:
        super().__init__(name, connect, lambda error: as_library_error(error, path, busy_timeout))
        self._path = path
        self._busy_timeout = busy_timeout
        #: Group transactions committed so far (read by tests and benchmarks).
        self.commits = 0
        #: Where WAL checkpoints run, off the write path (see :meth:`_after_commit`).
        self.checkpointer: ConnectionThread | None = None
        self._unchecked_pages = 0
        self._checkpointing = False
        #: Jobs submitted during the current turn of the event loop, not yet handed over.
        self._pending: list[Job[Any]] = []

    def submit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        groupable: bool = False,
        single_statement: bool = False,
        rows: int = 1,
        append: Any = None,
    ) -> asyncio.Future[T]:
        """Queue ``fn(connection)``, handed to the thread with the rest of this loop turn's.

        Why not at once: the tasks a group commit settles all wake in one turn of the event
        loop and each submits its next write in it. Handed over one by one, the first woke
        the writer, which took the GIL at the loop's next system call (a ``uuid4``'s read of
        ``os.urandom`` is enough) and began a transaction with only the writes queued so far;
        the others then waited for that whole commit (an fsync with ``synchronous=FULL``),
        and groups alternated between one write and the rest. Measured with 4 writers and
        ``FULL``: 2.7 appends per commit, now 4.0. Handed over together, at the start of the
        loop's next turn, they share one transaction; a lone writer pays one loop turn.
        """
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(Job(fn, future, groupable, single_statement, rows, append))
        if len(self._pending) == 1:
            loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        pending, self._pending = self._pending, []
        for job in pending:  # SimpleQueue.put keeps the GIL: the thread sees them all at once
            self._jobs.put(job)

    async def stop(self) -> None:
        """Hand over what this turn submitted, then stop as every connection thread does."""
        self._hand_over()
        await super().stop()

    # -- what the store submits --------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected: ExpectedVersion
    ) -> asyncio.Future[Written | Refused]:
        """Queue an append; the future gets :class:`Written` or :class:`Refused`."""
        return self.submit(
            lambda conn: _append(conn, stream_id, events, expected),
            groupable=True,
            single_statement=len(events) == 1,
            rows=len(events),
            append=(stream_id, events, expected),
        )

    def save_checkpoint(self, name: str, position: int) -> asyncio.Future[None]:
        """Queue a checkpoint upsert (it may share a transaction with appends)."""

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            )

        return self.submit(save, groupable=True, single_statement=True)

    def save_snapshot(self, snapshot: Snapshot, data: bytes) -> asyncio.Future[None]:
        """Queue a snapshot upsert; the highest version wins."""

        def save(conn: sqlite3.Connection) -> None:
            # A slow writer must not replace a newer snapshot.
            conn.execute(
                "INSERT INTO snapshots (stream_id, version, type, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
                "type = excluded.type, data = excluded.data "
                "WHERE excluded.version >= snapshots.version",
                (snapshot.stream_id, snapshot.version, snapshot.type, data),
            )

        return self.submit(save, groupable=True, single_statement=True)

    def setup(self) -> asyncio.Future[None]:
        """Queue the creation of the tables (a transaction of its own)."""

        def create(conn: sqlite3.Connection) -> None:
            self._begin(conn)
            try:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return self.submit(create)

    # -- in the thread -----------------------------------------------------------------------

    def serve(self, conn: sqlite3.Connection) -> None:
        jobs = self._jobs
        held: list[Job[Any] | None] = []
        while True:
            job = held.pop() if held else jobs.get()
            if job is STOP:
                return
            if not job.groupable:
                self.run_alone(conn, job)
                continue
            # Everything already queued joins this transaction: no waiting for company.
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    more = jobs.get_nowait()
                except queue.Empty:
                    break
                if more is STOP or not more.groupable:
                    held.append(more)  # runs (or stops the thread) right after this group
                    break
                group.append(more)
            self._run_group(conn, [job for job in group if job.wanted])

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``busy_timeout`` for another process's lock.

        The writer's connection has SQLite's busy timeout off, and waits here instead: SQLite's
        handler sleeps 1, 2, 5, 10 ... up to 100 ms between tries, far longer than another
        process's append holds the lock (a fraction of a millisecond), so writer processes
        sharing a file spent most of their time asleep. Trying again after 50 us, doubling
        up to 1 ms, hands the lock over as soon as it is free.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
        deadline = time.monotonic() + self._busy_timeout
        delay = 5e-5
        while True:
            time.sleep(delay)  # releases the GIL: the event loop runs on meanwhile
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() >= deadline:
                    raise
            delay = min(delay * 2, 1e-3)

    def _run_group(self, conn: sqlite3.Connection, group: list[Job[Any]]) -> None:
        if not group:
            return
        try:
            self._begin(conn)
        except sqlite3.Error as error:
            # Nothing began (typically: another process held the lock beyond busy_timeout).
            failure = self.translate(error)
            self.settle([(job.future, None, failure) for job in group])
            return
        # The lock may have taken a while (another process): a caller that gave up meanwhile
        # is dropped now, before anything of its is written.
        group = [job for job in group if job.wanted]
        outcomes: list[tuple[Any, Any, BaseException | None]] = []
        try:
            appends = [job for job in group if job.append is not None]
            together = _append_together(conn, appends) if appends else None
            if together is not None:
                outcomes.extend(together)
            one_by_one = [job for job in group if together is None or job.append is None]
            for job in one_by_one:
                savepoint = not job.single_statement
                if savepoint:
                    conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as error:
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back (e.g. disk full)
                    # Only this job is undone (by SQLite itself for a single statement); the
                    # others of the group go on.
                    if savepoint:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    outcomes.append((job.future, None, self.translate(error)))
                else:
                    if savepoint:
                        conn.execute("RELEASE job")
                    outcomes.append((job.future, result, None))
        except Exception as error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = self.translate(error)
            self.settle([(job.future, None, failure) for job in group])
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            # Whether a failed COMMIT reached the disk is unknown: the callers must be told.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            failure = translate(error, self._path, self._busy_timeout, maybe_applied=True)
            self.settle([(job.future, None, failure) for job in group])
            return
        self.commits += 1
        self.settle(outcomes)
        self._after_commit(sum(job.rows for job in group))

    def _after_commit(self, rows: int) -> None:
        """Have the checkpointer copy the WAL into the database once it has grown.

        SQLite's own automatic checkpoint runs inside the COMMIT that crosses its threshold:
        the writer (and every append queued behind it) then waits for a copy of the WAL and,
        even with ``synchronous=NORMAL``, its fsyncs, milliseconds every few hundred commits;
        measured, that was most of a single-event append's mean commit time (mean 93 us,
        median 28 us). A ``PASSIVE`` checkpoint in another thread runs beside the writer.
        The writer's own automatic checkpoint stays on at a higher threshold, as a backstop.
        """
        checkpointer = self.checkpointer
        if checkpointer is None:
            return
        # A page per table and index touched, plus about a page per row of the random
        # event_id index: an estimate, only used to space the checkpoints.
        self._unchecked_pages += 4 + rows
        if self._unchecked_pages < CHECKPOINT_PAGES or self._checkpointing:
            return
        self._unchecked_pages = 0
        self._checkpointing = True

        def checkpoint(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                self._checkpointing = False

        checkpointer.post(checkpoint)


def _busy(error: sqlite3.OperationalError) -> bool:
    # SQLITE_BUSY and its extended codes: another connection holds the lock.
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _append(
    conn: sqlite3.Connection,
    stream_id: str,
    events: Sequence[PreparedEvent],
    expected: ExpectedVersion,
) -> Written | Refused:
    """Check and write one append inside the current transaction (and its savepoint)."""
    version: int = conn.execute(STREAM_VERSION, (stream_id,)).fetchall()[0][0]
    lo, hi = expected_range(expected)
    if not lo <= version <= hi:
        # Stored ids decide first (an idempotent retry of a stale append): look them up.
        return _refusal(conn, events, version)
    now = now_micros()
    category = category_of(stream_id)
    first, last = version + 1, version + len(events)
    try:
        if len(events) == 1:
            event = events[0]
            cursor = conn.execute(
                INSERT_EVENT,
                (
                    stream_id,
                    first,
                    event.id.bytes,
                    event.type,
                    category,
                    event.data,
                    event.metadata,
                    event.correlation_id,
                    event.causation_id,
                    now,
                    first,
                    last,
                ),
            )
            position = cursor.lastrowid
        else:
            conn.executemany(
                INSERT_EVENT,
                [
                    (
                        stream_id,
                        v,
                        event.id.bytes,
                        event.type,
                        category,
                        event.data,
                        event.metadata,
                        event.correlation_id,
                        event.causation_id,
                        now,
                        first,
                        last,
                    )
                    for v, event in zip(itertools.count(first), events)
                ],
            )
            position = conn.execute("SELECT last_insert_rowid()").fetchall()[0][0]
    except sqlite3.IntegrityError:
        # An event id is stored already (UNIQUE). A failed single INSERT undid itself; the
        # rows executemany wrote before the failing one are undone by the job's savepoint.
        if len(events) > 1:
            conn.execute("ROLLBACK TO job")
        return _refusal(conn, events, version)
    assert position is not None
    return Written(version=last, position=Position((position,)))


def _refusal(conn: sqlite3.Connection, events: Sequence[PreparedEvent], version: int) -> Refused:
    """What the core needs to decide: the version, and the stored rows sharing the ids."""
    ids = [event.id.bytes for event in events]
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS}, batch_first, batch_last FROM events "
        f"WHERE event_id IN ({','.join('?' * len(ids))}) ORDER BY position",
        ids,
    ).fetchall()
    existing: list[RecordedEvent] = [StoredEvent.from_row(row) for row in rows]
    bounds = {UUID(bytes=row[3]): (row[10], row[11]) for row in rows}
    return Refused(version, existing, bounds)


# Rows per INSERT statement: powers of two, so that a few statements (kept prepared in the
# connection's statement cache) cover any count; 512 rows of 12 values stay well below
# SQLite's limit of 32,766 parameters per statement.
_CHUNKS = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_HEAD = INSERT_EVENT[: INSERT_EVENT.index("VALUES")]
_INSERT_ROWS = {n: f"{_INSERT_HEAD}VALUES {', '.join([_ROW] * n)}" for n in _CHUNKS}


def _stream_versions(conn: sqlite3.Connection, streams: list[str]) -> dict[str, int]:
    """The versions of several streams, in one statement and one row."""
    # A scalar subquery per stream: each is one seek in the (stream_id, version) index, where
    # GROUP BY would walk every version of each stream.
    columns = ", ".join(
        ["(SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?)"] * len(streams)
    )
    row = conn.execute(f"SELECT {columns}", streams).fetchall()[0]
    return dict(zip(streams, row, strict=True))


def _append_together(
    conn: sqlite3.Connection, jobs: list[Job[Any]]
) -> list[tuple[Any, Any, BaseException | None]] | None:
    """Run a group's appends with a handful of statements, whatever their number.

    Why: every statement the thread runs gives up the GIL while SQLite works and must take it
    back after, and while the event loop is busy (many writers) each taking back can wait
    for the interpreter's switch interval (5 ms). Statement by statement, a group of 16
    single-event appends ran at a third of the rate of a group of 4. Here a group costs one
    read of all its streams' versions and one multi-row INSERT per chunk of rows.

    The checks are those of appending one after the other: each append sees the versions the
    ones before it leave. None when this cannot decide for the whole group (an id used twice
    in it, a value SQLite refuses, a stored id): the caller then runs the appends one by one,
    each in its own savepoint, and each gets its own answer.
    """
    versions = _stream_versions(conn, list(dict.fromkeys(job.append[0] for job in jobs)))
    now = now_micros()
    params: list[Any] = []
    planned: list[tuple[Job[Any], int, int]] = []  # (job, version before, rows so far)
    seen: set[bytes] = set()
    rows = base = 0
    for job in jobs:
        stream_id, events, expected = job.append
        version = versions[stream_id]
        lo, hi = expected_range(expected)
        if not lo <= version <= hi:
            planned.append((job, version, -1))  # refused: described after the insert
            continue
        ids = [event.id.bytes for event in events]
        if not seen.isdisjoint(ids):
            return None
        seen.update(ids)
        category = category_of(stream_id)
        first, last = version + 1, version + len(events)
        for v, event, event_id in zip(itertools.count(first), events, ids):
            params += (
                stream_id,
                v,
                event_id,
                event.type,
                category,
                event.data,
                event.metadata,
                event.correlation_id,
                event.causation_id,
                now,
                first,
                last,
            )
        versions[stream_id] = last
        rows += len(events)
        planned.append((job, version, rows))
    if rows:
        several = rows not in _INSERT_ROWS
        if several:
            conn.execute("SAVEPOINT together")
        try:
            done = 0
            while done < rows:
                chunk = next(n for n in _CHUNKS if n <= rows - done)
                cursor = conn.execute(_INSERT_ROWS[chunk], params[done * 12 : (done + chunk) * 12])
                done += chunk
        except Exception:
            if not conn.in_transaction:
                raise
            if several:
                conn.execute("ROLLBACK TO together")
                conn.execute("RELEASE together")
            return None  # a single statement undid itself
        if several:
            conn.execute("RELEASE together")
        # The rowids of one transaction's inserts are consecutive (each the largest plus one).
        assert cursor.lastrowid is not None
        base = cursor.lastrowid - rows
    outcomes: list[tuple[Any, Any, BaseException | None]] = []
    for job, version, end in planned:
        events = job.append[1]
        if end < 0:
            # After the insert: an id this append shares with an earlier one of the group is
            # found, as it would be had they run one after the other.
            outcomes.append((job.future, _refusal(conn, events, version), None))
        else:
            written = Written(version=version + len(events), position=Position((base + end,)))
            outcomes.append((job.future, written, None))
    return outcomes
