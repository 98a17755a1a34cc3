"""DynamoDB-specific behaviour the shared conformance suite cannot provoke portably.

All against a real engine (eventstore_core/local/dynamodb.py: DynamoDB Local, or the URL in
``EVENTSTORE_TEST_DYNAMODB_URL``), each test in a table of its own: DynamoDB's own limits
(4 MB per transaction, 400 KB per item), conflicts and their retry, writer processes racing on
the global counter, a transaction caught half-visible, table creation, cross-process wake-ups,
an answer lost after the transaction was sent (through a TCP proxy), and what reaches the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import re
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from eventstore_dynamodb import DynamoDBEventStore
from eventstore_dynamodb import _items as keys

import eventstore_core as es
from eventstore_core.local.dynamodb import dynamodb_url, engine_of, with_table

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="session")
def ddb_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's engine: the conftest ``dynamodb_url`` fixture if there is one."""
    try:
        url: str = request.getfixturevalue("dynamodb_url")
    except pytest.FixtureLookupError:
        with dynamodb_url() as started:
            yield started
        return
    yield url


@pytest.fixture(scope="session")
def real_isolation(ddb_url: str) -> None:
    """Skip a test of concurrent transactions where the engine is moto (not isolated)."""
    if engine_of(ddb_url) == "moto":
        pytest.skip("moto's TransactWriteItems is not isolated between concurrent requests")


@pytest.fixture
def table_url(ddb_url: str) -> str:
    """A URL for a table no other test uses."""
    return with_table(ddb_url, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(table_url: str) -> AsyncIterator[DynamoDBEventStore]:
    """An opened store on a fresh table."""
    async with es.connect(table_url, page_size=50) as opened:
        assert isinstance(opened, DynamoDBEventStore)
        await opened.setup()
        yield opened


def _events(n: int, size: int = 10, type_: str = "Happened") -> list[es.NewEvent]:
    return [es.NewEvent(type_, {"i": i, "pad": "x" * size}) for i in range(n)]


async def _all(store: es.EventStore, **kwargs: Any) -> list[es.RecordedEvent]:
    return [event async for event in store.read_all(**kwargs)]


# -- limits ----------------------------------------------------------------------------------


async def test_batch_over_the_4mb_transaction_limit_is_refused_naming_it(
    store: DynamoDBEventStore,
) -> None:
    # 11 events of ~390 KB: each fits an item, but stored twice they need ~8.6 MB.
    batch = _events(11, size=390_000)
    with pytest.raises(es.InvalidEventError, match="4 MB TransactWriteItems limit"):
        await store.append("Big-1", batch)
    assert await store.stream_version("Big-1") == 0
    assert await _all(store) == []


async def test_batch_over_the_100_action_limit_is_refused_before_sending(
    store: DynamoDBEventStore,
) -> None:
    assert store.capabilities.max_append_events == 33  # 1 + 3 * 33 = 100 actions
    with pytest.raises(es.InvalidEventError, match="max_append_events"):
        await store.append("Many-1", _events(34))
    result = await store.append("Many-1", _events(33))
    assert result.version == 33


async def test_the_largest_event_allowed_fits_one_item(store: DynamoDBEventStore) -> None:
    # max_event_bytes exactly, with the longest ids (multi-byte characters count double).
    limit = store.capabilities.max_event_bytes
    stream = "Large-" + "\u00e9" * 249
    event = es.NewEvent(
        "Big", {"pad": "x" * (limit - 15)}, correlation_id="c" * 255, causation_id="\u00e9" * 255
    )
    await store.append(stream, [event])
    [read] = await _all(store)
    assert (read.stream_id, len(read.data["pad"])) == (stream, limit - 15)


async def test_snapshot_over_one_item_is_split_and_read_back_whole(
    store: DynamoDBEventStore,
) -> None:
    data = {"blob": "y" * 1_500_000}  # ~4 chunks of 350 KB
    await store.save_snapshot(es.Snapshot("Agg-1", 7, "State", data))
    loaded = await store.load_snapshot("Agg-1")
    assert loaded == es.Snapshot("Agg-1", 7, "State", data)
    # A smaller, newer snapshot replaces it (the old chunks are ignored, not read).
    await store.save_snapshot(es.Snapshot("Agg-1", 8, "State", {"small": True}))
    assert await store.load_snapshot("Agg-1") == es.Snapshot("Agg-1", 8, "State", {"small": True})


async def test_snapshot_over_the_transaction_limit_is_refused_clearly(
    store: DynamoDBEventStore,
) -> None:
    too_big = {"blob": "z" * (store.capabilities.max_snapshot_bytes + 1)}
    with pytest.raises(es.InvalidEventError, match=r"snapshot\.data"):
        await store.save_snapshot(es.Snapshot("Agg-2", 1, "State", too_big))
    assert await store.load_snapshot("Agg-2") is None


async def test_an_older_snapshot_saved_late_does_not_replace_a_newer_one(
    store: DynamoDBEventStore,
) -> None:
    await store.save_snapshot(es.Snapshot("Agg-3", 5, "State", {"v": 5}))
    await store.save_snapshot(es.Snapshot("Agg-3", 4, "State", {"v": 4, "pad": "p" * 500_000}))
    loaded = await store.load_snapshot("Agg-3")
    assert loaded is not None
    assert loaded.data == {"v": 5}


# -- conflicts and retries -------------------------------------------------------------------


def _cancelled(n_actions: int, code: str) -> ClientError:
    """The exact error botocore raises for a cancelled transaction."""
    reasons: list[Any] = [{"Code": "None"}] * n_actions
    reasons[1] = {"Code": code, "Message": "Transaction is ongoing for the item"}
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": f"[{code}]"},
        "CancellationReasons": reasons,
    }
    return ClientError(response, "TransactWriteItems")


