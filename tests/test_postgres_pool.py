"""The PostgreSQL adapter's connection pool, against a real server.

The pool is small on purpose (see ``eventstore_postgres._pool``); these tests pin down what it
must never get wrong: a connection is used by one caller at a time, a busy pool makes callers
wait (up to a timeout) instead of opening more, an interrupted connection is never reused, and
no slot is lost when a wait is cancelled or a connection cannot be opened.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from eventstore_conformance.harness import wait_for
from eventstore_postgres._pool import ConnectionPool, PoolTimeoutError

import eventstore_core as es

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Connector:
    """Opens real connections, counting them; can be told to fail."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[Any] = []
        self.fail = False

    async def __call__(self) -> Any:
        if self.fail:
            raise OSError("connection refused (test)")
        conn = await asyncpg.connect(self.url)
        self.opened.append(conn)
        return conn


@pytest.fixture
async def connector(postgres_url: str) -> AsyncIterator[Connector]:
    made = Connector(postgres_url)
    yield made
    for conn in made.opened:
        conn.terminate()


def _pool(
    connector: Connector, *, min_size: int = 0, max_size: int = 2, timeout: float = 5.0
) -> ConnectionPool:
    return ConnectionPool(connector, min_size=min_size, max_size=max_size, acquire_timeout=timeout)


async def _one_held_and_one_waiting(
    connector: Connector,
) -> tuple[ConnectionPool, Any, asyncio.Task[Any]]:
    """A pool of one connection, held by the caller, and a second caller waiting for it."""
    pool = _pool(connector, max_size=1)
    held = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    return pool, held, waiting


async def test_open_makes_min_size_connections(connector: Connector) -> None:
    pool = _pool(connector, min_size=2, max_size=3)
    await pool.open()
    assert (pool.size, pool.idle, len(connector.opened)) == (2, 2, 2)
    await pool.close()
    assert pool.size == 0
    assert all(conn.is_closed() for conn in connector.opened)


async def test_a_failed_open_closes_the_connections_it_made(connector: Connector) -> None:
    calls = 0

    async def flaky() -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("refused (test)")
        return await connector()

    pool = ConnectionPool(flaky, min_size=3, max_size=3, acquire_timeout=5)
    with pytest.raises(OSError):
        await pool.open()
    assert pool.size == 0
    assert all(conn.is_closed() for conn in connector.opened)


async def test_a_released_connection_is_reused_not_reopened(connector: Connector) -> None:
    pool = _pool(connector)
    first = await pool.acquire()
    pool.release(first)
    second = await pool.acquire()
    assert second is first
    assert len(connector.opened) == 1
    pool.release(second)
    await pool.close()


async def test_a_full_pool_makes_callers_wait_and_serves_them_in_turn(
    connector: Connector,
) -> None:
    pool = _pool(connector, max_size=2)
    in_use = 0
    most_in_use = 0
    served: list[int] = []

    async def caller(i: int) -> None:
        nonlocal in_use, most_in_use
        conn = await pool.acquire()
        in_use += 1
        most_in_use = max(most_in_use, in_use)
        try:
            await conn.fetchval("SELECT pg_sleep(0.01)")
            served.append(i)
        finally:
            in_use -= 1
            pool.release(conn)

    await asyncio.gather(*(caller(i) for i in range(12)))
    assert sorted(served) == list(range(12))
    assert most_in_use == 2
    assert len(connector.opened) == 2
    await pool.close()


async def test_waiting_longer_than_the_timeout_raises_pool_timeout(connector: Connector) -> None:
    pool = _pool(connector, max_size=1, timeout=0.2)
    held = await pool.acquire()
    with pytest.raises(PoolTimeoutError, match=r"no connection became free within 0\.2s"):
        await pool.acquire()
    pool.release(held)
    # The timed-out wait left nothing behind: the connection is handed out again at once.
    again = await asyncio.wait_for(pool.acquire(), 1)
    assert again is held
    pool.release(again)
    await pool.close()


async def test_a_cancelled_wait_loses_no_slot(connector: Connector) -> None:
    pool, held, waiting = await _one_held_and_one_waiting(connector)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pool.release(held)
    assert (pool.size, pool.idle) == (1, 1)
    pool.release(await pool.acquire())
    await pool.close()


async def test_a_connection_given_to_a_cancelled_waiter_goes_to_the_next(
    connector: Connector,
) -> None:
    pool = _pool(connector, max_size=1)
    held = await pool.acquire()
    first = asyncio.create_task(pool.acquire())
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    pool.release(held)  # handed to the first waiter, which is cancelled before it runs
    first.cancel()
    conn = await asyncio.wait_for(second, 1)
    assert conn is held
    pool.release(conn)
    assert (pool.size, pool.idle) == (1, 1)
    await pool.close()


