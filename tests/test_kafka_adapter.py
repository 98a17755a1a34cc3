"""Kafka-specific behaviour the shared conformance suite cannot provoke portably.

Against a real broker (tansu from eventstore_core/local/kafka.py, or EVENTSTORE_TEST_KAFKA_URL):
the hole rule (a missing offset is never stepped over), lost acknowledgements and stale
retries resolved by log-order arbitration, a broker restart under a live subscription (tansu
on S3 storage, so the data survives), the record size limit, and secrets kept out of repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition
from eventstore_kafka import KafkaEventStore
from eventstore_kafka import _tailer as tailer_module
from eventstore_kafka._arbiter import ACCEPTED, INVALID, REFUSED, Arbiter, Verdict
from eventstore_kafka._records import Header, claim_of, decode_header, encode
from eventstore_kafka._ticks import TICK_AFTER, Ticker

import eventstore_core as es
from eventstore_core.adapter import PreparedEvent, now_micros
from eventstore_core.local.kafka import Tansu, with_topic


def _topic() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(kafka_url: str) -> AsyncIterator[KafkaEventStore]:
    """A store on a topic of its own."""
    async with es.connect(with_topic(kafka_url, _topic())) as opened:
        assert isinstance(opened, KafkaEventStore)
        await opened.setup()
        yield opened


def _events(n: int, type_: str = "Happened") -> list[es.NewEvent]:
    return [es.NewEvent(type_, {"i": i}) for i in range(n)]


def _prepared(events: list[es.NewEvent]) -> list[PreparedEvent]:
    return [
        PreparedEvent(e.id, e.type, es.serialization.dumps(dict(e.data)), b"{}", None, None)
        for e in events
    ]


async def _write_raw(store: KafkaEventStore, stream_id: str, events: list[es.NewEvent]) -> int:
    """Write the record the store would write, with a plain producer: a writer whose ack was
    lost (it never learned the outcome). Returns the record's offset."""
    producer = AIOKafkaProducer(bootstrap_servers=store._brokers, acks="all")
    await producer.start()
    try:
        value = encode(stream_id, claim_of(es.ANY), _prepared(events), 0, uuid.uuid4().bytes)
        metadata = await producer.send_and_wait(store._topic, value, partition=0)
        return int(metadata.offset)
    finally:
        await producer.stop()


# -- the hole rule -------------------------------------------------------------------------


def _batch(base_offset: int, values: list[bytes]) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=None, key=None, value=value, headers=[])
    return bytes(builder.build())


def test_a_response_is_taken_only_up_to_its_first_missing_offset() -> None:
    # Records 0-2, then 4-5: offset 3 is missing (tansu returns later batches past a
    # not-yet-written one under concurrent producers).
    data = _batch(0, [b"a", b"b", b"c"])
    later = bytearray(_batch(0, [b"e", b"f"]))
    later[0:8] = (4).to_bytes(8, "big")  # the batch's base offset
    fetched = tailer_module._contiguous(0, 6, data + bytes(later))
    assert fetched.offsets == [0, 1, 2]
    assert fetched.gap
    fetched = tailer_module._contiguous(3, 6, bytes(later))
    assert fetched.offsets == []
    assert fetched.gap


class _Withheld:
    """Makes one store's fetches miss one offset of partition 0 while later ones exist: the
    tansu behaviour under concurrent producers, on demand. The broker is real; only what this
    store's fetches return is cut at the offset."""

    def __init__(self, store: es.EventStore, offset: int) -> None:
        assert isinstance(store, KafkaEventStore)
        assert store._tailer is not None
        self.on = True
        fetchers = {
            id(f): f for f in (store._fetcher, store._tailer._fetcher, store._tailer._poller)
        }
        for fetcher in fetchers.values():
            assert fetcher is not None
            original = fetcher.fetch

            async def fetch(
                wants: dict[TopicPartition, int],
                wait_ms: int,
                original: Any = original,
            ) -> dict[TopicPartition, tailer_module.Fetched]:
                answer: dict[TopicPartition, tailer_module.Fetched] = await original(wants, wait_ms)
                for tp, fetched in answer.items():
                    if self.on and tp.topic == store._topic and offset in fetched.offsets:
                        cut = fetched.offsets.index(offset)
                        later = fetched.offsets[cut + 1 : cut + 2]
                        answer[tp] = fetched._replace(
                            offsets=fetched.offsets[:cut],
                            values=fetched.values[:cut],
                            gap=True,
                            resume=later[0] if later else -1,
                        )
                return answer

            fetcher.fetch = fetch  # type: ignore[method-assign]