async def test_transaction_conflict_is_retried_then_succeeds(
    store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB Local serialises transactions, so it never reports TransactionConflict by
    # itself: the first two attempts are refused the way AWS refuses them, then the real call
    # goes through to the engine.
    real = store._table.client.transact_write_items
    calls = 0

    async def conflicting(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise _cancelled(len(kwargs["TransactItems"]), "TransactionConflict")
        return await real(**kwargs)

    monkeypatch.setattr(store._table.client, "transact_write_items", conflicting)
    result = await store.append("Conflict-1", _events(2), expected_version=es.NO_STREAM)
    assert calls == 3
    assert result.version == 2
    assert [e.version for e in await _all(store)] == [1, 2]


async def test_conflicts_beyond_retry_timeout_raise_backend_unavailable(
    table_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with es.connect(table_url, retry_timeout=0.3) as store:
        await store.setup()
        assert isinstance(store, DynamoDBEventStore)

        async def always_conflicting(**kwargs: Any) -> Any:
            raise _cancelled(len(kwargs["TransactItems"]), "TransactionConflict")

        monkeypatch.setattr(store._table.client, "transact_write_items", always_conflicting)
        with pytest.raises(es.BackendUnavailableError, match="TransactionConflict") as caught:
            await store.append("Conflict-2", _events(1))
        assert caught.value.maybe_applied is False


async def test_throttling_is_retried(
    store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._table.client.transact_write_items
    calls = 0

    async def throttled(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                "TransactWriteItems",
            )
        return await real(**kwargs)

    monkeypatch.setattr(store._table.client, "transact_write_items", throttled)
    assert (await store.append("Throttle-1", _events(1))).version == 1
    assert calls == 2


async def test_retry_after_a_lost_answer_returns_the_original_result(
    store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first attempt commits but its answer is lost; the retry fails on the id guards,
    # which the adapter reads back as "already written": one copy, the original result.
    from botocore.exceptions import ReadTimeoutError

    real = store._table.client.transact_write_items
    calls = 0

    async def lost_answer(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        answer = await real(**kwargs)
        if calls == 1:
            raise ReadTimeoutError(endpoint_url="http://dynamodb")
        return answer

    monkeypatch.setattr(store._table.client, "transact_write_items", lost_answer)
    result = await store.append("Lost-1", _events(3), expected_version=es.NO_STREAM)
    assert (result.version, str(result.position)) == (3, "3")
    assert len(await _all(store)) == 3


async def test_id_guards_carry_their_batch_bounds(store: DynamoDBEventStore) -> None:
    # The bounds tell a retry of the whole batch from a retry of part of it.
    await store.append("Guard-1", _events(1))
    batch = _events(3)
    original = await store.append("Guard-1", batch)
    guards = [await store._table.get(keys.guard_key(event.id)) for event in batch]
    assert [keys.guard_bounds(guard or {}) for guard in guards] == [(2, 4)] * 3
    assert await store.append("Guard-1", batch) == original
    with pytest.raises(es.DuplicateEventIdError):
        await store.append("Guard-1", batch[1:])
    # A guard without bounds (written before they existed) matches no retry.
    await store._table.call(
        "update_item",
        write=True,
        TableName=store.table,
        Key=keys.guard_key(batch[0].id),
        UpdateExpression="REMOVE bf, bl",
    )
    with pytest.raises(es.DuplicateEventIdError):
        await store.append("Guard-1", batch)
    assert await store.stream_version("Guard-1") == 4


async def test_stale_head_cache_only_costs_a_retry(table_url: str) -> None:
    async with es.connect(table_url) as one, es.connect(table_url) as two:
        await one.setup()
        await one.append("Shared-1", _events(1))  # ``one`` caches version 1
        await two.append("Shared-1", _events(2))  # the stream moves to 3 behind its back
        result = await one.append("Shared-1", _events(1))
        assert result.version == 4
        with pytest.raises(es.ConcurrencyError) as caught:
            await one.append("Shared-1", _events(1), expected_version=2)
        assert caught.value.actual == 4


@pytest.mark.usefixtures("real_isolation")
async def test_concurrent_any_appends_to_one_stream_all_succeed(store: DynamoDBEventStore) -> None:
    # Every loser of the race on the stream's head retries at the version it was refused with
    # (in the adapter, keeping its positions): with 20 writers, some lose many times in a row.
    results = await asyncio.gather(
        *(store.append("Hot-1", _events(1)) for _ in range(20)), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sorted(r.version for r in results if isinstance(r, es.AppendResult)) == list(
        range(1, 21)
    )
    events = await _all(store)
    assert [e.version for e in events] == list(range(1, 21))  # stream order is global order


# -- global order ----------------------------------------------------------------------------


async def _raw_reserve(store: DynamoDBEventStore, n: int) -> int:
    """Reserve positions the way a writer does, then never commit: a crashed writer."""
    answer = await store._table.client.update_item(
        TableName=store.table,
        Key=keys.COUNTER_KEY,
        UpdateExpression="ADD pos :n",
        ExpressionAttributeValues={":n": {"N": str(n)}},
        ReturnValues="UPDATED_NEW",
    )
    return int(answer["Attributes"]["pos"]["N"])


async def test_reader_never_passes_a_reserved_position_until_it_is_filled(
    table_url: str,
) -> None:
    async with es.connect(table_url, hole_timeout=60) as store:
        assert isinstance(store, DynamoDBEventStore)
        await store.setup()
        await store.append("Hole-1", _events(2))
        [first, second] = await _all(store)
        # Positions 3 and 4 reserved by a writer still committing; 4 is visible, 3 not yet
        # (writers commit out of order; on AWS a Query may also see a transaction half-applied).
        assert await _raw_reserve(store, 2) == 4
        item = await store._table.get(keys.all_key(2))
        assert item is not None

        def at(position: int) -> dict[str, Any]:
            body = item | keys.all_key(position) | {"pos": {"N": str(position)}}
            return body | {"id": {"S": str(uuid.uuid4())}}

        await store._table.client.put_item(TableName=store.table, Item=at(4))
        assert [str(e.position) for e in await _all(store)] == ["1", "2"]
        assert await _all(store, after=second.position) == []
        await store._table.client.put_item(TableName=store.table, Item=at(3))
        assert [str(e.position) for e in await _all(store, after=first.position)] == [
            "2",
            "3",
            "4",
        ]


async def test_a_crashed_writers_position_is_voided_after_hole_timeout(table_url: str) -> None:
    async with es.connect(table_url, hole_timeout=0.3) as store:
        assert isinstance(store, DynamoDBEventStore)
        await store.setup()
        await store.append("Crash-1", _events(1))
        crashed = await _raw_reserve(store, 1)
        await store.append("Crash-1", _events(1))
        assert [e.version for e in await _all(store)] == [1]  # waits at the hole
        await asyncio.sleep(0.35)
        assert [e.version for e in await _all(store)] == [1, 2]  # voided, read on
        # Should the writer wake up now, its event cannot land behind the readers any more.
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            await store._table.client.put_item(
                TableName=store.table,
                Item=keys.all_key(crashed) | {"late": {"BOOL": True}},
                ConditionExpression="attribute_not_exists(pk)",
            )


async def test_a_writer_whose_positions_were_voided_retries_at_new_ones(
    store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stolen = await _raw_reserve(store, 1)
    await store._writer.void([stolen])  # a reader gave up waiting for this writer
    real = store._writer.reserve
    reservations: list[int] = []

    async def slow_writer(n: int) -> int:
        last = stolen if not reservations else await real(n)
        reservations.append(last)
        return last

    monkeypatch.setattr(store._writer, "reserve", slow_writer)
    result = await store.append("Late-1", _events(1))
    assert reservations == [stolen, stolen + 1]
    assert str(result.position) == str(stolen + 1)
    assert [e.stream_id for e in await _all(store)] == ["Late-1"]


async def test_a_stream_never_commits_a_version_at_an_earlier_position(
    store: DynamoDBEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer reserves position p, stalls, and meanwhile the stream gets an event at p + 1;
    # committing the next version at p would put the stream out of global order.
    await store.append("Order-1", _events(1))
    early = await _raw_reserve(store, 1)
    real = store._writer.reserve
    reservations: list[int] = []

    async def stalled(n: int) -> int:
        last = early if not reservations else await real(n)
        reservations.append(last)
        return last

    await store.append("Order-1", _events(1))  # version 2, at early + 1
    monkeypatch.setattr(store._writer, "reserve", stalled)
    result = await store.append("Order-1", _events(1), expected_version=2)
    assert reservations == [early, early + 2]
    assert result.version == 3
    assert [e.version for e in await _all(store) if e.stream_id == "Order-1"] == [1, 2, 3]


async def test_a_refused_append_voids_its_positions_at_once(table_url: str) -> None:
    # With a long hole_timeout, only the writer's own voids let readers past its positions.
    async with es.connect(table_url, hole_timeout=60) as store:
        await store.setup()
        await store.append("Refused-1", _events(1))
        with pytest.raises(es.ConcurrencyError):
            await store.append("Refused-1", _events(1), expected_version=5)
        batch = _events(1)
        await store.append("Refused-2", batch)
        await store.append("Refused-2", batch)  # idempotent retry: reserves, then voids
        await store.append("Refused-3", _events(1))
        started = time.monotonic()
        assert [e.stream_id for e in await _all(store)] == ["Refused-1", "Refused-2", "Refused-3"]
        assert time.monotonic() - started < 5


def _writer_process(url: str, stream_ids: list[str], appends: int, seed: int) -> None:
    async def run() -> None:
        async with es.connect(url) as store:
            for i in range(appends):
                stream = stream_ids[(seed + i) % len(stream_ids)]
                await store.append(stream, [es.NewEvent("Raced", {"w": seed, "i": i})] * 1)

    asyncio.run(run())


def _exact_writer_process(url: str, stream_id: str, attempts: int, out: Any) -> None:
    async def run() -> int:
        won = 0
        async with es.connect(url) as store:
            for _ in range(attempts):
                version = await store.stream_version(stream_id)
                try:
                    await store.append(stream_id, _events(1), expected_version=version)
                    won += 1
                except es.ConcurrencyError:
                    pass
        return won

    out.put(asyncio.run(run()))


@pytest.mark.slow
@pytest.mark.usefixtures("real_isolation")
async def test_writer_processes_get_ordered_positions_and_dense_versions(
    store: DynamoDBEventStore,
) -> None:
    url = store.url
    streams = ["Race-a", "Race-b", "Race-c"]
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_writer_process, args=(url, streams, 15, seed)) for seed in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.join, 120)
        assert worker.exitcode == 0
    events = await _all(store)
    positions = [e.position for e in events]
    assert len(events) == 60
    assert positions == sorted(set(positions))
    for stream in streams:
        versions = [e.version for e in events if e.stream_id == stream]
        assert versions == list(range(1, len(versions) + 1))
        assert await store.stream_version(stream) == len(versions)


@pytest.mark.slow
@pytest.mark.usefixtures("real_isolation")
async def test_exact_expected_version_holds_across_writer_processes(
    store: DynamoDBEventStore,
) -> None:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_exact_writer_process, args=(store.url, "Exact-1", 10, results))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.join, 120)
        assert worker.exitcode == 0
    won = sum(results.get(timeout=5) for _ in workers)
    assert await store.stream_version("Exact-1") == won
    assert [e.version async for e in store.read_stream("Exact-1")] == list(range(1, won + 1))


# -- setup and wake-ups ----------------------------------------------------------------------


async def test_setup_creates_the_table_once_even_when_run_concurrently(table_url: str) -> None:
    stores = [es.connect(table_url) for _ in range(4)]
    for opened in stores:
        await opened.open()
    try:
        await asyncio.gather(*(opened.setup() for opened in stores))
        await stores[0].setup()  # and again, later
        first = stores[0]
        assert isinstance(first, DynamoDBEventStore)
        described = await first._table.client.describe_table(TableName=first.table)
        table = described["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        await first.append("Setup-1", _events(1))
    finally:
        for opened in stores:
            await opened.close()


async def test_a_table_with_another_key_schema_is_refused(ddb_url: str) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with es.connect(with_table(ddb_url, name)) as opened:
        assert isinstance(opened, DynamoDBEventStore)
        await opened._table.client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        with pytest.raises(es.ConfigurationError, match="key schema"):
            await opened.setup()


async def test_a_bad_table_name_is_a_configuration_error() -> None:
    with pytest.raises(es.ConfigurationError, match="table name"):
        es.connect("dynamodb://x?region=us-east-1")


async def test_a_missing_table_says_to_run_setup(table_url: str) -> None:
    async with es.connect(table_url) as opened:
        with pytest.raises(es.EventStoreError, match=r"setup\(\)"):
            await opened.stream_version("Nothing-1")


async def test_another_process_commit_wakes_a_subscription_without_the_fallback_poll(
    table_url: str,
) -> None:
    # Two connections stand for two processes: each has its own notifier. With a 30 s
    # fallback poll, only the counter watcher can deliver within the deadline.
    async with (
        es.connect(table_url, poll_interval=30, watch_interval=0.05) as reader,
        es.connect(table_url) as writer,
    ):
        await reader.setup()
        async with reader.subscribe() as subscription:
            iterator = aiter(subscription)
            waiting = asyncio.ensure_future(anext(iterator))
            await asyncio.sleep(0.3)  # the subscription is live and waiting
            started = time.monotonic()
            await writer.append("Wake-1", _events(1))
            event = await asyncio.wait_for(waiting, timeout=5)
            latency = time.monotonic() - started
        assert event.stream_id == "Wake-1"
        assert latency < 1.0


async def test_a_subscription_waiting_at_a_hole_sees_its_late_commit_without_the_poll(
    table_url: str,
) -> None:
    # The counter moves at reservation, not at commit: the reader itself must look again.
    async with es.connect(table_url, poll_interval=30, hole_timeout=60) as store:
        assert isinstance(store, DynamoDBEventStore)
        await store.setup()
        await store.append("Late-0", _events(1))
        template = await store._table.get(keys.all_key(1))
        assert template is not None
        async with store.subscribe() as subscription:
            iterator = aiter(subscription)
            assert (await anext(iterator)).stream_id == "Late-0"
            hole = await _raw_reserve(store, 1)  # a writer, still committing
            await store.append("Late-2", _events(1))
            following = asyncio.ensure_future(anext(iterator))
            await asyncio.sleep(0.3)
            assert not following.done()  # never past the hole
            late = template | keys.all_key(hole) | {"pos": {"N": str(hole)}}
            await store._table.client.put_item(
                TableName=store.table,
                Item=late | {"sid": {"S": "Late-1"}, "id": {"S": str(uuid.uuid4())}},
            )
            started = time.monotonic()
            assert (await asyncio.wait_for(following, 5)).stream_id == "Late-1"
            assert (await asyncio.wait_for(anext(iterator), 5)).stream_id == "Late-2"
            assert time.monotonic() - started < 1.0


async def test_an_unreachable_endpoint_raises_backend_unavailable_not_a_driver_error() -> None:
    from eventstore_core.local.dynamodb import ensure_dummy_credentials, free_port, make_url

    ensure_dummy_credentials()
    url = make_url(f"http://127.0.0.1:{free_port()}", "nowhere")
    async with es.connect(url, retry_timeout=0.2, connect_timeout=0.2) as store:
        with pytest.raises(es.BackendUnavailableError) as reading:
            await store.stream_version("Any-1")
        assert not reading.value.maybe_applied
        with pytest.raises(es.BackendUnavailableError) as appending:
            await store.append("Any-1", _events(1))
        assert not appending.value.maybe_applied  # the connection was never made


# -- lost answers, hostile input, secrets in logs ------------------------------------------


class LossyProxy:
    """A TCP proxy in front of the engine that can lose one answer and then go down.

    Armed with an operation name (the ``X-Amz-Target`` of a request), it forwards that request
    to the engine, receives the engine's answer, and instead of passing it on drops every
    client connection and stops listening: the request was sent and applied, the client saw
    its connection break, and every retry is refused at connect. :meth:`start` again is the
    engine coming back. ``reset`` breaks the connections with a TCP reset (the client sees
    ``ECONNRESET``) instead of a close.
    """

    def __init__(self, endpoint: str, *, reset: bool = False) -> None:
        from eventstore_core.local.dynamodb import free_port

        parts = urlsplit(endpoint)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._armed: bytes | None = None
        self._reset = reset
        self.answers_lost = 0

    def lose_answer_of(self, operation: str) -> None:
        """Lose the answer of the next request for ``operation``, then go down."""
        self._armed = f"DynamoDB_20120810.{operation}".encode()

    async def start(self) -> None:
        """Listen (again) on the same port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening and break every open connection (refused from now on)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            sock = writer.get_extra_info("socket")
            if self._reset and sock is not None:
                # Linger 0: close() sends RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._connections.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._connections.update((writer, up_writer))
        losing = False

        async def requests() -> None:
            nonlocal losing
            while data := await reader.read(65536):
                if self._armed is not None and self._armed in data:
                    losing, self._armed = True, None
                up_writer.write(data)
                await up_writer.drain()

        async def answers() -> None:
            while data := await up_reader.read(65536):
                if losing:  # the engine has answered: it applied the request
                    self.answers_lost += 1
                    await self.stop()
                    return
                writer.write(data)
                await writer.drain()

        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await asyncio.gather(requests(), answers())
        for end in (writer, up_writer):
            self._connections.discard(end)
            end.transport.abort()


@pytest.fixture(params=["closed", "reset"])
async def proxy(ddb_url: str, request: pytest.FixtureRequest) -> AsyncIterator[LossyProxy]:
    """A :class:`LossyProxy` in front of the session's engine, listening; it breaks
    connections with a close, or with a TCP reset (which aiobotocore reports as a connection
    error, like a refused connect)."""
    from eventstore_core.local.dynamodb import endpoint_of

    endpoint = endpoint_of(ddb_url)
    if endpoint is None:
        pytest.skip("the engine is AWS itself: no endpoint to put a proxy in front of")
    started = LossyProxy(endpoint, reset=request.param == "reset")
    await started.start()
    yield started
    await started.stop()


async def test_an_append_whose_answer_was_lost_says_maybe_applied_and_a_retry_writes_once(
    table_url: str, proxy: LossyProxy
) -> None:
    # The transaction commits, its answer is lost, and the retries cannot even connect: the
    # last failure alone ("cannot connect") would say nothing was written. retry_timeout
    # leaves room for retries after the loss, which is the case this is about.
    from eventstore_core.local.dynamodb import make_url

    table = urlsplit(table_url).netloc
    async with (
        es.connect(table_url) as direct,
        es.connect(make_url(proxy.endpoint, table), retry_timeout=2, connect_timeout=0.5) as store,
    ):
        await direct.setup()
        batch = _events(3)
        proxy.lose_answer_of("TransactWriteItems")
        with pytest.raises(es.BackendUnavailableError) as caught:
            await store.append("Lost-2", batch, expected_version=es.NO_STREAM)
        assert proxy.answers_lost == 1
        assert caught.value.maybe_applied is True
        assert "answer was lost" in str(caught.value)
        assert await direct.stream_version("Lost-2") == 3  # it was applied
        await proxy.start()  # the engine is back; the caller retries the same batch
        result = await store.append("Lost-2", batch, expected_version=es.NO_STREAM)
        assert result.version == 3
        events = await _all(direct)
        assert [e.id for e in events] == [e.id for e in batch]
        assert str(result.position) == str(events[-1].position)


async def test_a_checkpoint_whose_answer_was_lost_says_maybe_applied(
    table_url: str, proxy: LossyProxy
) -> None:
    from eventstore_core.local.dynamodb import make_url

    table = urlsplit(table_url).netloc
    async with (
        es.connect(table_url) as direct,
        es.connect(make_url(proxy.endpoint, table), retry_timeout=1, connect_timeout=0.5) as store,
    ):
        await direct.setup()
        await direct.append("Cp-1", _events(1))
        [event] = await _all(direct)
        proxy.lose_answer_of("PutItem")
        with pytest.raises(es.BackendUnavailableError) as caught:
            await store.save_checkpoint("projector", event.position)
        assert caught.value.maybe_applied is True
        assert await direct.load_checkpoint("projector") == event.position


@pytest.mark.parametrize("field", ["correlation_id", "causation_id"])
async def test_a_lone_surrogate_in_an_id_is_invalid_input_and_nothing_is_sent(
    store: DynamoDBEventStore, field: str
) -> None:
    counter = await store._table.read_counter()
    event = es.NewEvent("Happened", {}, **{field: "abc\ud800"})  # type: ignore[arg-type]
    with pytest.raises(es.InvalidEventError) as caught:
        await store.append("Surrogate-1", [event])
    assert not isinstance(caught.value, UnicodeError)
    assert await store.stream_version("Surrogate-1") == 0
    assert await store._table.read_counter() == counter  # not even a position reserved


async def test_debug_logs_of_real_calls_carry_no_session_token_or_signature(
    ddb_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if engine_of(ddb_url) == "aws":
        pytest.skip("needs a local engine, which accepts any credentials")
    token = "FQoGZXIvYXdzEXAMPLEsessionTOKEN/abc+def=="
    secret = "eventstoreSECRETkey"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "eventstoretest")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    caplog.set_level(logging.DEBUG)
    url = with_table(ddb_url, f"t_{uuid.uuid4().hex[:12]}")
    async with es.connect(url) as store:
        await store.setup()
        await store.append("Secret-1", _events(2))
        [first, _] = await _all(store)
        await store.save_checkpoint("c", first.position)
    logged = caplog.text
    # The requests were logged (botocore at DEBUG), with their secrets masked.
    assert "X-Amz-Security-Token" in logged
    assert "x-amz-security-token:***" in logged  # botocore.auth's canonical request
    assert "'Authorization': b'***'" in logged  # botocore.endpoint's prepared request
    assert token not in logged
    assert token.split("/")[0] not in logged  # not even a part of it
    assert secret not in logged
    assert not re.search(r"(?i)signature\s*[:=]\s*[0-9a-f]{16}", logged)
