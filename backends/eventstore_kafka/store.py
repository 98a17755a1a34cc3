"""The Kafka adapter: an event store on any Kafka-protocol broker, by log-order arbitration.

``kafka://HOST:PORT[,HOST:PORT...]/TOPIC?partitions=N`` (or more brokers with
``bootstrap=h2:9092,h3:9092``).
Topics: ``TOPIC`` holds one record per append (``_records``), ``TOPIC.meta`` the checkpoints
and snapshots (``_meta``). Every instance tails both with the hole-safe ``_tailer`` and
applies the rule of ``_arbiter`` to each record in offset order: that is where optimistic
concurrency and idempotency are decided, identically in every process, without broker
transactions. A writer sends its record, then applies the log up to it, and reports the
verdict it reached; readers serve accepted records only, from the index the tailer builds
(streams, versions, offsets) and a bounded cache of record values, fetching what the cache
lacks.

Positions: with one partition, ``Position.of(offset, index)`` (the record's offset and the
event's index in it), a total order. With several, :class:`PartitionedPosition` whose offset
is ``record offset * 1000 + index`` (``max_append_events`` is 1000) and whose frontier gives
the next such offset per partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.errors import for_code as error_for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition
from pydantic import Field, SecretStr

from eventstore_core.adapter import (
    CAUGHT_UP,
    BackendUnavailableError,
    Capabilities,
    CaughtUp,
    ConfigurationError,
    EventFilter,
    EventStore,
    EventStoreError,
    ExpectedVersion,
    InvalidEventError,
    ParsedUrl,
    PartitionedPosition,
    Position,
    PreparedEvent,
    RecordedEvent,
    Refused,
    Snapshot,
    StoreOptions,
    Written,
    category_of,
    now_micros,
    serialization,
)
from eventstore_kafka._arbiter import (
    ACCEPTED,
    CONFLICT,
    REFUSED,
    Arbiter,
    Verdict,
)
from eventstore_kafka._cache import ValueCache
from eventstore_kafka._index import chunks_of, decode_manifest, manifest_of
from eventstore_kafka._index import dump as index_dump
from eventstore_kafka._index import load as index_load
from eventstore_kafka._meta import MetaState, decode_snapshot, encode_checkpoint, encode_snapshot
from eventstore_kafka._records import (
    CLAIM_ANY,
    CLAIM_NO_STREAM,
    DecodedEvent,
    claim_of,
    decode_events,
    decode_header,
    encode,
    headers_of,
)
from eventstore_kafka._tailer import Fetcher, Tailer
from eventstore_kafka._ticks import Ticker

__all__ = ["KafkaEventStore", "KafkaOptions"]

log = logging.getLogger("eventstore_kafka")

#: Events of one append: also the factor of a partitioned position's offset.
MAX_APPEND_EVENTS = 1000
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
# A dense, never-cleaned log: the hole rule needs every offset to stay.
_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# Room for the record's own framing and headers beyond the events' payloads.
_RECORD_OVERHEAD = 4096
# An event's share of that: its id (16), lengths (12), es.event_id and es.type headers (~60).
_PER_EVENT = 128
_ABANDONED_KEPT = 4096
"""Tokens of abandoned appends kept for urgent ticks (16 bytes each, see ``_abandoned``)."""


def _broker_address(host: str) -> str:
    """``HOST[:PORT]`` (``[IPv6]:PORT`` too) as the client wants it, port 9092 by default."""
    text = host.strip()
    name, port = text, ""
    if text.startswith("["):
        close = text.find("]")
        name, rest = text[: close + 1], text[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            name = ""
        port = rest[1:]
    elif ":" in text:
        name, _, port = text.rpartition(":")
    if not name or any(c in name for c in "/@ ") or (":" in name and not name.startswith("[")):
        raise ConfigurationError(
            f"kafka:// broker {text!r} is not HOST[:PORT]: kafka://HOST:PORT[,HOST:PORT...]/TOPIC"
        )
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigurationError(f"kafka:// broker {text!r}: the port must be a number, 1-65535")
    return f"{name}:{port or 9092}"


def _append_bytes(max_record_bytes: int) -> int:
    """The event bytes (data, metadata, type) one record of ``max_record_bytes`` can carry."""
    return max_record_bytes - _RECORD_OVERHEAD - MAX_APPEND_EVENTS * _PER_EVENT


class KafkaOptions(StoreOptions):
    """Options of ``kafka://`` URLs (query string or keywords)."""

    partitions: int = Field(default=1, ge=1, le=1000)
    """Partitions of the events topic (a stream lives in one, by the hash of its id)."""
    replication_factor: int = Field(default=1, ge=1, le=100)
    """Replication factor of the topics ``setup()`` creates."""
    bootstrap: str | None = None
    """More ``host:port`` brokers, comma-separated, besides the URL's."""
    client_id: str = "eventstore-core"
    request_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds an append or a read waits for the broker (and for its own record)."""
    hole_timeout: float = Field(default=10.0, gt=0, le=3600)
    """Seconds a missing offset is fetched again before reads fail (never skipped)."""
    fetch_wait_ms: int = Field(default=10, ge=1, le=10_000)
    """The tailer's long-poll wait. Kafka answers a long poll as soon as data arrives;
    tansu only after about a fifth of the wait, so it bounds live latency there."""
    rest_ms: int | None = Field(default=None, ge=1, le=10_000)
    """How long a writing instance leaves the log unpolled after one of its appends landed
    right behind everything it had applied (so nobody else had written); ``fetch_wait_ms`` by
    default. Longer means fewer fetches, so several writer processes get more through a broker
    whose every fetch is costly (tansu lists the partition), but an append that finds another
    writer's records before its own may wait about this long for them."""
    max_record_bytes: int = Field(default=1_000_000, ge=200_000, le=1 << 30)
    """The broker's record size limit (``message.max.bytes``, about 1 MiB by default)."""
    cache_bytes: int = Field(default=16 << 20, ge=0, le=1 << 34)
    """Bytes of record values kept for reads."""
    use_index: bool = True
    """Start from the latest index snapshot on open (false: replay the whole log)."""
    index_every: int = Field(default=100_000, ge=0)
    """Records replayed or applied, beyond the snapshot it started from, after which an
    instance saves an index snapshot to ``TOPIC.index`` for new instances to start from
    (0: never)."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    """Defaults to the URL's user name."""
    sasl_password: SecretStr | None = None
    """Defaults to the URL's password."""
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None


