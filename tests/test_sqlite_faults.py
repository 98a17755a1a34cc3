"""SQLite under cancellation and contention: nothing half-written, nothing stuck, nothing lost."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest
from eventstore_sqlite import SQLiteEventStore

import eventstore_core as es


def _event(kind: str = "Happened") -> es.NewEvent:
    return es.NewEvent(kind, {"n": 1})


async def _opened(path: Path, **options: object) -> SQLiteEventStore:
    store = es.connect(f"sqlite:///{path}", **options)
    assert isinstance(store, SQLiteEventStore)
    await store.open()
    await store.setup()
    return store


class _WriteLock:
    """Another process's writer, as SQLite sees it: a connection holding the write lock."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> _WriteLock:
        self._conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.execute("COMMIT")
        self._conn.close()


async def test_random_cancellation_of_writes_leaves_a_working_store_and_loses_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cancel.db"
    store = await _opened(path)
    rng = random.Random(1409)
    acknowledged: list[es.RecordedEvent | es.AppendResult] = []
    cancelled = 0
    try:
        for n in range(400):
            # Timeouts from 0 (cancelled before the job is queued) to past the commit.
            timeout = rng.choice((0, 0, 1e-5, 1e-4, 5e-4, 2e-3))
            stream = f"Cancel-{n % 7}"
            kind = rng.random()
            if kind < 0.7:
                work = store.append(stream, [_event(), _event()])
            elif kind < 0.85:
                work = store.save_checkpoint("progress", f"{n + 1}")
            else:
                work = store.save_snapshot(es.Snapshot(stream, n + 1, "State", {"n": n}))
            try:
                result = await asyncio.wait_for(work, timeout)
            except TimeoutError:
                cancelled += 1
                continue
            if isinstance(result, es.AppendResult):
                acknowledged.append(result)
        assert cancelled > 50, "the timeouts should cancel a good share of the writes"

        # The writer is not stuck in a transaction: it appends, and so does another
        # connection, at once (a lock left held would make it wait, then fail).
        await store.append("Cancel-after", [_event()], es.NO_STREAM)
        other = await _opened(path, busy_timeout=2)
        try:
            await other.append("Cancel-other", [_event()], es.NO_STREAM)
        finally:
            await other.close()
        await store.save_checkpoint("final", "123")
        await store.save_snapshot(es.Snapshot("Cancel-0", 10_000, "State", {"final": True}))
    finally:
        await store.close()

    # Everything acknowledged was committed, and survives the close.
    async with es.connect(f"sqlite:///{path}") as reopened:
        stored = {event.position: event async for event in reopened.read_all()}
        for result in acknowledged:
            assert isinstance(result, es.AppendResult)
            assert stored[result.position].version == result.version
        # Appends are whole: every stream holds complete two-event batches.
        for n in range(7):
            versions = [e.version async for e in reopened.read_stream(f"Cancel-{n}")]
            assert versions == list(range(1, len(versions) + 1))
            assert len(versions) % 2 == 0
        assert await reopened.load_checkpoint("final") == es.Position.parse("123")
        snapshot = await reopened.load_snapshot("Cancel-0")
        assert snapshot is not None
        assert snapshot.data == {"final": True}
        assert await reopened.stream_version("Cancel-other") == 1


