"""PostgreSQL under faults: cancelled calls stop on the server, a killed backend is a lost
connection (never a raw driver error), subscriptions outlive it, no stray-future noise, and
the xid gate says who holds readers back."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from eventstore_postgres import PostgresEventStore

import eventstore_core as es

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="session")
def pg_url(postgres_url: str) -> str:
    """The session's server (the conftest's ``postgres_url``)."""
    return postgres_url


@pytest.fixture
async def app() -> str:
    """An application_name of this test's own, to find its backends in pg_stat_activity."""
    return f"faults-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(pg_url: str, app: str) -> AsyncIterator[PostgresEventStore]:
    """A store in a fresh schema, with its own application_name."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(pg_url, schema=schema, application_name=app) as opened:
        assert isinstance(opened, PostgresEventStore)
        await opened.setup()
        yield opened


async def _until(condition: Any, within: float, what: str) -> None:
    # Poll a coroutine function until it returns true (bounded; no fixed sleep stands in for
    # the thing awaited).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_cancelled_append_stops_on_the_server_and_commits_nothing(
    store: PostgresEventStore, pg_url: str, app: str
) -> None:
    """Appends blocked on a lock and then cancelled end on the server at once: no backend
    keeps waiting (to exhaust max_connections), and none commits once the lock is gone."""
    schema = store.options.db_schema  # type: ignore[attr-defined]
    locker = await asyncpg.connect(pg_url)
    watcher = await asyncpg.connect(pg_url)

    async def waiting() -> int:
        count: int = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND wait_event_type = 'Lock'",
            app,
        )
        return count

    try:
        await locker.execute("BEGIN")
        await locker.execute(f'LOCK TABLE "{schema}".streams, "{schema}".events IN EXCLUSIVE MODE')
        events = [es.NewEvent("Blocked", {"i": i}) for i in range(5)]
        tasks = [
            asyncio.create_task(store.append(f"Blocked-{i}", [event]))
            for i, event in enumerate(events)
        ]

        async def all_waiting() -> bool:
            return await waiting() == len(tasks)

        await _until(all_waiting, 10, "the appends to wait on the lock")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        async def none_waiting() -> bool:
            return await waiting() == 0

        await _until(none_waiting, 5, "the cancelled appends to stop on the server")
    finally:
        await locker.execute("ROLLBACK")
        await locker.close()
        await watcher.close()
    stored = [e async for e in store.read_all()]
    assert stored == [], "a cancelled append committed after its lock was released"
    # And the store works as before.
    result = await store.append("After-1", [es.NewEvent("After", {})])
    assert result.version == 1


async def test_a_terminated_backend_is_a_lost_connection_never_a_raw_driver_error(
    store: PostgresEventStore, pg_url: str, app: str
) -> None:
    """``pg_terminate_backend`` on every connection of the store, again and again, while it
    appends: each call succeeds or raises ``BackendUnavailableError``, never another class."""
    killer = await asyncpg.connect(pg_url)
    others: list[BaseException] = []
    acked: list[es.NewEvent] = []

    async def writer(n: int) -> None:
        for i in range(40):
            event = es.NewEvent("W", {"n": n, "i": i})
            for _ in range(20):
                try:
                    await store.append(f"W-{n}", [event])
                    acked.append(event)
                    break
                except es.BackendUnavailableError:
                    continue
                except Exception as error:
                    others.append(error)
                    return

    async def kill() -> None:
        for _ in range(15):
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1",
                app,
            )
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(kill(), *(writer(n) for n in range(4)))
    finally:
        await killer.close()
    assert others == [], f"raw or unexpected errors escaped: {others[:3]!r}"
    stored = {e.id async for e in store.read_all()}
    assert {e.id for e in acked} <= stored


async def test_a_live_subscription_outlives_terminated_backends(
    store: PostgresEventStore, pg_url: str, app: str
) -> None:
    """Its connections killed under it while live, a subscription goes on and delivers every
    acknowledged event once, in order."""
    killer = await asyncpg.connect(pg_url)
    delivered: list[es.RecordedEvent] = []
    acked: list[uuid.UUID] = []
    done = asyncio.Event()

    async def consume() -> None:
        async with store.subscribe() as subscription:
            async for event in subscription:
                delivered.append(event)
                if event.type == "Last":
                    done.set()
                    return

    consumer = asyncio.create_task(consume())
    try:
        for i in range(60):
            event = es.NewEvent("Last" if i == 59 else "E", {"i": i})
            while True:
                try:
                    await store.append("Live-1", [event])
                    break
                except es.BackendUnavailableError:
                    continue
            acked.append(event.id)
            if i % 10 == 5:
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = $1",
                    app,
                )
        await asyncio.wait_for(done.wait(), 30)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await killer.close()
    assert [e.id for e in delivered] == acked


async def test_cancelling_a_subscription_while_it_connects_leaves_no_stray_future(
    store: PostgresEventStore,
) -> None:
    """Subscriptions closed at every moment of their LISTEN connection's start: no "Future
    exception was never retrieved" (nor any other) report reaches the loop's handler."""
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        for i in range(40):
            async with store.subscribe() as subscription:
                # Let the watcher start connecting, for a little longer each time.
                for _ in range(i):
                    await asyncio.sleep(0)
                del subscription
            await asyncio.sleep(0)
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.01)
    finally:
        loop.set_exception_handler(previous)
    assert reports == [], [r.get("message") for r in reports]


async def test_the_xid_gate_names_the_transaction_holding_readers_back(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A write transaction left open elsewhere holds every reader behind the xid gate; past
    ``xid_gate_warning`` seconds the store logs a warning naming that backend."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    holder = await asyncpg.connect(pg_url, server_settings={"application_name": "slow-batch"})
    async with es.connect(pg_url, schema=schema, xid_gate_warning=0.2) as store:
        await store.setup()
        try:
            await holder.execute("BEGIN")
            await holder.fetchval("SELECT pg_current_xact_id()")  # takes an xid: the gate holds
            pid = holder.get_server_pid()
            await store.append("Gate-1", [es.NewEvent("Held", {})])
            with caplog.at_level(logging.WARNING, logger="eventstore_postgres"):
                async with store.subscribe() as subscription:
                    reader = asyncio.create_task(anext(subscription))

                    async def warned() -> bool:
                        return any("slow-batch" in r.getMessage() for r in caplog.records)

                    await _until(warned, 10, "the xid gate warning")
                    assert not reader.done(), "the gate let the event through while held"
                    await holder.execute("ROLLBACK")
                    event = await asyncio.wait_for(reader, 10)
                    assert event.type == "Held"
        finally:
            if holder.is_in_transaction():
                await holder.execute("ROLLBACK")
            await holder.close()
    message = next(r.getMessage() for r in caplog.records if "slow-batch" in r.getMessage())
    assert str(pid) in message