async def _withhold(store: es.EventStore, offset: int) -> _Withheld:
    """Withhold ``offset`` from the store's fetches from now on. A long poll sent before the
    patch would still bring it: wait for that one to end (caught up, a poll waits
    fetch_wait_ms, 10 ms)."""
    withheld = _Withheld(store, offset)
    await asyncio.sleep(0.2)
    return withheld


async def test_a_missing_offset_is_never_stepped_over(kafka_url: str) -> None:
    url = with_topic(kafka_url, _topic(), hole_timeout=1.5, request_timeout=5)
    async with es.connect(url) as writer, es.connect(url) as reader:
        await writer.setup()
        await reader.setup()
        withheld = await _withhold(reader, 1)
        stream = f"Hole-{uuid.uuid4().hex}"
        for i in range(3):
            await writer.append(stream, [es.NewEvent("E", {"i": i})])
        # Offset 1 is missing, 2 exists: the reader fails rather than serve 0 and then 2.
        with pytest.raises(es.BackendUnavailableError, match="never steps over a hole"):
            await es_collect(reader.read_all())
        assert isinstance(reader, KafkaEventStore)
        assert reader._arbiter.logs[0].next_offset == 1
        # Once the offset shows up, everything is served, in order, nothing skipped.
        withheld.on = False
        events = await es_collect(reader.read_all())
        assert [e.data["i"] for e in events] == [0, 1, 2]


async def test_an_append_that_cannot_be_read_back_says_maybe_applied_and_where_the_log_stands(
    kafka_url: str,
) -> None:
    # Another writer's record (offset 1) never reaches this store's fetches, so its own record
    # after it (offset 2) cannot be judged: the error says it may be applied, and where the
    # partition stands, which is the whole diagnosis of such a wait.
    url = with_topic(kafka_url, _topic(), hole_timeout=60, request_timeout=1.5)
    async with es.connect(url) as other, es.connect(url) as store:
        await other.setup()
        await store.setup()
        await _withhold(store, 1)
        stream = f"Stuck-{uuid.uuid4().hex}"
        await store.append(stream, [es.NewEvent("E", {"i": 0})])
        await other.append(f"Other-{uuid.uuid4().hex}", [es.NewEvent("E", {})])
        with pytest.raises(es.BackendUnavailableError) as raised:
            await store.append(stream, [es.NewEvent("E", {"i": 1})])
        assert raised.value.maybe_applied
        message = str(raised.value)
        assert "written at offset 2 but could not be read back" in message
        assert "/0 at 1 of" in message, message