async def test_an_append_cancelled_while_waiting_for_the_lock_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lock.db"
    store = await _opened(path)
    try:
        with _WriteLock(path):
            waiting = asyncio.ensure_future(store.append("Locked-1", [_event()]))
            # The writer thread is now inside BEGIN IMMEDIATE, waiting for the lock.
            await asyncio.sleep(0.2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        # The lock is free again: the cancelled append is dropped, the next one goes through.
        result = await store.append("Locked-2", [_event()], es.NO_STREAM)
        assert result.version == 1
        assert await store.stream_version("Locked-1") == 0
    finally:
        await store.close()


async def test_appends_queued_together_commit_in_one_transaction_each_with_its_own_outcome(
    tmp_path: Path,
) -> None:
    path = tmp_path / "group.db"
    store = await _opened(path)
    try:
        original = [_event("Original")]
        first = await store.append("Group-retry", original, es.NO_STREAM)
        taken = await store.append("Group-taken", [_event()], es.NO_STREAM)
        assert store._writer is not None
        commits = store._writer.commits
        with _WriteLock(path):
            # Everything below queues behind the held lock, so it lands in (at most) two
            # transactions: the job the writer took first, and all the rest together.
            racers = [store.append("Group-hot", [_event()], es.NO_STREAM) for _ in range(8)]
            loners = [store.append(f"Group-{n}", [_event(), _event()]) for n in range(8)]
            retry = store.append("Group-retry", original, es.NO_STREAM)
            stale = store.append("Group-taken", [_event()], es.NO_STREAM)
            reused = store.append("Group-other", [_event(), original[0]])
            checkpoint = store.save_checkpoint("group", "7")
            alone = store.append("Group-alone", [original[0]])
            gathered = asyncio.gather(
                *racers, *loners, retry, stale, reused, checkpoint, alone, return_exceptions=True
            )
            await asyncio.sleep(0.1)
        outcomes = await gathered
        assert store._writer.commits - commits <= 2

        hot = outcomes[:8]
        assert sum(isinstance(o, es.AppendResult) for o in hot) == 1
        assert sum(isinstance(o, es.ConcurrencyError) for o in hot) == 7
        for outcome in outcomes[8:16]:
            assert isinstance(outcome, es.AppendResult)
            assert outcome.version == 2
        # The idempotent retry returns the original result; the others fail alone.
        assert outcomes[16] == first
        assert isinstance(outcomes[17], es.ConcurrencyError)
        assert isinstance(outcomes[18], es.DuplicateEventIdError)
        assert outcomes[19] is None
        assert isinstance(outcomes[20], es.DuplicateEventIdError)
        assert await store.stream_version("Group-hot") == 1
        assert await store.stream_version("Group-taken") == taken.version
        assert await store.stream_version("Group-other") == 0
        assert await store.stream_version("Group-alone") == 0
        assert await store.load_checkpoint("group") == es.Position.parse("7")
        # Positions stay unique and in commit order across the group.
        positions = [event.position async for event in store.read_all()]
        assert positions == sorted(set(positions))
    finally:
        await store.close()


def _blocking_work_that_releases_the_gil() -> None:
    # Not a wait for anything: 20 ms in which the loop's thread does not hold the GIL, time
    # enough for the writer's thread to take it and commit whatever reached it.
    time.sleep(0.02)


async def test_writes_submitted_in_one_turn_of_the_loop_share_one_commit(tmp_path: Path) -> None:
    # The tasks a commit wakes all run in one turn of the event loop and each submits its next
    # write there. Between two of them the loop's thread may release the GIL (any system
    # call: a uuid4's read of os.urandom); that used to let the writer begin a transaction
    # with the first write alone, and the others waited for a whole commit (an fsync).
    store = await _opened(tmp_path / "turn.db")
    try:
        assert store._writer is not None
        commits = store._writer.commits

        async def append(n: int) -> es.AppendResult:
            _blocking_work_that_releases_the_gil()
            return await store.append(f"Turn-{n}", [_event()], es.NO_STREAM)

        results = await asyncio.gather(*(append(n) for n in range(4)))
        assert store._writer.commits - commits == 1
        positions = [result.position for result in results]
        assert positions == sorted(set(positions))  # in the order they were submitted
    finally:
        await store.close()


async def test_ids_reused_inside_one_group_are_decided_as_if_one_after_the_other(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reuse.db"
    store = await _opened(path)
    try:
        shared = _event("Shared")
        batch = [_event("First"), _event("Second")]
        with _WriteLock(path):
            work = asyncio.gather(
                store.append("Reuse-a", [shared]),
                store.append("Reuse-b", [shared]),  # the same id, another stream
                store.append("Reuse-c", batch),
                store.append("Reuse-c", batch),  # a retry of the batch just before it
                store.append("Reuse-d", [es.NewEvent("T", {}, correlation_id="\udc80")]),
                store.append("Reuse-e", [_event()], es.NO_STREAM),
                return_exceptions=True,
            )
            await asyncio.sleep(0.1)
        a, b, c, c_again, bad, e = await work
        assert isinstance(a, es.AppendResult)
        assert isinstance(b, es.DuplicateEventIdError)
        assert isinstance(c, es.AppendResult)
        assert c_again == c
        assert isinstance(bad, es.InvalidEventError)
        assert isinstance(e, es.AppendResult)
        versions = {s: await store.stream_version(f"Reuse-{s}") for s in "abcde"}
        assert versions == {"a": 1, "b": 0, "c": 2, "d": 0, "e": 1}
        # Each result names its own last event.
        for result in (a, c, e):
            assert isinstance(result, es.AppendResult)
            (event,) = [
                x async for x in store.read_all(after=None) if x.position == result.position
            ]
            assert event.version == result.version
    finally:
        await store.close()


async def test_a_cancelled_member_of_a_group_does_not_disturb_the_others(
    tmp_path: Path,
) -> None:
    path = tmp_path / "member.db"
    store = await _opened(path)
    try:
        with _WriteLock(path):
            tasks = [
                asyncio.ensure_future(store.append(f"Member-{n}", [_event()])) for n in range(6)
            ]
            await asyncio.sleep(0.1)
            tasks[2].cancel()
            tasks[4].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for n, outcome in enumerate(done):
            if n in (2, 4):
                assert isinstance(outcome, asyncio.CancelledError)
            else:
                assert isinstance(outcome, es.AppendResult)
                assert await store.stream_version(f"Member-{n}") == 1
    finally:
        await store.close()


async def test_values_sqlite_cannot_hold_are_refused_cleanly_or_match_nothing(
    tmp_path: Path,
) -> None:
    store = await _opened(tmp_path / "limits.db")
    try:
        await store.append("Big-1", [_event()])
        huge = 2**63
        # Numbers past what the core accepts (versions up to 2**62, position parts up to
        # 2**63 - 1) are refused at the call, before SQLite sees them...
        with pytest.raises(es.InvalidEventError):
            store.read_stream("Big-1", from_version=huge)
        with pytest.raises(es.InvalidEventError):
            store.read_all(after=str(huge))
        with pytest.raises(es.InvalidEventError):
            await store.append("Big-2", [_event()], huge)
        # ...and the largest accepted ones answer cleanly.
        top = 2**62
        assert [e async for e in store.read_stream("Big-1", from_version=top)] == []
        backwards = [e.version async for e in store.read_stream("Big-1", top, True)]
        assert backwards == [1]
        assert [e async for e in store.read_all(after=str(huge - 1))] == []
        with pytest.raises(es.ConcurrencyError):
            await store.append("Big-2", [_event()], top)
        # Writes of such numbers are bad input, and nothing is stored.
        with pytest.raises(es.InvalidEventError):
            await store.save_checkpoint("big", str(huge * 2))
        assert await store.load_checkpoint("big") is None
        with pytest.raises(es.InvalidEventError):
            await store.save_snapshot(es.Snapshot("Big-1", huge, "State", {}))
        assert await store.load_snapshot("Big-1") is None
    finally:
        await store.close()


async def test_text_with_a_lone_surrogate_is_invalid_input_and_writes_nothing(
    tmp_path: Path,
) -> None:
    store = await _opened(tmp_path / "surrogate.db")
    try:
        with pytest.raises(es.InvalidEventError):
            await store.append("Text-1", [es.NewEvent("T", {}, correlation_id="\udc80")])
        with pytest.raises(es.InvalidEventError):
            await store.append("Text-1", [es.NewEvent("T", {}, causation_id="a\ud800")])
        assert await store.stream_version("Text-1") == 0
        with pytest.raises(es.InvalidEventError):
            [e async for e in store.read_all(filter=es.EventFilter(event_types=["\udc80"]))]
        # The store goes on working.
        assert (await store.append("Text-1", [_event()], es.NO_STREAM)).version == 1
    finally:
        await store.close()


async def test_a_lock_held_past_busy_timeout_fails_the_append_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = await _opened(path, busy_timeout=0.3)
    try:
        with _WriteLock(path):
            with pytest.raises(es.BackendUnavailableError, match="busy_timeout") as raised:
                await store.append("Busy-1", [_event()])
            assert raised.value.maybe_applied is False
        # Nothing was written, and the store works once the lock is free.
        assert await store.stream_version("Busy-1") == 0
        assert (await store.append("Busy-1", [_event()], es.NO_STREAM)).version == 1
    finally:
        await store.close()
