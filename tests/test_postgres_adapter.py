"""PostgreSQL-specific behaviour the shared conformance suite cannot provoke portably.

All against a real server (eventstore_core/local/postgres.py): a slow transaction that commits after
later ones, writer processes, migrations run concurrently, reconnection after a server restart,
and the mapping of driver errors.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from eventstore_postgres import PostgresEventStore

import eventstore_core as es
from eventstore_core.local.postgres import EmbeddedPostgres, postgres_url

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's server: the conftest ``postgres_url`` fixture if there is one."""
    try:
        url: str = request.getfixturevalue("postgres_url")
    except pytest.FixtureLookupError:
        with postgres_url() as started:
            yield started
        return
    yield url


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresEventStore]:
    """A store in a fresh schema of its own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(pg_url, schema=schema, page_size=50) as opened:
        assert isinstance(opened, PostgresEventStore)
        await opened.setup()
        yield opened


def _events(n: int, type_: str = "Happened") -> list[es.NewEvent]:
    return [es.NewEvent(type_, {"i": i}) for i in range(n)]


async def _begin_slow_append(
    store: PostgresEventStore, url: str, stream_id: str
) -> tuple[asyncpg.Connection, Any, es.NewEvent]:
    """Open a transaction that takes its xid now and appends ``stream_id`` without committing.

    It uses the adapter's own append statement, so its row gets the small tx_id a slow writer
    would get; the caller commits it later, after other appends have committed.
    """
    conn = await asyncpg.connect(url)
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda b: b"\x01" + b,
        decoder=lambda b: b[1:],
        format="binary",
    )
    transaction = conn.transaction()
    await transaction.start()
    event = es.NewEvent("Slow", {"slow": True})
    rows = await conn.fetch(
        store._sql.append_from_zero,
        stream_id,
        0,
        2**62,
        1,
        [event.id],
        [event.type],
        [b'{"slow": true}'],
        [b"{}"],
        [None],
        [None],
    )
    assert len(rows) == 1
    return conn, transaction, event


async def test_slow_transaction_that_commits_last_is_delivered_first_and_nothing_is_skipped(
    store: PostgresEventStore, pg_url: str
) -> None:
    conn, transaction, slow_event = await _begin_slow_append(store, pg_url, "Slow-1")
    fast = [await store.append(f"Fast-{i}", _events(1)) for i in range(5)]

    # The later commits are held back by the gate while the older transaction is open, so a
    # reader cannot move its checkpoint past the slow event's position.
    assert [e async for e in store.read_all()] == []

    await transaction.commit()
    await conn.close()
    seen = [e async for e in store.read_all()]
    assert seen[0].id == slow_event.id
    assert [e.position for e in seen[1:]] == [r.position for r in fast]
    assert [e.position for e in seen] == sorted(e.position for e in seen)


async def test_subscription_waits_for_a_slow_transaction_then_delivers_everything_in_order(
    store: PostgresEventStore, pg_url: str
) -> None:
    await store.append("Before-1", _events(2))
    received: list[es.RecordedEvent] = []
    caught_up = asyncio.Event()

    async def consume() -> None:
        async with store.subscribe() as subscription:
            async for event in subscription:
                received.append(event)
                if len(received) == 2:
                    caught_up.set()
                if len(received) == 2 + 1 + 10:
                    return

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(caught_up.wait(), 10)
    conn, transaction, slow_event = await _begin_slow_append(store, pg_url, "Slow-2")
    for i in range(10):
        await store.append(f"Later-{i}", _events(1))
    await asyncio.sleep(0.3)
    assert len(received) == 2, "events committed after the slow one must wait for it"
    await transaction.commit()
    await conn.close()
    await asyncio.wait_for(consumer, 10)
    assert received[2].id == slow_event.id
    positions = [e.position for e in received]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def _writer_process(url: str, schema: str, writer: int, count: int) -> None:
    async def run() -> None:
        async with es.connect(url, schema=schema, pool_max_size=2) as store:
            for i in range(count):
                await store.append(f"W{writer}-{i % 7}", _events(1 + i % 3))

    asyncio.run(run())


@pytest.mark.slow
async def test_concurrent_writer_processes_never_make_a_tailing_reader_skip(
    store: PostgresEventStore, pg_url: str
) -> None:
    writers, per_writer = 4, 60
    expected_total = writers * sum(1 + i % 3 for i in range(per_writer))
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_writer_process, args=(pg_url, store._schema, w, per_writer))
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    # A slow transaction in the middle of it all, committed while the writers still run.
    conn, transaction, _ = await _begin_slow_append(store, pg_url, "Slow-3")
    seen: list[es.RecordedEvent] = []
    after: es.Position | None = None
    committed_slow = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while len(seen) < expected_total + 1 and loop.time() < deadline:
        async for event in store.read_all(after=after):
            seen.append(event)
            after = event.position
        if not committed_slow and sum(p.exitcode is None for p in processes) <= writers // 2:
            await transaction.commit()
            await conn.close()
            committed_slow = True
        await asyncio.sleep(0.01)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    if not committed_slow:
        await transaction.commit()
        await conn.close()
        async for event in store.read_all(after=after):
            seen.append(event)
    everything = [e async for e in store.read_all()]
    assert len(everything) == expected_total + 1
    # The tailing reader, resuming after its last position each time, saw every event once.
    assert [e.id for e in seen] == [e.id for e in everything]


async def test_the_last_append_before_a_store_closes_still_wakes_other_subscribers(
    pg_url: str,
) -> None:
    """A writer that appends and closes at once (a batch job) still sends its wake-up.

    The subscriber's fallback poll is 30 s, so only the NOTIFY can deliver within the bound.
    """
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(pg_url, schema=schema, poll_interval=30) as reader:
        await reader.setup()
        marker = await reader.append("Marker-1", _events(1))
        async with reader.subscribe(after=marker.position) as subscription:
            waiting = asyncio.ensure_future(anext(subscription))  # caught up, waiting for news
            await asyncio.sleep(0.5)  # let the LISTEN connection register before the commit
            async with es.connect(pg_url, schema=schema) as writer:
                await writer.append("Late-1", _events(1))
            event = await asyncio.wait_for(waiting, 5)
    assert event.stream_id == "Late-1"


async def test_setup_run_by_many_stores_at_once_applies_each_migration_once(pg_url: str) -> None:
    schema = f"m_{uuid.uuid4().hex[:12]}"
    stores = [es.connect(pg_url, schema=schema, pool_min_size=1) for _ in range(6)]
    for opened in stores:
        await opened.open()
    try:
        await asyncio.gather(*(opened.setup() for opened in stores))
        await stores[0].setup()
    finally:
        for opened in stores:
            await opened.close()
    conn = await asyncpg.connect(pg_url)
    try:
        versions = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
    finally:
        await conn.close()
    assert [row[0] for row in versions] == [1]


async def test_subscription_survives_a_server_restart_and_resumes_after_the_last_event() -> None:
    with EmbeddedPostgres() as server:
        async with es.connect(server.url, poll_interval=0.2, reconnect_timeout=30) as store:
            assert isinstance(store, PostgresEventStore)
            await store.setup()
            await store.append("Before-1", _events(3))
            received: list[es.RecordedEvent] = []
            async with store.subscribe() as subscription:
                iterator = aiter(subscription)
                for _ in range(3):
                    received.append(await asyncio.wait_for(anext(iterator), 5))
                assert store._listener is not None
                await asyncio.wait_for(store._listener.connected.wait(), 5)

                await asyncio.to_thread(server.restart)
                next_event = asyncio.create_task(anext(iterator))
                await asyncio.sleep(0.5)  # the subscription is now polling a fresh server
                result = await store.append("After-1", _events(2))
                received.append(await asyncio.wait_for(next_event, 15))
                received.append(await asyncio.wait_for(anext(iterator), 5))
                await asyncio.wait_for(store._listener.connected.wait(), 10)
                assert store._listener.connections_made >= 2

            assert [e.stream_id for e in received] == ["Before-1"] * 3 + ["After-1"] * 2
            assert received[-1].position == result.position


async def test_opening_a_store_on_an_unreachable_server_raises_backend_unavailable() -> None:
    server = EmbeddedPostgres()  # never started: its port is free
    store = es.connect(server.url, connect_timeout=2)
    with pytest.raises(es.BackendUnavailableError) as caught:
        await store.open()
    assert caught.value.maybe_applied is False


async def test_append_timing_out_reports_unknown_outcome_and_a_retry_writes_one_copy(
    pg_url: str,
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(pg_url, schema=schema, command_timeout=0.5) as store:
        await store.setup()
        await store.append("Locked-1", _events(1))
        # Hold the stream's head row, so the next append waits for it until its timeout.
        blocker = await asyncpg.connect(pg_url)
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(
            f"SELECT 1 FROM \"{schema}\".streams WHERE stream_id = 'Locked-1' FOR UPDATE"
        )
        batch = _events(2, "Retried")
        with pytest.raises(es.BackendUnavailableError) as caught:
            await store.append("Locked-1", batch)
        assert caught.value.maybe_applied is True
        await transaction.rollback()
        await blocker.close()

        first = await store.append("Locked-1", batch)
        again = await store.append("Locked-1", batch)
        assert first == again
        assert [e.type async for e in store.read_stream("Locked-1")] == [
            "Happened",
            "Retried",
            "Retried",
        ]


async def test_append_on_a_connection_killed_while_idle_is_retried_transparently(
    store: PostgresEventStore, pg_url: str
) -> None:
    await store.append("Idle-1", _events(1))
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'eventstore-core' AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    result = await store.append("Idle-1", _events(1))
    assert result.version == 2


async def test_reusing_an_event_id_in_another_stream_raises_duplicate_event_id(
    store: PostgresEventStore,
) -> None:
    event = es.NewEvent("Once", {})
    await store.append("Dup-1", [event])
    with pytest.raises(es.DuplicateEventIdError):
        await store.append("Dup-2", [event])
    assert await store.stream_version("Dup-2") == 0


async def test_wrong_expected_version_raises_concurrency_error_with_actual_version(
    store: PostgresEventStore,
) -> None:
    await store.append("Conc-1", _events(2))
    with pytest.raises(es.ConcurrencyError) as caught:
        await store.append("Conc-1", _events(1), expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)


async def test_a_position_from_another_backend_is_rejected(store: PostgresEventStore) -> None:
    with pytest.raises(es.InvalidEventError):
        [e async for e in store.read_all(after="42")]


async def test_read_all_pages_come_from_the_position_index(
    store: PostgresEventStore, pg_url: str
) -> None:
    await store.append("Plan-1", _events(3))
    conn = await asyncpg.connect(pg_url)
    try:
        # A tiny table makes any plan cheap: rule out full scans to show the plan that scales.
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN "
                + store._sql.read_all.replace("$1", "'0'").replace("$2", "0").replace("$3", "100")
            )
        )
    finally:
        await conn.close()
    assert "events_position_pkey" in plan, plan
    print(plan)
    assert "Sort" not in plan


async def test_batch_bounds_of_a_conflict_come_from_the_indexes(
    store: PostgresEventStore, pg_url: str
) -> None:
    """The idempotency lookup finds each batch's other events by ``tx_id``: no table scan."""
    batch = _events(3)
    await store.append("Bounds-1", _events(1))
    await store.append("Bounds-1", batch)
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(store._sql.events_by_id, [batch[1].id])
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN "
                + store._sql.events_by_id.replace("$1::uuid[]", f"ARRAY['{batch[1].id}']::uuid[]")
            )
        )
    finally:
        await conn.close()
    assert [(row["version"], row["batch_first"], row["batch_last"]) for row in rows] == [(3, 2, 4)]
    assert "events_event_id_key" in plan, plan
    assert "Index Cond: (tx_id = e.tx_id)" in plan, plan
    assert "Seq Scan" not in plan, plan


async def test_events_read_back_behave_as_plain_recorded_events(store: PostgresEventStore) -> None:
    """Read events are backed by their rows (a subclass); no caller can tell the difference."""
    import pickle
    from datetime import UTC

    new = es.NewEvent("Shipped", {"to": "Oslo"}, {"user": "u1"}, correlation_id="c-1")
    result = await store.append("Row-1", [new])
    [event] = [e async for e in store.read_stream("Row-1")]
    assert isinstance(event, es.RecordedEvent)
    assert (event.stream_id, event.version, event.id, event.type) == ("Row-1", 1, new.id, "Shipped")
    assert (event.data, event.metadata) == ({"to": "Oslo"}, {"user": "u1"})
    assert event.data is event.data  # decoded once, then kept
    assert (event.correlation_id, event.causation_id) == ("c-1", None)
    assert event.position == result.position
    assert event.recorded_at.tzinfo is UTC
    assert event.category == "Row"
    copy = pickle.loads(pickle.dumps(event))
    assert type(copy) is es.RecordedEvent
    assert copy == event
    assert event == copy
    assert hash(copy) == hash(event)
    assert repr(copy) == repr(event)
    with pytest.raises(AttributeError):
        event.type = "Other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]