async def test_a_gap_no_record_ever_fills_is_stepped_over_after_three_hole_timeouts(
    kafka_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What a tansu restart under load leaves: an offset with no record, for good, and later
    # records after it. Here the reader's fetches never see offset 1; the reader fails reads
    # for a while, then steps over it (after 3 x hole_timeout) and serves what follows.
    url = with_topic(kafka_url, _topic(), hole_timeout=0.5, request_timeout=5)
    async with es.connect(url) as writer, es.connect(url) as reader:
        await writer.setup()
        await reader.setup()
        await _withhold(reader, 1)
        stream = f"Gap-{uuid.uuid4().hex}"
        for i in range(3):
            await writer.append(stream, [es.NewEvent("E", {"i": i})])
        loop = asyncio.get_running_loop()
        started = loop.time()
        refused = 0
        while True:
            try:
                events = await es_collect(reader.read_all())
                break
            except es.BackendUnavailableError:
                refused += 1
                assert loop.time() - started < 15, "the gap was never stepped over"
        assert refused >= 1, "the gap was stepped over before hole_timeout"
        assert loop.time() - started >= 1.5
        assert [e.data["i"] for e in events] == [0, 2]
    assert any("stepping over them" in r.getMessage() for r in caplog.records)


async def test_a_hole_that_fills_within_the_timeout_is_waited_for(kafka_url: str) -> None:
    url = with_topic(kafka_url, _topic(), hole_timeout=10)
    async with es.connect(url) as writer, es.connect(url) as reader:
        await writer.setup()
        await reader.setup()
        withheld = await _withhold(reader, 1)
        stream = f"Hole-{uuid.uuid4().hex}"
        for i in range(3):
            await writer.append(stream, [es.NewEvent("E", {"i": i})])

        async def fill_later() -> None:
            await asyncio.sleep(0.5)
            withheld.on = False

        filler = asyncio.create_task(fill_later())
        events = await es_collect(reader.read_stream(stream))
        await filler
        assert [e.version for e in events] == [1, 2, 3]


async def es_collect(events: AsyncIterator[es.RecordedEvent]) -> list[es.RecordedEvent]:
    """Drain an iterator of events."""
    return [event async for event in events]


# -- lost acks and stale retries ---------------------------------------------------------------


async def test_a_retry_after_a_lost_ack_returns_the_original_result(
    store: KafkaEventStore,
) -> None:
    stream = f"Lost-{uuid.uuid4().hex}"
    batch = _events(2)
    offset = await _write_raw(store, stream, batch)
    result = await store.append(stream, batch, expected_version=es.NO_STREAM)
    assert result.version == 2
    assert result.position == es.Position.of(offset, 1)
    events = await es_collect(store.read_stream(stream))
    assert [e.id for e in events] == [e.id for e in batch]
    assert len(await es_collect(store.read_all())) == 2


async def test_a_stale_retry_after_later_appends_writes_nothing(store: KafkaEventStore) -> None:
    stream = f"Stale-{uuid.uuid4().hex}"
    batch = _events(1)
    first = await store.append(stream, batch, expected_version=es.NO_STREAM)
    await store.append(stream, _events(2), expected_version=1)
    # The retry reaches the log (written straight to it, as a slow client would), is refused
    # by its ids, and the store's own retry reports the original result.
    await _write_raw(store, stream, batch)
    assert await store.append(stream, batch, expected_version=0) == first
    assert await store.stream_version(stream) == 3


async def test_identical_appends_racing_from_two_stores_are_written_once(
    store: KafkaEventStore, kafka_url: str
) -> None:
    stream = f"Race-{uuid.uuid4().hex}"
    url = with_topic(kafka_url, store._topic)
    batch = _events(3)
    async with es.connect(url) as other:
        results = await asyncio.gather(
            *(s.append(stream, batch, expected_version=es.NO_STREAM) for s in (store, other) * 4)
        )
    assert len(set(results)) == 1
    assert [e.id for e in await es_collect(store.read_stream(stream))] == [e.id for e in batch]


async def test_every_instance_reaches_the_same_verdicts(store: KafkaEventStore) -> None:
    # Conflicting writers through one store; a fresh instance replaying the log must accept
    # exactly the records the writers were told were accepted.
    stream = f"Verdict-{uuid.uuid4().hex}"

    async def writer() -> list[es.AppendResult]:
        won = []
        for _ in range(10):
            version = await store.stream_version(stream)
            with contextlib.suppress(es.ConcurrencyError):
                won.append(await store.append(stream, _events(1), expected_version=version))
        return won

    results = [r for won in await asyncio.gather(*(writer() for _ in range(4))) for r in won]
    async with es.connect(with_topic(store.url, store._topic)) as fresh:
        replayed = await es_collect(fresh.read_stream(stream))
    assert sorted(r.version for r in results) == [e.version for e in replayed]
    assert {r.position for r in results} == {e.position for e in replayed}


# -- several partitions: the judging order (see _arbiter) ----------------------------------------


def _header(stream_id: str, events: list[es.NewEvent], stamp: int) -> Header:
    value = encode(stream_id, claim_of(es.ANY), _prepared(events), 0, uuid.uuid4().bytes, (stamp,))
    header = decode_header(value)
    assert header is not None
    return header


def _judge(order: list[tuple[int, Header]]) -> list[int]:
    """Present two partitions' records to an arbiter in ``order`` (a fetch interleaving),
    retrying those that wait and ticking an idle partition when nothing moves, as the store
    does; return each record's verdict kind, in the order given."""
    arbiter = Arbiter(2)
    queues: list[list[tuple[int, Header]]] = [[], []]
    for position, (partition, header) in enumerate(order):
        queues[partition].append((position, header))
    verdicts: dict[int, Verdict] = {}
    offsets = [0, 0]
    while any(queues):
        moved = False
        for partition, queue in enumerate(queues):
            while queue and arbiter.ready(partition, queue[0][1]):
                position, header = queue.pop(0)
                verdicts[position] = arbiter.apply(partition, offsets[partition], header)
                offsets[partition] += 1
                moved = True
        if not moved:  # a partition is idle: tick it past the waiting record
            waiting = next(p for p, queue in enumerate(queues) if queue)
            for other, stamp in arbiter.blockers(waiting, queues[waiting][0][1]).items():
                tick = _header("", [], stamp)
                assert arbiter.ready(other, tick)
                assert arbiter.apply(other, offsets[other], tick).kind == INVALID
                offsets[other] += 1
    return [verdicts[position].kind for position in range(len(order))]


def test_one_id_in_two_partitions_gets_one_verdict_whatever_the_fetch_order() -> None:
    # The same id in a record of partition 0 (stamp 100) and of partition 1 (stamp 50): the
    # lower key wins, whichever partition an instance happens to fetch first.
    [event] = _events(1)
    early = _header("B-1", [event], 50)
    late = _header("A-1", [event], 100)
    assert _judge([(0, late), (1, early)]) == [REFUSED, ACCEPTED]
    assert _judge([(1, early), (0, late)]) == [ACCEPTED, REFUSED]
    # Equal stamps: the lower partition wins.
    tie = _header("B-2", [event], 100)
    assert _judge([(0, late), (1, tie)]) == [ACCEPTED, REFUSED]
    assert _judge([(1, tie), (0, late)]) == [REFUSED, ACCEPTED]


async def test_one_id_raced_into_three_partitions_is_accepted_once_and_replayed_alike(
    kafka_url: str,
) -> None:
    url = with_topic(kafka_url, _topic(), partitions=3)
    async with es.connect(url) as first, es.connect(url) as second:
        await first.setup()
        assert isinstance(first, KafkaEventStore)
        streams: list[str] = []
        while len(streams) < 6:  # two streams in every partition
            stream = f"Reuse-{uuid.uuid4().hex}"
            if sum(first._partition_of(s) == first._partition_of(stream) for s in streams) < 2:
                streams.append(stream)
        won: list[str] = []
        for _ in range(10):
            [event] = _events(1)
            results = await asyncio.gather(
                *(
                    (first, second)[i % 2].append(stream, [event])
                    for i, stream in enumerate(streams)
                ),
                return_exceptions=True,
            )
            assert all(
                isinstance(r, es.AppendResult | es.DuplicateEventIdError) for r in results
            ), results
            winners = [
                s for s, r in zip(streams, results, strict=True) if not isinstance(r, BaseException)
            ]
            assert len(winners) == 1, winners
            won += winners
    async with es.connect(url) as fresh:
        replayed = await es_collect(fresh.read_all())
    # Judged alike: the fresh instance holds exactly the winners the writers were told of.
    assert sorted(e.stream_id for e in replayed) == sorted(won)
    assert len({e.id for e in replayed}) == 10


async def test_a_record_its_writer_left_waiting_is_released_by_a_readers_tick(
    kafka_url: str,
) -> None:
    # A writer sent its record (with a stamp an hour ahead: its clock is off) and died before
    # ticking the idle partitions: a fresh instance's open waits for nothing but its own tick,
    # sent after TICK_AFTER.
    url = with_topic(kafka_url, _topic(), partitions=3)
    async with es.connect(url) as first:
        await first.setup()
        assert isinstance(first, KafkaEventStore)
        stream = f"Dead-{uuid.uuid4().hex}"
        topic, partition, brokers = first._topic, first._partition_of(stream), first._brokers
    stamp = now_micros() + 3_600_000_000
    value = encode(stream, claim_of(es.ANY), _prepared(_events(1)), 0, uuid.uuid4().bytes, (stamp,))
    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with es.connect(url) as fresh:
        assert isinstance(fresh, KafkaEventStore)
        assert await fresh.stream_version(stream) == 1
        # Its own tick released the record. The tailer can fetch the tick back before the
        # produce's answer reaches the ticker, which counts it then: wait for that answer.
        async with asyncio.timeout(10):
            while fresh._ticker.sent == 0 and fresh._ticker._sending:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert fresh._ticker.sent >= 1
        # Appends after it are judged after it, without waiting an hour (the hybrid clock).
        assert (await fresh.append(stream, _events(1))).version == 2
    assert loop.time() - started < TICK_AFTER + 10


async def test_a_burst_of_cancelled_appends_holds_up_no_later_append(kafka_url: str) -> None:
    # Three partitions, every stream in partition 0: each record waits for ticks to the idle
    # partitions 1 and 2. The records of cancelled appends were ticked for only after
    # tick_after (0.5 s) each, as if their writer had died, and a later append waited for
    # all of them: minutes after a burst of a few hundred. They are ticked for at once now.
    import random

    url = with_topic(kafka_url, _topic(), partitions=3, request_timeout=10)
    async with es.connect(url) as store:
        assert isinstance(store, KafkaEventStore)
        await store.setup()
        streams: list[str] = []
        while len(streams) < 4:
            name = f"Burst-{uuid.uuid4().hex[:8]}"
            if store._partition_of(name) == 0:
                streams.append(name)
        rng = random.Random(20261202)
        cancelled = 0
        for _ in range(200):
            task = asyncio.ensure_future(store.append(rng.choice(streams), _events(1)))
            await asyncio.wait({task}, timeout=rng.uniform(0, 0.004))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            cancelled += task.cancelled()
        assert cancelled > 50
        # Within request_timeout (10 s): the old code needed 0.5 s per cancelled record.
        result = await store.append(streams[0], _events(1))
        assert result.version >= 1
        assert await store.stream_version(streams[0]) == result.version


# -- the harness's broker ----------------------------------------------------------------------


def test_a_broker_whose_chosen_port_was_taken_meanwhile_starts_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another process (or this one's S3 server) binds the port between choosing and binding:
    # tansu fails with "address in use", and the harness moves to another port.
    import socket

    from eventstore_core.local import kafka as local_kafka

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real = local_kafka.free_port
        monkeypatch.setattr(local_kafka, "free_port", lambda: next(ports, None) or real())
        with Tansu() as broker:
            assert broker.port != busy
            assert broker.running
            assert broker.url().startswith(f"kafka://127.0.0.1:{broker.port}/")


def test_the_s3_server_never_takes_the_port_chosen_for_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventstore_core.local import kafka as local_kafka

    ports = iter([4321, 4321, 5432])
    monkeypatch.setattr(local_kafka, "free_port", lambda: next(ports))
    assert local_kafka._MotoS3("bucket", avoid=4321).port == 5432


# -- broker restart ----------------------------------------------------------------------------


async def test_a_live_subscription_survives_a_broker_restart() -> None:
    with Tansu(storage="s3") as broker:
        url = broker.url(_topic(), request_timeout=5, reconnect_timeout=60)
        stream = f"Restart-{uuid.uuid4().hex}"
        async with es.connect(url) as store:
            await store.setup()
            await store.append(stream, _events(3))
            seen: list[es.RecordedEvent] = []
            caught_up = asyncio.Event()
            async with store.subscribe() as subscription:

                async def consume() -> None:
                    async for event in subscription:
                        seen.append(event)
                        if len(seen) == 3:
                            caught_up.set()
                        if len(seen) == 6:
                            return

                consumer = asyncio.create_task(consume())
                await asyncio.wait_for(caught_up.wait(), 10)
                await asyncio.to_thread(broker.restart)
                batch = _events(3)
                for _ in range(100):  # the broker comes back within seconds
                    try:
                        await store.append(stream, batch)
                        break
                    except es.BackendUnavailableError:
                        await asyncio.sleep(0.2)
                await asyncio.wait_for(consumer, 30)
            assert [e.version for e in seen] == [1, 2, 3, 4, 5, 6]
        # The data survived the restart: a new instance replays it all.
        async with es.connect(url) as fresh:
            assert await fresh.stream_version(stream) == 6


# -- Apache Kafka through testcontainers -------------------------------------------------------


async def test_the_store_runs_on_apache_kafka_from_testcontainers_where_docker_answers() -> None:
    from eventstore_core.local.kafka import kafka_container_url
    from eventstore_core.local.postgres import docker_available

    if not await asyncio.to_thread(docker_available):
        pytest.skip("no Docker daemon answers: testcontainers' Kafka module cannot run here")
    with kafka_container_url(_topic(), partitions=3) as url:
        async with es.connect(url) as store:
            await store.setup()
            stream = f"Docker-{uuid.uuid4().hex}"
            batch = _events(2)
            first = await store.append(stream, batch, expected_version=es.NO_STREAM)
            assert await store.append(stream, batch, expected_version=es.NO_STREAM) == first
            assert [e.id for e in await es_collect(store.read_stream(stream))] == [
                e.id for e in batch
            ]


# -- limits and configuration ------------------------------------------------------------------


async def test_an_append_over_the_record_size_limit_is_refused_before_sending(
    store: KafkaEventStore,
) -> None:
    stream = f"Big-{uuid.uuid4().hex}"
    events = [es.NewEvent("Big", {"p": "x" * 300_000}) for _ in range(4)]
    with pytest.raises(es.InvalidEventError, match="max_append_bytes"):
        await store.append(stream, events)
    # Within max_append_bytes by the core's count, but 1,000 events with the longest types
    # make a record over the broker's limit: the store refuses it before sending.
    name = "T" * 255
    events = [es.NewEvent(name, {"p": "x" * 500}) for _ in range(1000)]
    assert sum(len(e.type) + len(b'{"p":""}') + 500 + 2 for e in events) <= (
        store.capabilities.max_append_bytes or 0
    )
    with pytest.raises(es.InvalidEventError, match="max_record_bytes"):
        await store.append(stream, events)
    assert store._tailer is not None
    await store._tailer.sync(5)
    assert store._tailer.highwater[0] == 0, "nothing was sent"
    assert await store.stream_version(stream) == 0


def test_capabilities_follow_the_partition_count() -> None:
    one = es.connect("kafka://127.0.0.1:9/t").capabilities
    three = es.connect("kafka://127.0.0.1:9/t?partitions=3").capabilities
    assert one.global_order == "total"
    assert three.global_order == "partitioned"
    for caps in (one, three):
        assert caps.concurrency == "multi-writer"
        assert caps.idempotency == "permanent"
        assert caps.unique_event_ids == "store"
        assert caps.max_event_bytes < 1_000_000


def test_secrets_stay_out_of_repr() -> None:
    store = es.connect(
        "kafka://app:hunter2@127.0.0.1:9092/t?security_protocol=SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        ssl_password="s3cret",
    )
    assert "hunter2" not in repr(store)
    assert "s3cret" not in repr(store.options)
    assert "hunter2" not in store.url


def test_a_url_without_a_topic_is_a_configuration_error() -> None:
    with pytest.raises(es.ConfigurationError, match="TOPIC"):
        es.connect("kafka://127.0.0.1:9092/")


def test_a_multi_host_url_names_every_broker() -> None:
    store = es.connect("kafka://b1:9093,b2,[::1]:9094/t?bootstrap=b4:9095")
    assert isinstance(store, KafkaEventStore)
    assert store._brokers == ["b1:9093", "b2:9092", "[::1]:9094", "b4:9095"]
    single = es.connect("kafka://[::1]:9093/t")
    assert isinstance(single, KafkaEventStore)
    assert single._brokers == ["[::1]:9093"]


@pytest.mark.parametrize("hosts", ["b1:x,b2:9092", "b1:9092,b2:70000", "b1:9092,::1"])
def test_a_broker_list_with_a_bad_entry_is_a_configuration_error(hosts: str) -> None:
    with pytest.raises(es.ConfigurationError, match="kafka:// broker"):
        es.connect(f"kafka://{hosts}/t")


def test_the_id_table_finds_every_id_it_holds_across_growth() -> None:
    from eventstore_kafka._arbiter import IdTable

    table = IdTable()
    ids = [uuid.uuid4().bytes for _ in range(5000)]
    # Non-random ids too: uuid1 keeps its node in the second half, so both halves are hashed.
    ids += [uuid.uuid1(node=7, clock_seq=i).bytes for i in range(3000)]
    for number, id16 in enumerate(ids):
        assert table.add(id16) == number
    assert all(table.find(id16) == number for number, id16 in enumerate(ids))
    assert table.find(uuid.uuid4().bytes) == -1


def test_the_id_table_quadruples_while_small_then_doubles_keeping_half_its_slots_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventstore_kafka import _arbiter

    monkeypatch.setattr(_arbiter, "_QUADRUPLE_UP_TO", 4096)
    table = _arbiter.IdTable()
    ids = [uuid.uuid4().bytes for _ in range(20000)]
    sizes = [len(table._slots)]
    for id16 in ids:
        table.add(id16)
        if len(table._slots) != sizes[-1]:
            sizes.append(len(table._slots))
        assert 2 * table.count <= len(table._slots)
    assert sizes == [1024, 4096, 8192, 16384, 32768, 65536]
    assert all(table.find(id16) == number for number, id16 in enumerate(ids))


def test_record_tokens_never_repeat_within_or_across_instances() -> None:
    stores = [es.connect("kafka://127.0.0.1:9/tokens") for _ in range(3)]  # never opened
    tokens = [store._new_token() for store in stores for _ in range(2000)]  # type: ignore[attr-defined]
    assert {len(token) for token in tokens} == {16}
    assert len(set(tokens)) == len(tokens)


def test_the_id_table_stays_exact_when_finds_and_adds_interleave() -> None:
    # An add may take the slot where the last find of the same id stopped: every order of
    # misses, hits and adds (several misses before one add, adds of ids never looked up,
    # growth in between) must leave the same set as a plain Python one.
    import random

    from eventstore_kafka._arbiter import IdTable

    chooser = random.Random(20261203)
    table = IdTable()
    added: dict[bytes, int] = {}
    pool = [uuid.uuid4().bytes for _ in range(6000)]
    for _ in range(20000):
        id16 = chooser.choice(pool)
        step = chooser.random()
        if step < 0.4:
            assert table.find(id16) == added.get(id16, -1)
        elif id16 not in added:
            if step < 0.7:
                other = chooser.choice(pool)
                assert table.find(other) == added.get(other, -1)  # another miss in between
            if step < 0.85:
                assert table.find(id16) == -1
            added[id16] = table.add(id16)
    assert all(table.find(id16) == number for id16, number in added.items())
    assert sorted(added.values()) == list(range(len(added)))


# -- index snapshots -------------------------------------------------------------------------


async def test_a_new_instance_starts_from_the_index_snapshot(kafka_url: str) -> None:
    url = with_topic(kafka_url, _topic(), index_every=20)
    stream = f"Indexed-{uuid.uuid4().hex}"
    async with es.connect(url) as writer:
        await writer.setup()
        for i in range(30):
            await writer.append(stream, [es.NewEvent("E", {"i": i})], expected_version=i)
        await writer.save_checkpoint(
            "projector", (await writer.append(stream, _events(1))).position
        )
        assert isinstance(writer, KafkaEventStore)
        for _ in range(200):  # the writer saves it within a second or two
            if writer._indexed_at:
                break
            await asyncio.sleep(0.1)
        assert writer._indexed_at
        await writer.append(stream, _events(2))  # after the snapshot: replayed on open
        async with es.connect(url) as fresh:
            assert isinstance(fresh, KafkaEventStore)
            assert fresh._indexed_at > 0, "it started from the snapshot"
            assert await fresh.stream_version(stream) == 33
            events = await es_collect(fresh.read_stream(stream))
            assert [e.version for e in events] == list(range(1, 34))
            assert await fresh.load_checkpoint("projector") == es.Position.of(30, 0)
            # Its verdicts are the writer's: a stale claim conflicts, a retry is recognised.
            with pytest.raises(es.ConcurrencyError):
                await fresh.append(stream, _events(1), expected_version=5)


async def test_a_reader_that_writes_an_index_snapshot_opens_no_connection_after_open(
    kafka_url: str,
) -> None:
    # Every connection and task of a store exists once it is open: a store that only reads
    # still writes index snapshots, and its producer must not connect for the first one then.
    url = with_topic(kafka_url, _topic(), index_every=20)
    async with es.connect(url) as writer, es.connect(url) as reader:
        await writer.setup()
        assert isinstance(reader, KafkaEventStore)
        await reader.stream_version("Nothing-1")
        before = set(asyncio.all_tasks())
        for i in range(30):
            await writer.append(f"Indexed-{i}", _events(1))
        for _ in range(200):  # the reader saves it within a second or two
            if reader._indexed_at:
                break
            await asyncio.sleep(0.1)
        assert reader._indexed_at, "the reader wrote no index snapshot"
        started = [t for t in asyncio.all_tasks() - before if not t.done()]
        assert not started, f"tasks started after open: {started}"


def test_an_index_snapshot_of_another_format_version_is_ignored() -> None:
    # Version 2 placed the id tables' slots by another hash: loaded as they are, its ids
    # would not be found, and a reused id would be accepted.
    import struct

    import orjson
    from eventstore_kafka import _index
    from eventstore_kafka._arbiter import Arbiter
    from eventstore_kafka._meta import MetaState

    arbiter = Arbiter(1)
    ids = [uuid.uuid4().bytes for _ in range(100)]
    for offset, id16 in enumerate(ids):
        arbiter.logs[0].next_offset = offset
        arbiter.logs[0].accept(offset, f"S-{offset}", id16, 1, None)  # a new stream each
    blob = _index.dump(arbiter, MetaState(), 0)
    loaded = _index.load(blob, 1)
    assert loaded is not None
    assert all(loaded[0].logs[0].ids.find(id16) == n for n, id16 in enumerate(ids))
    (length,) = struct.unpack_from(">I", blob)
    header = orjson.loads(blob[4 : 4 + length])
    header["v"] = _index.VERSION - 1
    older = orjson.dumps(header)
    assert _index.load(struct.pack(">I", len(older)) + older + blob[4 + length :], 1) is None


async def test_a_torn_index_snapshot_is_ignored(store: KafkaEventStore, kafka_url: str) -> None:
    stream = f"Torn-{uuid.uuid4().hex}"
    await store.append(stream, _events(3))
    producer = AIOKafkaProducer(bootstrap_servers=store._brokers, acks="all")
    await producer.start()
    try:  # chunks of a snapshot whose writer died before its manifest
        await producer.send_and_wait(store._index_topic, b"K" + bytes(16) + b"garbage")
    finally:
        await producer.stop()
    async with es.connect(with_topic(kafka_url, store._topic)) as fresh:
        assert isinstance(fresh, KafkaEventStore)
        assert fresh._indexed_at == 0
        assert await fresh.stream_version(stream) == 3


async def test_a_tick_that_could_not_be_sent_is_sent_again_without_being_asked_again() -> None:
    # The record waiting for the tick is not looked at again until something moves (it is
    # held), so a tick lost to a broker restart, or to the background task's restart, must be
    # retried by the ticker itself.
    attempts: list[tuple[int, int]] = []
    sent = asyncio.Event()

    async def send(partition: int, stamp: int) -> None:
        attempts.append((partition, stamp))
        if len(attempts) == 1:
            raise es.BackendUnavailableError("the broker is restarting")
        sent.set()

    ticker = Ticker(send, floor_of=lambda partition: 0)
    running = asyncio.create_task(ticker.run())
    try:
        ticker.need(0, 5, {1: 42}, urgent=True)
        await asyncio.wait_for(sent.wait(), 10)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert attempts == [(1, 42), (1, 42)]
    assert ticker.sent == 1


async def test_a_tick_cut_short_by_the_background_restart_is_sent_by_the_next_run() -> None:
    started, sent = asyncio.Event(), asyncio.Event()
    attempts = 0

    async def send(partition: int, stamp: int) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            started.set()
            await asyncio.Event().wait()  # in flight when the task is cancelled
        sent.set()

    ticker = Ticker(send, floor_of=lambda partition: 0)
    first = asyncio.create_task(ticker.run())
    ticker.need(0, 5, {2: 7}, urgent=True)
    await asyncio.wait_for(started.wait(), 10)
    first.cancel()  # what a failing background task group does to its ticker
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.create_task(ticker.run())  # the supervisor's restart
    try:
        await asyncio.wait_for(sent.wait(), 10)
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    assert attempts == 2


class _CountedPolls:
    """Counts the fetches of a store's long-polling loop (not its rounds)."""

    def __init__(self, store: KafkaEventStore) -> None:
        tailer = store._tailer
        assert tailer is not None
        self.count = 0
        poller = tailer._poller
        fetch = poller.fetch

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await fetch(*args, **kwargs)

        poller.fetch = counted  # type: ignore[method-assign]


async def test_a_lone_writer_leaves_the_log_unpolled_for_rest_ms(kafka_url: str) -> None:
    async with es.connect(with_topic(kafka_url, _topic(), rest_ms=2000)) as store:
        assert isinstance(store, KafkaEventStore)
        await store.setup()
        await store.append("Rest-0", _events(1))
        polls = _CountedPolls(store)
        # Each record lands right behind what this store applied (nobody else writes), whether
        # its ack or the poll brings it first: from the first of them on, the poll rests.
        for i in range(5):
            await store.append(f"Rest-{i}", _events(1))
        await asyncio.sleep(0.3)
        assert polls.count <= 2  # sent before the first of these appends was applied
        resting = polls.count
        await asyncio.sleep(2.5)  # the rest is over: the poll resumes
        assert polls.count > resting


async def test_an_append_behind_another_writers_record_completes_while_its_poll_rests(
    kafka_url: str,
) -> None:
    # A rests after its lone append; B then writes, so A's next ack lands past what A applied:
    # A must wait for B's record (its poll, once the rest is over) and judge its own after it.
    url = with_topic(kafka_url, _topic(), rest_ms=300)
    async with es.connect(url) as a, es.connect(url) as b:
        await a.setup()
        stream = f"Rested-{uuid.uuid4().hex}"
        await a.append(stream, _events(1), expected_version=es.NO_STREAM)
        await b.append(stream, _events(1), expected_version=1)
        async with asyncio.timeout(5):
            written = await a.append(stream, _events(1), expected_version=2)
        assert written.version == 3
        with pytest.raises(es.ConcurrencyError):
            await a.append(stream, _events(1), expected_version=2)


def test_rest_ms_defaults_to_the_poll_wait_and_refuses_zero() -> None:
    assert es.connect("kafka://127.0.0.1:9092/t?fetch_wait_ms=25")._rest_ms == 25  # type: ignore[attr-defined]
    assert es.connect("kafka://127.0.0.1:9092/t?rest_ms=80")._rest_ms == 80  # type: ignore[attr-defined]
    with pytest.raises(es.ConfigurationError, match="rest_ms"):
        es.connect("kafka://127.0.0.1:9092/t?rest_ms=0")


async def test_a_record_polled_before_its_ack_rests_the_poll_unless_another_wrote() -> None:
    # Under load the poll often applies a writer's record before the producer's ack arrives;
    # the ack then finds it applied already. Nobody else wrote in between unless the poll
    # applied another writer's record since this writer's previous one.
    tp = TopicPartition("t", 0)
    tailer = tailer_module.Tailer(
        [tp],
        None,  # type: ignore[arg-type]  # no fetch is made here
        None,  # type: ignore[arg-type]
        lambda index, offsets, values: len(offsets),
        wait_ms=10,
        hole_timeout=1.0,
        rest_ms=100,
        on_progress=lambda: None,
        rest_on=[0],
    )
    tailer.next[0] = 3
    tailer.offer(0, 3, b"")  # acknowledged at the next offset: alone
    assert tailer._alone_at[0] > 0
    tailer._alone_at[0] = -1e9
    tailer.next[0] = 6  # the poll applied 4 (this writer's, below) and 5 before the acks
    tailer.offer(0, 4, b"")
    assert tailer._alone_at[0] > 0  # nobody else's record since offset 3
    tailer._alone_at[0] = -1e9
    tailer.foreign[0] = 5  # the poll applied another writer's record at 5
    tailer.next[0] = 7
    tailer.offer(0, 6, b"")
    assert tailer._alone_at[0] == -1e9
