"""Hole-safe tailing of Kafka partitions over raw Fetch requests.

The store does not use ``AIOKafkaConsumer``: its fetcher advances past whatever a response
holds, and a reader here must never step over a missing offset. Offsets of the store's topics
are dense (no compaction, no transactions, ``retention.ms=-1``, set by ``setup()``), so a
record that is not there yet is a *hole*: tansu was measured returning later batches past a
not-yet-written one under concurrent producers (a naive tailer skipped 9 of 7,200 records).
Every response is therefore taken only up to its first gap; the gap is fetched again, and
if it is still missing after ``hole_timeout`` seconds the tailer raises
:class:`BackendUnavailableError` rather than skip it.

Fetches go through :class:`Fetcher` on an ``AIOKafkaClient``, which gives each response's
high watermark exactly (``end_offsets`` is wrong on tansu after a multi-record batch).
:class:`Tailer` keeps, per tailed partition, the next offset to apply and hands contiguous
records to a callback. Besides its long-polling loop (:meth:`Tailer.run`), anyone may ask for
a *round* — a fetch sent now — to catch up at once: a writer that wants its own record
applied, a reader that wants everything committed before its call (:meth:`Tailer.sync`).
Rounds are coalesced: callers arriving before a round is sent share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.errors import for_code as error_for_code
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from eventstore_core.adapter import BackendUnavailableError, Signal

__all__ = ["Fetched", "Fetcher", "Tailer"]

log = logging.getLogger("eventstore_kafka")


class Fetched(NamedTuple):
    """The contiguous records a fetch returned for one partition, and its high watermark."""

    highwater: int
    offsets: list[int]
    values: list[bytes]
    gap: bool
    """True when the response held records past a missing offset (a hole)."""
    start: int = -1
    """The offset asked for."""
    resume: int = -1
    """With a gap: the first offset the response held past it."""


class Fetcher:
    """Raw Fetch requests for a set of topic partitions, grouped by leader."""

    def __init__(self, client: AIOKafkaClient, max_partition_bytes: int) -> None:
        self.client = client
        self.max_partition_bytes = max_partition_bytes

    async def refresh(self, topics: Sequence[str]) -> None:
        """Make sure the client knows the leaders of ``topics``."""
        for topic in topics:
            self.client.add_topic(topic)
        await self.client.force_metadata_update()

    async def fetch(
        self, wants: Mapping[TopicPartition, int], wait_ms: int
    ) -> dict[TopicPartition, Fetched]:
        """Fetch every partition of ``wants`` from its offset.

        A partition is missing from the answer when the broker returned nothing for it (tansu
        answers an empty response when listing the partition takes longer than the wait).
        """
        cluster = self.client.cluster
        by_node: dict[int, list[tuple[TopicPartition, int]]] = {}
        for tp, offset in wants.items():
            node = cluster.leader_for_partition(tp)
            if node is None or node < 0:
                await self.refresh([tp.topic])
                node = cluster.leader_for_partition(tp)
                if node is None or node < 0:
                    raise BackendUnavailableError(
                        f"no leader is known for {tp.topic}/{tp.partition}"
                    )
            by_node.setdefault(node, []).append((tp, offset))
        if len(by_node) == 1:
            # The common case (one broker leads them all): no child task to outlive a cancel.
            [(node, items)] = by_node.items()
            return await self._fetch_node(node, items, wait_ms)
        answers = await asyncio.gather(
            *(self._fetch_node(node, items, wait_ms) for node, items in by_node.items())
        )
        merged: dict[TopicPartition, Fetched] = {}
        for answer in answers:
            merged.update(answer)
        return merged

    async def fetch_one(
        self,
        tp: TopicPartition,
        offset: int,
        timeout: float,  # noqa: ASYNC109
    ) -> Fetched:
        """Fetch one partition from ``offset`` until the broker answers with records or says
        there are none (the high watermark is at ``offset``), for at most ``timeout`` s.

        tansu quirk: it answers no records at all when listing the partition (its whole
        history, on every fetch) takes longer than the fetch's wait. Each empty answer doubles
        the wait. (The tailer's rounds adapt their wait the same way, see ``_run_round``.)
        """
        wait = 10
        async with asyncio.timeout(timeout):
            while True:
                fetched = (await self.fetch({tp: offset}, wait)).get(tp)
                if fetched is not None and (fetched.offsets or fetched.highwater <= offset):
                    return fetched
                wait = min(2 * wait, 2000)

    async def _fetch_node(
        self, node: int, items: list[tuple[TopicPartition, int]], wait_ms: int
    ) -> dict[TopicPartition, Fetched]:
        topics: dict[str, list[tuple[int, int, int]]] = {}
        wanted: dict[TopicPartition, int] = {}
        for tp, offset in items:
            topics.setdefault(tp.topic, []).append((tp.partition, offset, self.max_partition_bytes))
            wanted[tp] = offset
        request = FetchRequest(
            wait_ms,
            1,
            self.max_partition_bytes * max(1, len(items)),
            0,  # read_uncommitted: the store writes no transactions
            list(topics.items()),
        )
        try:
            response = await self.client.send(node, request)
        except KafkaError as error:
            raise BackendUnavailableError(f"fetch from broker {node} failed: {error}") from error
        result: dict[TopicPartition, Fetched] = {}
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *rest in partitions:
                tp = TopicPartition(topic, partition)
                if error_code:
                    kind = error_for_code(error_code)
                    if getattr(kind, "invalid_metadata", False):
                        self.client.force_metadata_update()
                    raise BackendUnavailableError(
                        f"fetch of {topic}/{partition} failed: {kind.__name__}"
                    )
                start = wanted.get(tp)
                if start is None:
                    continue
                result[tp] = _contiguous(start, highwater, rest[-1])
        return result


def _contiguous(start: int, highwater: int, data: bytes | None) -> Fetched:
    """The records of a response from ``start`` on, up to the first missing offset."""
    offsets: list[int] = []
    values: list[bytes] = []
    gap = False
    resume = -1
    expected = start
    if data:
        records = MemoryRecords(data)
        while records.has_next() and not gap:
            batch = records.next_batch()
            if batch is None:
                break
            for record in batch:
                offset = record.offset
                if offset < expected:
                    continue  # the batch began before the offset asked for
                if offset != expected:
                    gap = True
                    resume = offset
                    break
                offsets.append(offset)
                values.append(record.value or b"")
                expected += 1
    # No record at all although the high watermark is past ``start`` is not a hole: the broker
    # may have had no room left in the response, or no time (tansu). The caller fetches again.
    return Fetched(highwater, offsets, values, gap, start, resume)


Apply = Callable[[int, list[int], list[bytes]], int]
"""``apply(index, offsets, values)``: apply records of tailed partition ``index`` (starting at
its next offset); return how many were applied (fewer when a record must wait)."""


class _RoundAbandonedError(Exception):
    """The caller running a round was cancelled before it finished."""


class Tailer:
    """Applies the records of some partitions in offset order, never stepping over a hole."""

    def __init__(
        self,
        partitions: Sequence[TopicPartition],
        fetcher: Fetcher,
        poller: Fetcher,
        apply: Apply,
        *,
        wait_ms: int,
        hole_timeout: float,
        rest_ms: int,
        on_progress: Callable[[], None],
        rest_on: Sequence[int] = (),
        linked: bool = False,
    ) -> None:
        self.partitions = list(partitions)
        self.index = {tp: i for i, tp in enumerate(self.partitions)}
        self.next = [0] * len(self.partitions)
        """The next offset to apply, per tailed partition."""
        self.highwater = [0] * len(self.partitions)
        self._fetcher = fetcher  # rounds (short waits)
        self._poller = poller  # the long-polling loop, on its own connection
        self._apply = apply
        self._wait_ms = wait_ms
        self._rest_ms = rest_ms
        self._hole_timeout = hole_timeout
        self._void_after = 3 * hole_timeout
        self._on_progress = on_progress
        self._hole_since: list[float | None] = [None] * len(self.partitions)
        self._offered: list[dict[int, bytes]] = [{} for _ in self.partitions]
        self._held: list[tuple[list[int], list[bytes]]] = [([], []) for _ in self.partitions]
        """Per partition, records fetched from its next offset that had to wait (several
        partitions: a record is judged once the others show later stamps, see _arbiter).
        They are kept, not fetched again, and the partition is left out of fetches until
        they are applied: fetching them again would only spin."""
        self._changed = Signal()  # fired at every progress or failure
        self._error: BaseException | None = None
        self._next_round: asyncio.Future[None] | None = None
        self._round_lock = asyncio.Lock()
        self._turn = 0
        self._round_wait_ms = 10
        self._linked = linked
        """Whether a record applied in one partition may let records of another apply (several
        events partitions, see _arbiter)."""
        self._rest_on = list(rest_on)
        """The partitions whose writers' acks may rest the poll (see :meth:`run`)."""
        self.foreign = [-1] * len(self.partitions)
        """Per partition, the offset of the last record applied that this process did not
        write, as the apply callback tells."""
        self._own = [-1] * len(self.partitions)
        """Per partition, the offset of this process's last acknowledged record."""
        self._alone_at = [-1e9] * len(self.partitions)
        """Per partition, when this process's own acknowledged record last landed right at
        the next offset (nobody else had written before it), in loop time."""
        self.collect = True
        """Whether the values fetched are offered to the cache (off while replaying on open)."""

    # -- absorbing responses ---------------------------------------------------------------

    def _absorb(self, answer: Mapping[TopicPartition, Fetched]) -> None:
        """Apply what a response holds beyond each partition's next offset."""
        loop = asyncio.get_running_loop()
        progressed = False
        for tp, fetched in answer.items():  # held partitions too: their watermark is news
            if tp in self.index:
                i = self.index[tp]
                self.highwater[i] = max(self.highwater[i], fetched.highwater)
        # With several partitions a record may depend on another partition's progress
        # (see _arbiter): apply round-robin until nothing moves.
        pending = {
            self.index[tp]: fetched
            for tp, fetched in answer.items()
            if tp in self.index and not self._held[self.index[tp]][0]
        }
        moving = True
        while moving:
            moving = False
            for i, fetched in list(pending.items()):
                self.highwater[i] = max(self.highwater[i], fetched.highwater)
                skip = self.next[i] - fetched.offsets[0] if fetched.offsets else 0
                offsets = fetched.offsets[max(skip, 0) :]
                values = fetched.values[max(skip, 0) :]
                if offsets and offsets[0] == self.next[i]:
                    applied = self._apply(i, offsets, values)
                    if applied:
                        self.next[i] += applied
                        progressed = moving = True
                        self._hole_since[i] = None
                        offered = self._offered[i]
                        if offered:
                            for offset in offsets[:applied]:
                                offered.pop(offset, None)
                    if applied == len(offsets):
                        del pending[i]
                    else:
                        pending[i] = fetched._replace(
                            offsets=offsets[applied:], values=values[applied:]
                        )
                elif not offsets or offsets[0] > self.next[i]:
                    del pending[i]
            # Records this process wrote (offered) may be what another partition waits for.
            if self._apply_all_offered():
                progressed = moving = True
        for i, fetched in pending.items():  # what must wait for other partitions: keep it
            if fetched.offsets and fetched.offsets[0] == self.next[i]:
                self._held[i] = (fetched.offsets, fetched.values)
        for tp, fetched in answer.items():
            index = self.index.get(tp)
            if index is None:
                continue
            i = index
            if self.next[i] < self.highwater[i] and fetched.gap:
                since = self._hole_since[i]
                now = loop.time()
                if since is None:
                    self._hole_since[i] = now
                elif now - since > self._void_after and self._void(i, fetched):
                    progressed = True
                elif now - since > self._hole_timeout:  # never step over: fail
                    self._fail(
                        BackendUnavailableError(
                            f"offset {self.next[i]} of {tp.topic}/{tp.partition} is still "
                            f"missing after {self._hole_timeout:.0f}s while later offsets "
                            "exist (up to the high watermark "
                            f"{self.highwater[i]}); the store never steps over a hole"
                        )
                    )
        if progressed:
            self._progress()

    def _void(self, index: int, fetched: Fetched) -> bool:
        """Step over a gap that stayed missing for ``void_after`` seconds (3 x hole_timeout).

        tansu quirk (0.6, s3 storage): a broker restart while produce requests are in flight
        leaves the offsets it had assigned them with no record, for good (measured: 4 of
        1,464 offsets after one restart under 4 producers; never one that was acknowledged:
        the producer's retry lands at a later offset). Nothing will ever fill them, and a
        store that waited would stay stuck for good, so after ``void_after`` they are
        applied as no-ops, in every instance alike. A hole that is only late (concurrent
        producers) fills within milliseconds: ``void_after`` is thousands of times that.
        """
        offsets = fetched.offsets
        start, resume = self.next[index], fetched.resume
        if fetched.start != start or offsets or resume <= start:
            return False
        tp = self.partitions[index]
        log.warning(
            "offsets %d-%d of %s/%d stayed missing for %.0fs while later ones exist: a broker "
            "restart left them without records; stepping over them",
            start,
            resume - 1,
            tp.topic,
            tp.partition,
            self._void_after,
        )
        voided = list(range(start, resume))
        applied = self._apply(index, voided, [b""] * len(voided))  # no record: a no-op
        self.next[index] += applied
        self._hole_since[index] = None
        return applied > 0

    def offer(self, index: int, offset: int, value: bytes) -> None:
        """Hand over a record this process wrote, at the offset the broker acknowledged.

        The ack is the broker's word for where the record is, and the bytes are the ones sent,
        so the record is applied from them once every earlier offset is: a writer fetches only
        what others wrote in between (usually nothing), never its own record.
        """
        if offset < self.next[index]:
            # The poll brought it before its ack: nobody else wrote meanwhile unless the poll
            # applied another writer's record since this process's previous one.
            if self.foreign[index] < self._own[index]:
                self._alone_at[index] = asyncio.get_running_loop().time()
            self._own[index] = offset
            return
        # Right at the next offset: nobody else wrote before it (the poll may rest, see run);
        # past it: others did, and the poll must bring their records now.
        alone = offset == self.next[index]
        self._own[index] = offset
        self._alone_at[index] = asyncio.get_running_loop().time() if alone else -1e9
        offered = self._offered[index]
        # The common case (one events partition, nobody else wrote before it): nothing else
        # waits in this partition, nor in another for it, so it is applied straight away.
        if (
            alone
            and not self._linked
            and not offered
            and not self._held[index][0]
            and self._apply(index, [offset], [value])
        ):
            self._advance(index)
            self._progress()
            return
        offered[offset] = value
        if self._apply_all_offered():
            self._progress()

    def _apply_all_offered(self) -> bool:
        """Apply held and offered records of every partition until none moves (with several
        partitions, one partition's record may be waiting for another's)."""
        progressed = False
        moving = True
        while moving:
            moving = False
            for index, offered in enumerate(self._offered):
                if self._held[index][0] and self._apply_held(index):
                    progressed = moving = True
                if offered and self._apply_offered(index):
                    progressed = moving = True
        return progressed

    def _apply_held(self, index: int) -> bool:
        offsets, values = self._held[index]
        if offsets[0] != self.next[index]:  # applied meanwhile from an offered copy
            skip = self.next[index] - offsets[0]
            offsets, values = offsets[skip:], values[skip:]
            if not offsets or offsets[0] != self.next[index]:
                self._held[index] = ([], [])
                return False
        applied = self._apply(index, offsets, values)
        self._held[index] = (offsets[applied:], values[applied:])
        if not applied:
            return False
        self.next[index] += applied
        self._hole_since[index] = None
        offered = self._offered[index]
        for offset in offsets[:applied]:
            offered.pop(offset, None)
        return True

    def _apply_offered(self, index: int) -> bool:
        offered = self._offered[index]
        progressed = False
        while True:
            value = offered.get(self.next[index])
            if value is None or not self._apply(index, [self.next[index]], [value]):
                break
            del offered[self.next[index]]
            self._advance(index)
            progressed = True
        return progressed

    def _advance(self, index: int) -> None:
        """Move partition ``index`` past the record just applied at its next offset."""
        self.next[index] += 1
        self.highwater[index] = max(self.highwater[index], self.next[index])
        self._hole_since[index] = None

    def _progress(self) -> None:
        self._error = None
        self._changed.fire()
        self._on_progress()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._changed.fire()
        raise error

    def _wants(self, held: bool = False) -> dict[TopicPartition, int]:
        """Every partition at its next offset, starting with a different one each time;
        those whose records wait for other partitions only with ``held``.

        tansu quirk: a fetch of several partitions returns records for the first partition
        (in request order) that has any, and none for the others. Rotating the order makes
        every partition progress, one response each, however busy the others are.
        """
        count = len(self.partitions)
        self._turn = (self._turn + 1) % count
        order = [(self._turn + k) % count for k in range(count)]
        return {self.partitions[i]: self.next[i] for i in order if held or not self._held[i][0]}

    # -- the long-polling loop -------------------------------------------------------------

    async def run(self) -> None:
        """Tail every partition until cancelled (the store's background task)."""
        self._error = None
        loop = asyncio.get_running_loop()
        rest = self._rest_ms / 1000
        wait = self._wait_ms
        while True:
            # A store writing alone learns from each ack that nobody else wrote (its record
            # lands at the next offset), as much as a poll would tell: while that holds for
            # every partition of ``rest_on`` within the last rest_ms, the poll rests. tansu
            # lists the whole partition for every fetch, and those listings slow its produce
            # path: a poll of one's own records back costs the writer throughput. After the
            # first ack past the next offset (another writer), polls resume within a rest.
            # Several writer processes rest in turns: while one appends alone, the others'
            # appends wait for their polls, which costs them latency but spares the broker
            # listings (4 processes on tansu: 0.09x of raw at rest_ms 10, p99 31 ms; 0.26x at 250,
            # p99 182 ms).
            rested = loop.time() - min((self._alone_at[i] for i in self._rest_on), default=-1e9)
            if rested < rest:
                await asyncio.sleep(rest - rested)
                continue
            wants = self._wants()
            if not wants:  # every partition holds records that wait: for progress, then
                await self.wait_progress(self.progress_event(), 4 * self._wait_ms / 1000)
                continue
            answer = await self._poller.fetch(wants, wait)
            self._absorb(answer)
            # tansu quirk: it answers no records when listing the partition takes longer than
            # the fetch's wait. Behind with an empty answer, the long poll waits longer (as
            # the rounds do): with a fixed 10 ms it never brought another record once the
            # partition's listing took longer (tansu on S3 storage: a live subscriber was
            # stuck for good while writers went on). Caught up, it waits fetch_wait_ms again.
            behind = any(
                self.next[i] < hw and not self._held[i][0] for i, hw in enumerate(self.highwater)
            )
            if not behind:
                wait = self._wait_ms
            elif not any(f.offsets for f in answer.values()):
                wait = min(2 * wait, 2000)
            if any(f.gap for f in answer.values()):
                await asyncio.sleep(0.005)  # a hole: fetch it again, without spinning

    # -- rounds ----------------------------------------------------------------------------

    async def round(self) -> None:
        """Wait for a fetch sent after this call, and apply what it returned.

        The caller that opens a round runs it (no task of its own, so none outlives a
        cancel); callers arriving before it is sent share it.
        """
        while True:
            future = self._next_round
            if future is None:
                future = self._next_round = asyncio.get_running_loop().create_future()
                await self._run_round(future)
                return
            try:
                await asyncio.shield(future)
                return
            except _RoundAbandonedError:
                continue  # its runner was cancelled: open another

    async def _run_round(self, future: asyncio.Future[None]) -> None:
        try:
            async with self._round_lock:
                # Sent from here on: callers arriving now need the next round.
                if self._next_round is future:
                    self._next_round = None
                behind = any(
                    self.next[i] < hw and not self._held[i][0]
                    for i, hw in enumerate(self.highwater)
                )
                # At the end a fetch waits its whole max_wait for news: probe with 1 ms.
                wait = self._round_wait_ms if behind else 1
                # Held partitions too: a read syncs to every partition's high watermark as of
                # this round, and a held one's would stay stale (a later append to it, already
                # acknowledged, would be missed). Their records come back and are dropped.
                wants = self._wants(held=True)
                answer = await self._fetcher.fetch(wants, wait) if wants else {}
                self._absorb(answer)
                # (No wants: every partition holds records that wait, see _held.)
                if wants and not any(f.offsets for f in answer.values()):
                    if behind or len(answer) < len(wants):
                        # tansu quirk: it answers no records when listing the partition takes
                        # longer than the fetch's wait (it lists the partition's whole
                        # history on every fetch). Allow catching up more time.
                        self._round_wait_ms = min(self._round_wait_ms * 2, 2000)
                elif wants and self._round_wait_ms > 2:
                    self._round_wait_ms = self._round_wait_ms * 7 // 8
                if any(f.gap for f in answer.values()):
                    await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            future.set_exception(_RoundAbandonedError())
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        except Exception as error:  # handed to every waiter of the round
            future.set_exception(error)
            future.exception()
            raise
        else:
            future.set_result(None)
        finally:
            if self._next_round is future:
                self._next_round = None

    async def reach(
        self,
        targets: Mapping[int, int],
        timeout: float,  # noqa: ASYNC109
        patience: float = 0.0,
    ) -> None:
        """Wait until partition ``i`` was applied up to ``targets[i]`` (exclusive).

        With ``patience``, first give the long poll that long to bring the records (they are
        usually on their way: other writers' records just before one's own), and only then
        fetch in rounds: every fetch costs the broker a listing of the partition.
        """

        def missing() -> bool:
            return any(self.next[i] < offset for i, offset in targets.items())

        async with asyncio.timeout(timeout):
            if patience and missing():
                loop = asyncio.get_running_loop()
                deadline = loop.time() + patience
                while missing() and loop.time() < deadline:
                    event = self.progress_event()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.0, deadline - loop.time())):
                            await event.wait()
            while missing():
                if all(self._held[i][0] for i, offset in targets.items() if self.next[i] < offset):
                    # What is missing was fetched and waits for other partitions (their
                    # records or ticks): wait for progress before fetching those again.
                    event = self.progress_event()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(4 * self._wait_ms / 1000):
                            await event.wait()
                    if event.is_set():
                        continue
                await self.round()

    async def sync(
        self,
        timeout: float,  # noqa: ASYNC109
        indexes: Sequence[int] | None = None,
    ) -> None:
        """Apply everything committed before this call (in ``indexes``, default all)."""
        await self.round()
        wanted = range(len(self.partitions)) if indexes is None else indexes
        await self.reach({i: self.highwater[i] for i in wanted}, timeout)

    def describe(self) -> str:
        """Where each partition stands, for an error message: applied up to its next offset,
        of its high watermark, and how many fetched records wait for other partitions."""
        parts = []
        for i, tp in enumerate(self.partitions):
            held = len(self._held[i][0])
            waiting = f", {held} waiting for other partitions" if held else ""
            offered = f", {len(self._offered[i])} own ahead" if self._offered[i] else ""
            parts.append(
                f"{tp.topic}/{tp.partition} at {self.next[i]} of {self.highwater[i]}"
                f"{waiting}{offered}"
            )
        return "; ".join(parts)

    def progress_event(self) -> asyncio.Event:
        """An event set at the next progress (or failure): take it before looking."""
        return self._changed.event()

    async def wait_progress(self, event: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until ``event`` (from :meth:`progress_event`) is set, at most ``timeout`` s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
        if self._error is not None:
            raise BackendUnavailableError(str(self._error)) from self._error