class KafkaEventStore(EventStore):
    """An event store on a Kafka topic (see the module docstring)."""

    Options = KafkaOptions
    options: KafkaOptions
    #: One partition: positions are (offset, index), a token of another shape is refused at
    #: the call (several partitions: PartitionedPosition, checked by type).
    position_parts = 2

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        assert isinstance(options, KafkaOptions)
        topic = url.path.strip("/")
        if not _TOPIC_NAME.match(topic):
            raise ConfigurationError(
                f"kafka:// URLs name the topic as their path (letters, digits, '.', '_', '-'), "
                f"got {topic!r}: kafka://HOST:PORT/TOPIC"
            )
        if not url.host:
            raise ConfigurationError("kafka:// URLs need a broker: kafka://HOST:PORT/TOPIC")
        # A multi-host URL (kafka://h1:9092,h2:9092/t) arrives as the host list, as written.
        if "," in url.host:
            hosts = url.host.split(",")
        else:  # urlsplit took the brackets off an IPv6 address
            name = f"[{url.host}]" if ":" in url.host else url.host
            hosts = [name if url.port is None else f"{name}:{url.port}"]
        if options.bootstrap:
            hosts += options.bootstrap.split(",")
        self._brokers = [_broker_address(host) for host in hosts if host.strip()]
        self._topic = topic
        self._meta_topic = f"{topic}.meta"
        self._index_topic = f"{topic}.index"
        self._indexed_at = 0
        self._has_index = False
        self._partitions = options.partitions
        self._rest_ms = options.fetch_wait_ms if options.rest_ms is None else options.rest_ms
        self.capabilities = Capabilities(
            concurrency="multi-writer",
            idempotency="permanent",
            unique_event_ids="store",
            global_order="total" if options.partitions == 1 else "partitioned",
            live_subscriptions="push",
            # One append is one record: what the events may take of max_record_bytes, after
            # the record's framing and each event's id, lengths and headers (_PER_EVENT). A
            # batch within it can still be refused before sending when its correlation and
            # causation ids or long types push the record over (_append checks the record).
            max_event_bytes=_append_bytes(options.max_record_bytes),
            max_append_bytes=_append_bytes(options.max_record_bytes),
            max_append_events=MAX_APPEND_EVENTS,
            max_snapshot_bytes=options.max_record_bytes - _RECORD_OVERHEAD,
        )
        self._producer: AIOKafkaProducer | None = None
        self._client: AIOKafkaClient | None = None
        self._poll_client: AIOKafkaClient | None = None
        self._fetcher: Fetcher | None = None
        self._tailer: Tailer | None = None
        self._tailing = asyncio.Event()
        self._starting = asyncio.Lock()
        self._arbiter = Arbiter(self._partitions)
        self._meta = MetaState()
        self._meta_next = 0
        self._cache = ValueCache(options.cache_bytes)
        self._pending: dict[bytes, asyncio.Future[tuple[Verdict, int]]] = {}
        self._token_prefix = os.urandom(8)
        # From a random start too: two instances whose prefixes collide still draw apart
        # tokens (a 56-bit start leaves the counter nearly 2**64 appends before it would
        # outgrow its 8 bytes).
        self._tokens = itertools.count(int.from_bytes(os.urandom(7), "big"))
        self._abandoned: dict[bytes, None] = {}
        """Tokens of this instance's appends that ended without a verdict (cancelled, or
        failed after sending), oldest first, at most ``_ABANDONED_KEPT``: their records may be
        in the log, and with several partitions they are ticked for at once like a pending
        append's. Ticked only after ``tick_after`` (a dead writer's record), each of a burst
        of cancelled appends held up every later append by that much: 300 cancelled appends
        stalled the next one for minutes."""
        # Several partitions: ticks for records that wait on an idle partition (_ticks).
        self._ticker = Ticker(self._send_tick, lambda p: self._arbiter.logs[p].floor)

    # -- connections -----------------------------------------------------------------------

    def _connection_options(self) -> dict[str, Any]:
        opts = self.options
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self._brokers,
            "client_id": opts.client_id,
            "request_timeout_ms": int(opts.request_timeout * 1000),
            "security_protocol": opts.security_protocol,
        }
        if opts.security_protocol.startswith("SASL"):
            password = opts.sasl_password.get_secret_value() if opts.sasl_password else None
            kwargs.update(
                sasl_mechanism=opts.sasl_mechanism,
                sasl_plain_username=opts.sasl_username or self._url.username,
                sasl_plain_password=password or self._url.password,
            )
        if opts.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = create_ssl_context(
                cafile=opts.ssl_cafile,
                certfile=opts.ssl_certfile,
                keyfile=opts.ssl_keyfile,
                password=opts.ssl_password.get_secret_value() if opts.ssl_password else None,
            )
        return kwargs

    async def _open(self) -> None:
        kwargs = self._connection_options()
        try:
            self._client = AIOKafkaClient(**kwargs)
            await self._client.bootstrap()
            self._poll_client = AIOKafkaClient(**kwargs)
            await self._poll_client.bootstrap()
            # tansu rejects aiokafka's idempotent producer (InitProducerId): plain acks=all.
            # Safety does not rest on it: a record sent twice is refused by its ids.
            self._producer = AIOKafkaProducer(
                **kwargs,
                acks="all",
                enable_idempotence=False,
                linger_ms=0,
                max_request_size=self.options.max_record_bytes + _RECORD_OVERHEAD,
            )
            await self._producer.start()
        except KafkaError as error:
            await self._close()
            raise BackendUnavailableError(
                f"cannot connect to {', '.join(self._brokers)}: {error}"
            ) from error
        self._fetcher = Fetcher(self._client, max_partition_bytes=1 << 20)
        try:
            await self._start_tailing()
        except BaseException:
            await self._close()
            raise

    async def _close(self) -> None:
        self._ticker.reset()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()
        self._abandoned.clear()
        producer, self._producer = self._producer, None
        clients = (self._client, self._poll_client)
        self._client = self._poll_client = None
        self._tailer = None
        self._tailing = asyncio.Event()
        self._arbiter = Arbiter(self._partitions)
        self._meta = MetaState()
        self._meta_next = 0
        self._indexed_at = 0
        self._cache.clear()
        with contextlib.suppress(Exception):
            if producer is not None:
                await producer.stop()
        for client in clients:
            with contextlib.suppress(Exception):
                if client is not None:
                    await client.close()

    async def _topic_partitions(self, topic: str) -> int | None:
        assert self._client is not None
        # Metadata of all topics: asking for one by name makes brokers with
        # auto.create.topics.enable (tansu, Kafka's default) create it, with their default
        # partition count, before setup() could.
        try:
            cluster = await self._client.fetch_all_metadata()
        except KafkaError as error:
            raise BackendUnavailableError(f"cannot read the cluster metadata: {error}") from error
        found = cluster.partitions_for_topic(topic)
        return len(found) if found else None

    async def _start_tailing(self) -> None:
        """Replay both topics up to now, then let the background task tail them."""
        async with self._starting:  # setup() and the first calls may race to start it
            if self._tailer is None:
                await self._start_tailing_now()

    async def _start_tailing_now(self) -> None:
        events = await self._topic_partitions(self._topic)
        meta = await self._topic_partitions(self._meta_topic)
        if events is None or meta is None:
            return  # before setup(): setup() starts tailing
        if events != self._partitions:
            raise ConfigurationError(
                f"topic {self._topic!r} has {events} partition(s), the URL says "
                f"partitions={self._partitions}"
            )
        assert self._client is not None
        assert self._poll_client is not None
        # Topics made before index snapshots existed have no index topic: replay only.
        self._has_index = bool(await self._topic_partitions(self._index_topic))
        if self._has_index and self.options.use_index:
            await self._load_index()
        parts = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        parts.append(TopicPartition(self._meta_topic, 0))
        poller = Fetcher(self._poll_client, max_partition_bytes=1 << 20)
        await poller.refresh([self._topic, self._meta_topic])
        tailer = Tailer(
            parts,
            Fetcher(self._client, max_partition_bytes=4 << 20),
            poller,
            self._apply,
            wait_ms=self.options.fetch_wait_ms,
            rest_ms=self._rest_ms,
            hole_timeout=self.options.hole_timeout,
            on_progress=self._notifier.notify,
            # The events partitions: every append's ack tells whether others wrote there.
            # Not the meta topic (nothing live reads it; its reads sync first).
            rest_on=range(self._partitions),
            linked=self._partitions > 1,
        )
        tailer.collect = False  # replaying: do not fill the cache with the whole log
        tailer.next = [log_.next_offset for log_ in self._arbiter.logs] + [self._meta_next]
        self._tailer = tailer
        # Records left waiting by writers that died before ticking (_ticks) need this
        # instance's ticks to be judged: tick while replaying, before the background runs.
        ticking = asyncio.ensure_future(self._ticker.run()) if self._partitions > 1 else None
        try:
            await tailer.sync(timeout=max(self.options.request_timeout, 3600))
        finally:
            tailer.collect = True
            if ticking is not None:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking
        index = [TopicPartition(self._index_topic, 0)] if self._has_index else []
        await self._connect_producer([*parts, *index])
        self._tailing.set()

    async def _connect_producer(self, parts: Sequence[TopicPartition]) -> None:
        """Connect the producer to the partitions' leaders now, not at its first send: with
        several partitions an instance that never appends may still have to tick (_ticks),
        and any instance may write an index snapshot once enough events have gone by; neither
        should wait for a connection, nor open one long after ``open()`` (a store's
        connections and tasks are all there once it is open)."""
        assert self._client is not None
        if self._producer is None:
            return
        nodes = {self._client.cluster.leader_for_partition(tp) for tp in parts}
        with contextlib.suppress(KafkaError):
            for node in nodes:
                if node is not None and node >= 0:
                    await self._producer.client.ready(node)

    async def _background(self) -> None:
        await self._tailing.wait()
        assert self._tailer is not None
        indexing = bool(self.options.index_every and self._has_index)
        if not indexing and self._partitions == 1:
            await self._tailer.run()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._tailer.run())
            if indexing:
                group.create_task(self._index_writer())
            if self._partitions > 1:
                group.create_task(self._ticker.run())

    # -- index snapshots (see _index) --------------------------------------------------------

    def _applied(self) -> int:
        return sum(log_.next_offset for log_ in self._arbiter.logs)

    async def _load_index(self) -> None:
        """Start from the latest index snapshot, if there is a usable one."""
        tp = TopicPartition(self._index_topic, 0)
        try:
            highwater = await self._highwater(tp)
            if highwater == 0:
                return
            last = (await self._fetch_from(tp, highwater - 1)).get(highwater - 1)
            manifest = decode_manifest(last or b"")
            if manifest is None:
                return  # a snapshot being written, or torn: replay instead
            snapshot_id, _, offsets = manifest
            # Chunk by chunk into one buffer, so that no more than the blob and one fetch are
            # held at once (a 1M-event index is about 60 MB).
            blob = bytearray()
            parts: dict[int, bytes] = {}
            for offset in offsets:
                if offset not in parts:
                    parts = await self._fetch_from(tp, offset)
                chunk = parts.pop(offset)
                if chunk[1:17] != snapshot_id:
                    raise KeyError(offset)
                blob += memoryview(chunk)[17:]
            del parts
        except (BackendUnavailableError, KeyError):
            log.warning("the index snapshot of %s could not be read; replaying", self._topic)
            return
        loaded = index_load(blob, self._partitions)
        if loaded is None:
            log.warning("the index snapshot of %s is not usable here; replaying", self._topic)
            return
        self._arbiter, self._meta, self._meta_next = loaded
        self._indexed_at = self._applied()

    async def _highwater(self, tp: TopicPartition) -> int:
        assert self._fetcher is not None
        try:
            fetched = await self._fetcher.fetch_one(tp, 0, self.options.request_timeout)
        except TimeoutError:
            raise BackendUnavailableError(f"{tp.topic} did not answer") from None
        return fetched.highwater

    async def _index_writer(self) -> None:
        every = self.options.index_every
        while True:
            await asyncio.sleep(1.0)
            if self._applied() - self._indexed_at >= every:
                await self._write_index()

    async def _write_index(self) -> None:
        assert self._producer is not None
        assert self._tailer is not None
        applied = self._applied()
        # A consistent cut: nothing is applied while dump() runs (no await inside).
        blob = index_dump(self._arbiter, self._meta, self._tailer.next[self._partitions])
        snapshot_id = os.urandom(16)
        offsets: list[int] = []
        try:
            for chunk in chunks_of(snapshot_id, blob):
                metadata = await self._producer.send_and_wait(self._index_topic, chunk, partition=0)
                offsets.append(metadata.offset)
            await self._producer.send_and_wait(
                self._index_topic, manifest_of(snapshot_id, offsets, applied), partition=0
            )
        except KafkaError as error:
            log.warning("saving an index snapshot of %s failed: %s", self._topic, error)
            return
        self._indexed_at = applied
        log.info(
            "saved an index snapshot of %s at %d records (%d bytes)",
            self._topic,
            applied,
            len(blob),
        )

    async def _setup(self) -> None:
        assert self._client is not None
        admin = AIOKafkaAdminClient(**self._connection_options())
        await admin.start()
        try:
            topics = (
                (self._topic, self._partitions),
                (self._meta_topic, 1),
                (self._index_topic, 1),
            )
            for topic, partitions in topics:
                new = NewTopic(
                    topic,
                    partitions,
                    self.options.replication_factor,
                    topic_configs=_TOPIC_CONFIG,
                )
                try:
                    response = await admin.create_topics([new])
                except TopicAlreadyExistsError:
                    continue
                for name, code, *message in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise BackendUnavailableError(
                            f"cannot create topic {name!r}: {error_for_code(code).__name__} "
                            f"{message[0] if message else ''}"
                        )
        except KafkaError as error:
            raise BackendUnavailableError(f"cannot create the topics: {error}") from error
        finally:
            await admin.close()
        await self._start_tailing()

    async def _ready(self) -> Tailer:
        """The tailer; started now if the topics appeared since open (another store's setup)."""
        if self._tailer is None:
            await self._start_tailing()
        if self._tailer is None:
            raise BackendUnavailableError(
                f"topic {self._topic!r} or {self._meta_topic!r} does not exist: "
                "run 'await store.setup()' first"
            )
        return self._tailer

    async def _sync(self, indexes: Sequence[int] | None = None) -> None:
        tailer = await self._ready()
        try:
            await tailer.sync(self.options.request_timeout, indexes)
        except TimeoutError:
            raise BackendUnavailableError(
                f"the broker did not answer within request_timeout={self.options.request_timeout}s"
            ) from None

    # -- applying the log ------------------------------------------------------------------

    def _apply(self, index: int, offsets: list[int], values: list[bytes]) -> int:
        """The tailer's callback: apply records of partition ``index`` (or of the meta topic)."""
        if index == self._partitions:
            for offset, value in zip(offsets, values, strict=True):
                self._meta.apply(offset, value)
            return len(offsets)
        arbiter = self._arbiter
        pending = self._pending
        tailer = self._tailer
        collect = tailer is not None and tailer.collect
        foreign = tailer.foreign if tailer is not None else None
        several = self._partitions > 1
        applied = 0
        for offset, value in zip(offsets, values, strict=True):
            header = decode_header(value)
            if several and header is not None and not arbiter.ready(index, header):
                # Another partition may still hold a record before it (_arbiter): later,
                # and tick that partition if it stays idle (at once for our own record).
                urgent = header.token in pending or header.token in self._abandoned
                self._ticker.need(index, offset, arbiter.blockers(index, header), urgent)
                break
            verdict = arbiter.apply(index, offset, header)
            applied += 1
            if header is None:
                continue
            if verdict.kind == ACCEPTED and collect:
                self._cache.put((index, offset), value)
            if self._abandoned:
                self._abandoned.pop(header.token, None)
            future = pending.pop(header.token, None) if pending else None
            if future is None:
                if foreign is not None:  # another writer's (or an append given up on)
                    foreign[index] = offset
            elif not future.done():
                future.set_result((verdict, offset))
        return applied

    # -- positions -------------------------------------------------------------------------

    def _frontier(self) -> list[int]:
        return [log.next_offset * MAX_APPEND_EVENTS for log in self._arbiter.logs]

    def _position(self, partition: int, offset: int, index: int, applied: bool = True) -> Position:
        """An event's position; with several partitions, its frontier is what this instance
        has applied (``applied``: an append's result) or only its own partition (an event of
        ``read_stream``, which is no part of a read of the whole log)."""
        if self._partitions == 1:
            return Position.of(offset, index)
        frontier = self._frontier() if applied else [0] * self._partitions
        at = offset * MAX_APPEND_EVENTS + index
        frontier[partition] = at + 1
        return PartitionedPosition(partition, at, frontier)

    def _starts(self, after: Position | None) -> list[int]:
        """Per partition, where a read after ``after`` starts (in position offsets)."""
        count = self._partitions
        if after is None:
            return [0] * count
        if count == 1:
            if isinstance(after, PartitionedPosition) or len(after.parts) != 2:
                raise InvalidEventError(
                    f"{after} is not a position of this store (expected 'offset:index')",
                    field="after",
                )
            offset, index = after.parts
            return [offset * MAX_APPEND_EVENTS + index + 1]
        if not isinstance(after, PartitionedPosition):
            raise InvalidEventError(
                f"{after} is not a position of this partitioned store "
                "(expected 'partition/offset@f0.f1...')",
                field="after",
            )
        return [after.next_offset(p) for p in range(count)]

    def _partition_of(self, stream_id: str) -> int:
        # Kafka's default partitioner (murmur2 of the key), so that keyed records produced by
        # other tools land in the same partition as the store's.
        if self._partitions == 1:
            return 0
        return (int(murmur2(stream_id.encode())) & 0x7FFFFFFF) % self._partitions

    # -- fetching values -------------------------------------------------------------------

    async def _values(self, partition: int, offsets: Sequence[int]) -> dict[int, bytes]:
        """The record values at ``offsets`` of an events partition (from the cache or fetched)."""
        found: dict[int, bytes] = {}
        missing: list[int] = []
        for offset in offsets:
            value = self._cache.get((partition, offset))
            if value is None:
                missing.append(offset)
            else:
                found[offset] = value
        if missing:
            wanted = set(missing)
            tp = TopicPartition(self._topic, partition)
            for offset in missing:
                if offset not in found:
                    for at, value in (await self._fetch_from(tp, offset)).items():
                        if at in wanted:
                            found[at] = value
                            self._cache.put((partition, at), value)
        return found

    async def _fetch_from(self, tp: TopicPartition, offset: int) -> dict[int, bytes]:
        """Records from ``offset`` on (at least the one at ``offset``), by raw fetches."""
        assert self._fetcher is not None
        timeout = self.options.request_timeout
        try:
            fetched = await self._fetcher.fetch_one(tp, offset, timeout)
        except TimeoutError:
            fetched = None
        if fetched is None or not fetched.offsets or fetched.offsets[0] != offset:
            raise BackendUnavailableError(
                f"offset {offset} of {tp.topic}/{tp.partition} could not be fetched "
                f"within request_timeout={timeout}s"
            )
        return dict(zip(fetched.offsets, fetched.values, strict=True))

    def _events_of(
        self, partition: int, record: int, value: bytes
    ) -> tuple[str, int, int, list[DecodedEvent]]:
        """Stream id, first version, recorded_at and events of an accepted record."""
        log_ = self._arbiter.logs[partition]
        header = decode_header(value)
        if header is None:
            raise EventStoreError(
                f"record {log_.rec_offset[record]} of {self._topic}/{partition} is not readable"
            )
        return (
            log_.names[log_.rec_stream[record]],
            log_.rec_first[record],
            header.recorded_at,
            decode_events(value, header),
        )

    def _recorded(
        self,
        stream_id: str,
        version: int,
        position: Position | tuple[int, ...],
        event: DecodedEvent,
        recorded_at: int,
    ) -> RecordedEvent:
        return RecordedEvent(
            stream_id,
            version,
            position,
            event.id,
            event.type,
            event.data,
            event.metadata,
            event.correlation_id,
            event.causation_id,
            recorded_at,
        )

    # -- writing ---------------------------------------------------------------------------

    async def _append(
        self, stream_id: str, events: Sequence[PreparedEvent], expected_version: ExpectedVersion
    ) -> Written | Refused:
        tailer = self._tailer or await self._ready()
        assert self._producer is not None
        partition = self._partition_of(stream_id)
        arbiter = self._arbiter
        stream_log = arbiter.logs[partition]
        claim = claim_of(expected_version)
        # What the local state already decides for good (it may lag, but accepted ids and
        # versions never go back): ids taken, or a claim the stream has passed.
        taken = arbiter.holders([event.id.bytes for event in events])
        version = stream_log.version_of(stream_id)
        if taken:
            return await self._refused(events, taken, version)
        if (claim >= 0 and claim < version) or (claim == CLAIM_NO_STREAM and version > 0):
            return Refused(actual=version)
        token = self._new_token()
        recorded_at = now_micros()
        value = encode(stream_id, claim, events, recorded_at, token, self._clock(recorded_at))
        headers = headers_of(stream_id, events)
        size = len(value) + len(stream_id) + 64
        for key, header in headers:
            size += len(key) + len(header) + 8
        if size > self.options.max_record_bytes:
            raise InvalidEventError(
                f"the append would be a {size}-byte Kafka record, over the broker's record size "
                f"limit max_record_bytes={self.options.max_record_bytes} (message.max.bytes): "
                "append fewer or smaller events",
                field="events",
            )
        future: asyncio.Future[tuple[Verdict, int]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        timeout = self.options.request_timeout
        try:
            try:
                metadata = await self._producer.send_and_wait(
                    self._topic,
                    value,
                    key=stream_id.encode(),
                    partition=partition,
                    headers=headers,
                )
            except KafkaError as error:
                raise BackendUnavailableError(
                    f"the append to {self._topic}/{partition} failed: {error}",
                    maybe_applied=True,
                ) from error
            tailer.offer(partition, metadata.offset, value)
            try:
                if not future.done():
                    # Others' records precede this one: the long poll is bringing them, at the
                    # latest once its rest is over.
                    wait_ms = self.options.fetch_wait_ms
                    patience = max(4 * wait_ms, self._rest_ms + wait_ms) / 1000
                    await tailer.reach({partition: metadata.offset + 1}, timeout, patience)
            except TimeoutError:
                raise BackendUnavailableError(
                    f"the record was written at offset {metadata.offset} but could not be read "
                    f"back within request_timeout={timeout}s ({self._standing(tailer)})",
                    maybe_applied=True,
                ) from None
            if not future.done():
                raise EventStoreError(
                    f"offset {metadata.offset} of {self._topic}/{partition} was applied but is "
                    "not the record this store wrote"
                )
            verdict, offset = future.result()
        finally:
            self._pending.pop(token, None)
            if not future.done() and self._partitions > 1:
                self._abandon(token)
        if verdict.kind == ACCEPTED:
            return Written(
                version=verdict.version,
                position=self._position(partition, offset, len(events) - 1),
            )
        if verdict.kind == CONFLICT:
            return Refused(actual=verdict.version)
        if verdict.kind == REFUSED:
            return await self._refused(events, list(verdict.taken), verdict.version)
        raise EventStoreError(f"the record at offset {offset} was judged invalid")

    def _new_token(self) -> bytes:
        """The token of a new record: what lets this instance find its own records in the log.
        Random bytes of the instance and a counter: unique, without asking the system for
        randomness on every append."""
        return self._token_prefix + next(self._tokens).to_bytes(8, "big")

    def _standing(self, tailer: Tailer) -> str:
        """Where the tailer, and with several partitions the judging, stand (for errors)."""
        if self._partitions == 1:
            return tailer.describe()
        floors = ", ".join(str(log_.floor) for log_ in self._arbiter.logs)
        return f"{tailer.describe()}; floors [{floors}]; {self._ticker.describe()}"

    def _abandon(self, token: bytes) -> None:
        """Keep the token of an append that ended without a verdict (see ``_abandoned``)."""
        abandoned = self._abandoned
        abandoned[token] = None
        if len(abandoned) > _ABANDONED_KEPT:  # never sent, most likely: forget the oldest
            del abandoned[next(iter(abandoned))]

    def _clock(self, now: int) -> tuple[int, ...]:
        """A record's stamp with several partitions (see _arbiter): a hybrid clock, the time
        in microseconds but past every stamp seen, so that clocks ahead of this one slow
        nothing for long."""
        if self._partitions == 1:
            return ()
        return (max(now, 1 + max(log_.floor for log_ in self._arbiter.logs)),)

    async def _send_tick(self, partition: int, stamp: int) -> None:
        """Write a tick (a record of no events) with ``stamp`` to ``partition`` (_ticks)."""
        tailer = await self._ready()
        producer = self._producer
        if producer is None:
            return
        value = encode("", CLAIM_ANY, (), now_micros(), self._new_token(), (stamp,))
        try:
            metadata = await producer.send_and_wait(
                self._topic, value, partition=partition, headers=[("es.tick", b"")]
            )
        except KafkaError as error:
            raise BackendUnavailableError(f"a tick to {self._topic}/{partition} failed") from error
        tailer.offer(partition, metadata.offset, value)

    async def _refused(
        self, events: Sequence[PreparedEvent], taken: list[tuple[int, int]], version: int
    ) -> Refused:
        """A refusal carrying the stored events that share ids with ``events``."""
        ids = {event.id for event in events}
        existing: list[RecordedEvent] = []
        bounds: dict[Any, tuple[int, int]] = {}
        for partition, record in taken:
            log_ = self._arbiter.logs[partition]
            offset = log_.rec_offset[record]
            value = (await self._values(partition, [offset]))[offset]
            stream_id, first, recorded_at, decoded = self._events_of(partition, record, value)
            last = first + len(decoded) - 1
            for index, event in enumerate(decoded):
                if event.id in ids:
                    position = self._position(partition, offset, index)
                    existing.append(
                        self._recorded(stream_id, first + index, position, event, recorded_at)
                    )
                    bounds[event.id] = (first, last)
        return Refused(actual=version, existing=existing, batch_bounds=bounds)

    # -- reading ---------------------------------------------------------------------------

    async def _stream_version(self, stream_id: str) -> int:
        partition = self._partition_of(stream_id)
        await self._sync([partition])
        return self._arbiter.logs[partition].version_of(stream_id)

    async def _read_stream_page(
        self, stream_id: str, from_version: int | None, backwards: bool, limit: int
    ) -> Sequence[RecordedEvent]:
        partition = self._partition_of(stream_id)
        await self._sync([partition])
        log_ = self._arbiter.logs[partition]
        records = log_.records_of(stream_id)
        if not records:
            return []
        first_of = log_.rec_first
        count_of = log_.rec_count
        if backwards:
            top = log_.version_of(stream_id) if from_version is None else from_version
            low = max(1, top - limit + 1)
        else:
            low = from_version or 1
            top = low + limit - 1
        # The records holding versions low..top (the chain is short: records, not events).
        picked = [r for r in records if first_of[r] <= top and first_of[r] + count_of[r] > low]
        values = await self._values(partition, [log_.rec_offset[r] for r in picked])
        page: list[RecordedEvent] = []
        for record in picked:
            offset = log_.rec_offset[record]
            stream, first, recorded_at, decoded = self._events_of(partition, record, values[offset])
            for index, event in enumerate(decoded):
                version = first + index
                if low <= version <= top:
                    position = self._position(partition, offset, index, applied=False)
                    page.append(self._recorded(stream, version, position, event, recorded_at))
        if backwards:
            page.reverse()
        return page

    async def _read_all_page(
        self, after: Position | None, filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        starts = self._starts(after)
        await self._sync()
        return await self._page(starts, filter, limit)

    async def _push(
        self, after: Position | None, filter: EventFilter | None
    ) -> AsyncIterator[RecordedEvent | CaughtUp]:
        """Subscriptions: catch up, then events straight from the tailer as it applies them.

        Live pages are read from what the tailer has applied, without the sync round a
        ``read_all`` makes (the wake-up *is* the tailer's progress); one event is handed over
        at a time, so a consumer that stops reading stops this feed (nothing buffers).
        """
        page_size = self.options.page_size
        position = after
        while True:
            page = await self._read_all_page(position, filter, page_size)
            for event in page:
                position = event.position
                yield event
            if len(page) < page_size:
                break
        yield CAUGHT_UP
        tailer = await self._ready()
        while True:
            progressed = tailer.progress_event()  # before reading: no wake-up is lost
            page = await self._page(self._starts(position), filter, page_size)
            for event in page:
                position = event.position
                yield event
            if len(page) < page_size:
                await tailer.wait_progress(progressed, self.options.poll_interval)

    async def _page(
        self, starts: list[int], filter: EventFilter | None, limit: int
    ) -> Sequence[RecordedEvent]:
        if self._partitions == 1:
            return [
                self._recorded(s, v, (at // MAX_APPEND_EVENTS, at % MAX_APPEND_EVENTS), e, t)
                for at, s, v, e, t in await self._scan(0, starts[0], filter, limit)
            ]
        # Several partitions: partition after partition, each in its own order (there is no
        # order between them to follow). That order is the same however a read is cut into
        # pages or resumed: every event carries the running frontier of its read.
        frontier = list(starts)
        page: list[RecordedEvent] = []
        for p in range(self._partitions):
            if len(page) == limit:
                break
            for at, stream, version, event, recorded_at in await self._scan(
                p, starts[p], filter, limit - len(page)
            ):
                frontier[p] = at + 1
                position = PartitionedPosition(p, at, tuple(frontier))
                page.append(self._recorded(stream, version, position, event, recorded_at))
        return page

    async def _scan(
        self, partition: int, start: int, filter: EventFilter | None, limit: int
    ) -> list[tuple[int, str, int, DecodedEvent, int]]:
        """Up to ``limit`` accepted events of a partition from position offset ``start``."""
        log_ = self._arbiter.logs[partition]
        offset, skip = divmod(start, MAX_APPEND_EVENTS)
        record = log_.record_at(offset)
        end = len(log_.rec_offset)
        categories = filter.categories if filter is not None else None
        types = filter.event_types if filter is not None else None
        names = log_.names
        found: list[tuple[int, str, int, DecodedEvent, int]] = []
        while record < end and len(found) < limit:
            # Choose the next records by stream category without fetching anything.
            batch: list[int] = []
            budget = 0
            while record < end and budget < limit - len(found):
                if categories is None or (
                    category_of(names[log_.rec_stream[record]]) in categories
                ):
                    batch.append(record)
                    budget += log_.rec_count[record]
                record += 1
            if not batch:
                break
            values = await self._values(partition, [log_.rec_offset[r] for r in batch])
            for r in batch:
                at = log_.rec_offset[r]
                stream, first, recorded_at, decoded = self._events_of(partition, r, values[at])
                for index, event in enumerate(decoded):
                    if at == offset and index < skip:
                        continue
                    if types is not None and event.type not in types:
                        continue
                    found.append(
                        (at * MAX_APPEND_EVENTS + index, stream, first + index, event, recorded_at)
                    )
                    if len(found) == limit:
                        return found
        return found

    # -- checkpoints and snapshots -----------------------------------------------------------

    async def _write_meta(self, value: bytes, key: bytes) -> None:
        tailer = await self._ready()
        assert self._producer is not None
        try:
            metadata = await self._producer.send_and_wait(
                self._meta_topic, value, key=key, partition=0
            )
            await tailer.reach(
                {self._partitions: metadata.offset + 1}, self.options.request_timeout
            )
        except KafkaError as error:
            raise BackendUnavailableError(
                f"writing to {self._meta_topic} failed: {error}", maybe_applied=True
            ) from error
        except TimeoutError:
            raise BackendUnavailableError(
                f"{self._meta_topic} did not answer within {self.options.request_timeout}s",
                maybe_applied=True,
            ) from None

    async def _save_checkpoint(self, name: str, position: Position) -> None:
        self._starts(position)  # refuses a position of another kind of store
        await self._write_meta(encode_checkpoint(name, str(position)), b"C" + name.encode())

    async def _load_checkpoint(self, name: str) -> Position | None:
        await self._sync([self._partitions])
        token = self._meta.checkpoints.get(name)
        if token is None:
            return None
        if self._partitions == 1:
            return Position.parse(token)
        return PartitionedPosition.parse_token(token)

    async def _save_snapshot(self, snapshot: Snapshot, data: bytes) -> None:
        value = encode_snapshot(snapshot.stream_id, snapshot.version, snapshot.type, data)
        if len(value) > self.options.max_record_bytes:
            raise InvalidEventError(
                f"the snapshot would be a {len(value)}-byte Kafka record, over the broker's "
                f"record size limit max_record_bytes={self.options.max_record_bytes}",
                field="snapshot",
            )
        await self._write_meta(value, b"S" + snapshot.stream_id.encode())

    async def _load_snapshot(self, stream_id: str) -> Snapshot | None:
        await self._sync([self._partitions])
        best = self._meta.snapshots.get(stream_id)
        if best is None:
            return None
        tp = TopicPartition(self._meta_topic, 0)
        value = (await self._fetch_from(tp, best[1]))[best[1]]
        record = decode_snapshot(value)
        return Snapshot(
            stream_id=record.stream_id,
            version=record.version,
            type=record.type,
            data=serialization.loads(record.data),
        )