async def test_an_interrupted_connection_is_cancelled_on_the_server_then_replaced(
    connector: Connector,
) -> None:
    pool = _pool(connector, max_size=1)
    conn = await pool.acquire()
    pid = conn.get_server_pid()
    query = asyncio.create_task(conn.fetchval("SELECT pg_sleep(10)"))
    await asyncio.sleep(0.1)
    query.cancel()
    with pytest.raises(asyncio.CancelledError):
        await query
    pool.release(conn, reusable=False)
    # The slot stays taken until the cancel request was acknowledged and the connection
    # closed: well before the 10 s sleep would have ended.
    fresh = await asyncio.wait_for(pool.acquire(), 5)
    assert conn.is_closed()
    assert fresh is not conn
    for _ in range(500):
        running = await fresh.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%'"
            " AND state = 'active'",
            pid,
        )
        if running == 0:
            break
        await asyncio.sleep(0.01)
    assert running == 0, "the interrupted statement kept running on the server"
    pool.release(fresh)
    await pool.close()


async def test_a_freed_slot_goes_to_a_waiter_which_opens_a_connection(
    connector: Connector,
) -> None:
    pool, held, waiting = await _one_held_and_one_waiting(connector)
    pool.release(held, reusable=False)
    conn = await asyncio.wait_for(waiting, 5)
    assert conn is not held
    assert not conn.is_closed()
    pool.release(conn)
    assert pool.size == 1
    await pool.close()


async def test_a_connection_that_cannot_be_opened_frees_its_slot(connector: Connector) -> None:
    pool = _pool(connector, max_size=1)
    connector.fail = True
    with pytest.raises(OSError):
        await pool.acquire()
    assert pool.size == 0
    connector.fail = False
    conn = await pool.acquire()
    pool.release(conn)
    await pool.close()


async def test_a_connection_left_in_a_transaction_is_not_handed_out(
    connector: Connector,
) -> None:
    pool = _pool(connector, max_size=1)
    conn = await pool.acquire()
    await conn.execute("BEGIN")
    pool.release(conn)
    assert conn.is_closed()
    fresh = await pool.acquire()
    assert not fresh.is_in_transaction()
    pool.release(fresh)
    await pool.close()


async def test_dead_idle_connections_are_skipped(connector: Connector) -> None:
    pool = _pool(connector, min_size=2, max_size=2)
    await pool.open()
    for conn in list(connector.opened):
        conn.terminate()
    conn = await pool.acquire()
    assert not conn.is_closed()
    assert await conn.fetchval("SELECT 1") == 1
    pool.release(conn)
    assert pool.size == 1
    await pool.close()


async def test_closing_fails_waiters_and_closes_busy_connections_on_release(
    connector: Connector,
) -> None:
    pool, held, waiting = await _one_held_and_one_waiting(connector)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError, match="pool is closed"):
        await waiting
    pool.release(held)
    assert held.is_closed()
    assert pool.size == 0
    with pytest.raises(asyncpg.InterfaceError, match="pool is closed"):
        await pool.acquire()


async def test_a_store_whose_pool_stays_busy_raises_backend_unavailable(
    postgres_url: str,
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(
        postgres_url, schema=schema, pool_max_size=1, connect_timeout=0.3
    ) as store:
        await store.setup()
        await store.append("Busy-1", [es.NewEvent("E", {})])
        # Hold the pool's only connection, as a long call would.
        pool = store._pool  # type: ignore[attr-defined]
        held = await pool.acquire()
        try:
            with pytest.raises(es.BackendUnavailableError) as caught:
                await store.append("Busy-1", [es.NewEvent("E", {})])
            assert caught.value.maybe_applied is False
            assert "no connection became free" in str(caught.value)
        finally:
            pool.release(held)
        assert [e.version async for e in store.read_stream("Busy-1")] == [1]


async def test_appends_cancelled_under_load_lose_nothing_and_leak_no_connection(
    postgres_url: str,
) -> None:
    """Cancel appends at random moments while others run; retry each with the same events.

    Whatever a cancellation interrupted (waiting for a connection, the statement in flight,
    the answer), the pool stays within its bounds with every connection back, and the
    retries leave every event exactly once.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(postgres_url, schema=schema, pool_max_size=4) as store:
        await store.setup()
        pool = store._pool  # type: ignore[attr-defined]
        batches = [
            [es.NewEvent("E", {"i": i, "j": j}) for j in range(1 + i % 3)] for i in range(60)
        ]

        async def append(i: int) -> None:
            await store.append(f"Load-{i % 6}", batches[i])

        tasks = [asyncio.create_task(append(i)) for i in range(60)]
        for delay_ms in range(0, 60, 2):
            await asyncio.sleep(0.002)
            tasks[delay_ms].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = [i for i, o in enumerate(outcomes) if isinstance(o, asyncio.CancelledError)]
        assert all(o is None or isinstance(o, asyncio.CancelledError) for o in outcomes)
        assert cancelled  # the test did interrupt something
        assert pool.size <= 4
        # Interrupted connections close once their cancel request was acknowledged (each
        # bounded by the pool's retire timeout), and the store's background NOTIFY after the
        # last commits holds a connection for a moment: every connection must come back (or
        # be closed), however long a loaded machine takes, and none may be lost.
        await wait_for(
            lambda: not pool.retiring and pool.idle == pool.size, 60, "every connection back"
        )

        for i in cancelled:  # a cancelled append may or may not have committed: retry it
            await append(i)
        stored = [e async for e in store.read_all()]
        assert sorted(e.id for e in stored) == sorted(e.id for b in batches for e in b)
        for stream in {f"Load-{i % 6}" for i in range(60)}:
            versions = [e.version async for e in store.read_stream(stream)]
            assert versions == list(range(1, len(versions) + 1))
