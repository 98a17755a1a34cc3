"""Log-order arbitration: the one rule that turns a Kafka log into an event store.

Kafka has no conditional append (KIP-27 was never implemented), so the store does not ask the
broker to check anything. A writer appends one record per append to its stream's partition,
carrying the stream, the expected-version claim and the events, *whatever the state*. Every
store instance tails the partitions and applies this rule to each record, in offset order
(with several partitions, in the judging order described below):

1. **Ids.** If an event id of the record is already taken, the record is *refused* and
   changes nothing. An id is taken when an accepted record carries it that comes earlier in
   the *judging order* (below): with one partition, any earlier offset. The writer then
   compares its batch with the stored one (the core's ``idempotent_result``): the very same
   batch is a retry and gets the original result; anything else is a duplicate.
2. **Claim.** Else, if the expected-version claim is false against the stream's accepted
   version, the record is a *conflict* and changes nothing.
3. Else the record is *accepted*: its events take the next versions of the stream.

Why this is safe:

- The verdict is a pure function of the records before it in the judging order, which is
  fixed by the log alone. Every instance, in any process, reaches the same verdicts and the
  same accepted state. The broker's offset order is the only serialisation point; no lock,
  lease or transaction is needed, so it holds on any Kafka-protocol broker (tansu included)
  and with any number of writer processes.
- A stream lives in one partition, so every earlier record of the stream precedes the record
  in that partition's order: the claim is checked against exactly the accepted history.
- A writer learns its outcome by applying its own record with the same rule, so what it
  reports is what every reader applies; readers return accepted records only.
- A lost acknowledgement or a stale retry sends the same batch again, to the same stream and
  so the same partition: the first copy precedes it, its ids are taken, so it is refused and
  reported as the original result, never written twice.
- Offsets are dense and applied strictly in order (the tailer never steps over a hole), so a
  record can never be judged against a state that misses an earlier one.

**The judging order with several partitions.** Offsets order each partition, but nothing
orders two partitions, and ids are unique store-wide: two appends reusing one id at the same
moment in streams of different partitions must not both win. So every record carries a
*stamp* (``Header.clock``: the writer's hybrid clock, microseconds, never below a stamp it has
seen), and its *key* is ``(s, partition, offset)`` where ``s`` is the larger of its stamp and
the key stamp of the partition's previous record (records that are not appends, such as
ticks, count too): keys grow along each partition, and records are judged in key order, a
merge of the partitions. The state a record is judged against is then exactly the records
before it in that order, the same in every instance.

- *When a record may be judged* (:meth:`Arbiter.ready`): when every other partition ``q`` is
  known to hold nothing before it, that is when ``(floor(q), q) > (s, partition)``, where
  ``floor(q)`` is a lower bound of the keys of ``q``'s records not yet applied: the key stamp
  of its last applied record, or of its first fetched and not yet applied one (noted when it
  had to wait). By induction every applied append precedes every one not yet applied, so no
  record is judged before one that precedes it.
- *No deadlock.* Waiting is on other partitions' stamps, which are read from the records
  themselves (no verdict needed), never on their verdicts. Of all records not yet applied,
  the one with the least key waits for nothing but that every other partition shows a later
  stamp: a partition with records shows it as soon as they are fetched; an idle one is given
  a *tick* (``_ticks``), a record that is no append, carries the stamp just after the waiting
  record's and is applied as soon as it is fetched. There is no cycle: the order is total.
- *Bounded wait.* The writer waiting for its own record sends the ticks at once; any other
  instance (a reader whose writer died meanwhile) after ``tick_after``. Extra ticks change
  nothing but stamps.
- *Reuse after completion.* An append sent after another completed comes after it in the
  order: when the first was judged, its writer knew a record of every other partition with a
  later key, and every record written since lies after that one.

The price, with several partitions only: an append is judged once every other partition has
shown a later stamp, under load a record of its own, when idle a tick (a produce to each idle
partition, sent in parallel). One partition needs none of it: the order is the offsets.

The state is kept small (see ``docs/backends/kafka.md``): arrays of machine integers per
record and per stream, event ids in one ``bytearray`` with an open-addressing table of
indexes into it, and a dict only from stream id to stream number.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import NamedTuple
from zlib import crc32 as _crc32

from eventstore_kafka._records import CLAIM_ANY, CLAIM_EXISTS, CLAIM_NO_STREAM, Header

__all__ = [
    "ACCEPTED",
    "CONFLICT",
    "INVALID",
    "REFUSED",
    "Arbiter",
    "IdTable",
    "PartitionLog",
    "Verdict",
    "claim_holds",
]

ACCEPTED = 0
REFUSED = 1
"""An event id was taken: a retry of the stored batch, or a duplicate (the core decides)."""
CONFLICT = 2
INVALID = 3
"""Not a record of this store, or one no store would write (repeated ids): ignored."""

_QUADRUPLE_UP_TO = 1 << 20


class Verdict(NamedTuple):
    """The outcome of one record."""

    kind: int
    version: int
    """Accepted: the stream's new version; otherwise its version when the record was judged."""
    record: int
    """Accepted: the record's number in its partition; otherwise -1."""
    taken: tuple[tuple[int, int], ...] = ()
    """Refused: ``(partition, record number)`` of the accepted records holding the ids."""


def claim_holds(claim: int, version: int) -> bool:
    """Whether a stream at ``version`` satisfies an expected-version claim."""
    if claim == CLAIM_ANY:
        return True
    if claim == CLAIM_NO_STREAM:
        return version == 0
    if claim == CLAIM_EXISTS:
        return version > 0
    return claim == version


class IdTable:
    """A set of 16-byte ids, numbered in insertion order: 16 bytes + ~8 bytes of table each.

    The ids live in one ``bytearray``; an open-addressing table (linear probing, load <= 1/2)
    of ``int32`` holds ``number + 1`` (0 = empty). A Python ``dict`` of ``UUID`` objects costs
    about 150 bytes an id; this costs 24-32.
    """

    __slots__ = ("_mask", "_miss", "_miss_slot", "_slots", "count", "ids")

    def __init__(self) -> None:
        self.ids = bytearray()
        self.count = 0
        self._slots = array("i", bytes(4 * 1024))
        self._mask = 1023
        # The id the last find missed, and the empty slot it ended on: the add that usually
        # follows (an accepted record's id) takes that slot without hashing and probing again.
        self._miss: bytes | None = None
        self._miss_slot = 0

    def find(self, id16: bytes) -> int:
        """The number of ``id16``, or -1."""
        # The hash is the id's CRC-32 (zlib's, in C: a third of the time of mixing the id as
        # a Python int). Every byte counts (uuid1 varies in its first half, uuid7 in its
        # second), and it is the same in every process, as index snapshots need (they carry
        # the table).
        slot = _crc32(id16) & self._mask
        slots = self._slots
        mask = self._mask
        ids = self.ids
        while True:
            entry = slots[slot]
            if entry == 0:
                self._miss = id16
                self._miss_slot = slot
                return -1
            at = (entry - 1) << 4
            if ids[at : at + 16] == id16:
                return entry - 1
            slot = (slot + 1) & mask

    def add(self, id16: bytes) -> int:
        """Add an id known to be absent; return its number."""
        number = self.count
        self.ids += id16
        self.count = number + 1
        miss, self._miss = self._miss, None
        if 2 * self.count > len(self._slots):
            self._grow()
            return number
        if miss is id16:  # the slot where find stopped is still empty: nothing added since
            self._slots[self._miss_slot] = number + 1
            return number
        mask = self._mask
        slot = _crc32(id16) & mask
        slots = self._slots
        while slots[slot]:
            slot = (slot + 1) & mask
        slots[slot] = number + 1
        return number

    def _grow(self) -> None:
        # Every growth rehashes each id in Python (~0.5 us an id): small tables quadruple, so
        # that an id is rehashed a third as often while appends fill them; from _QUADRUPLE_UP_TO
        # slots on they double, which keeps a large table at <= 16 bytes an id.
        size = len(self._slots)
        size *= 4 if size < _QUADRUPLE_UP_TO else 2
        slots = array("i", bytes(4 * size))
        mask = size - 1
        ids = bytes(self.ids)
        for number in range(self.count):
            slot = _crc32(ids[number << 4 : (number << 4) + 16]) & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = number + 1
        self._slots = slots
        self._mask = mask

    def nbytes(self) -> int:
        """Bytes held (for measurements)."""
        return len(self.ids) + 4 * len(self._slots)


class PartitionLog:
    """The accepted state of one partition: its streams, records and event ids.

    Records are numbered in offset order; per record: offset, stream number, first version,
    event count, the stream's previous record and the number of its first event id.
    """

    __slots__ = (
        "floor",
        "ids",
        "names",
        "next_offset",
        "rec_count",
        "rec_event0",
        "rec_first",
        "rec_offset",
        "rec_prev",
        "rec_stream",
        "stamp",
        "stream_last",
        "stream_version",
        "streams",
    )

    def __init__(self) -> None:
        self.streams: dict[str, int] = {}
        self.names: list[str] = []
        self.stream_version = array("q")
        self.stream_last = array("i")
        self.rec_offset = array("q")
        self.rec_stream = array("i")
        self.rec_first = array("q")
        self.rec_count = array("H")
        self.rec_prev = array("i")
        self.rec_event0 = array("q")
        self.ids = IdTable()
        self.next_offset = 0
        """The next offset to apply: every offset below it was applied, in order."""
        self.stamp = 0
        """The key stamp of the last applied record (several partitions; see the module)."""
        self.floor = 0
        """A lower bound of the key stamps of the records not yet applied (>= ``stamp``)."""

    def version_of(self, stream_id: str) -> int:
        """The stream's accepted version (0 when it has none)."""
        number = self.streams.get(stream_id)
        return 0 if number is None else self.stream_version[number]

    def record_of_event(self, event_number: int) -> int:
        """The record holding the event id numbered ``event_number``."""
        return bisect_right(self.rec_event0, event_number) - 1

    def record_at(self, offset: int) -> int:
        """The first accepted record at or after ``offset`` (``len`` when none)."""
        return bisect_left(self.rec_offset, offset)

    def records_of(self, stream_id: str) -> list[int]:
        """The stream's records, oldest first (a walk back along the stream's chain)."""
        number = self.streams.get(stream_id)
        if number is None:
            return []
        records: list[int] = []
        record = self.stream_last[number]
        prev = self.rec_prev
        while record >= 0:
            records.append(record)
            record = prev[record]
        records.reverse()
        return records

    def id_at(self, record: int, index: int) -> bytes:
        """The 16 bytes of the ``index``-th event id of ``record``."""
        at = (self.rec_event0[record] + index) * 16
        return bytes(self.ids.ids[at : at + 16])

    def accept(
        self, offset: int, stream_id: str, ids: bytes, count: int, number: int | None
    ) -> tuple[int, int]:
        """Record an accepted append; return ``(record number, new version)``.

        ``number`` is the stream's number, as the caller looked it up to judge the append
        (None: a new stream).
        """
        if number is None:
            number = len(self.names)
            self.streams[stream_id] = number
            self.names.append(stream_id)
            self.stream_version.append(0)
            self.stream_last.append(-1)
        record = len(self.rec_offset)
        first = self.stream_version[number] + 1
        self.rec_offset.append(offset)
        self.rec_stream.append(number)
        self.rec_first.append(first)
        self.rec_count.append(count)
        self.rec_prev.append(self.stream_last[number])
        table = self.ids
        self.rec_event0.append(table.count)
        if count == 1:
            table.add(ids)
        else:
            for index in range(count):
                table.add(ids[16 * index : 16 * index + 16])
        self.stream_last[number] = record
        version = first + count - 1
        self.stream_version[number] = version
        return record, version

    def nbytes(self) -> int:
        """Bytes held by the arrays and the id table (not the stream dict)."""
        arrays = (
            self.stream_version,
            self.stream_last,
            self.rec_offset,
            self.rec_stream,
            self.rec_first,
            self.rec_count,
            self.rec_prev,
            self.rec_event0,
        )
        return self.ids.nbytes() + sum(a.itemsize * len(a) for a in arrays)


class Arbiter:
    """The accepted state of every partition, and the rule (see the module docstring)."""

    def __init__(self, partitions: int) -> None:
        self.logs = [PartitionLog() for _ in range(partitions)]

    def key_stamp(self, partition: int, header: Header | None) -> int:
        """The key stamp of the partition's next record: its own stamp, never below the
        previous record's (see the module docstring)."""
        stamp = self.logs[partition].stamp
        if header is not None and header.clock and header.clock[0] > stamp:
            return header.clock[0]
        return stamp

    def ready(self, partition: int, header: Header) -> bool:
        """Whether no record of another partition can precede the partition's next record in
        the judging order, so that it may be judged now; if not, note its stamp as the
        partition's floor (what others wait for). Always true with one partition, and for a
        record that is no append (a tick): judging it changes nothing."""
        logs = self.logs
        if len(logs) == 1 or header.event_count == 0:
            return True
        stamp = self.key_stamp(partition, header)
        for other, log in enumerate(logs):
            if other != partition and (
                log.floor < stamp or (log.floor == stamp and other < partition)
            ):
                own = logs[partition]
                if stamp > own.floor:
                    own.floor = stamp
                return False
        return True

    def blockers(self, partition: int, header: Header) -> dict[int, int]:
        """The partitions that keep the partition's next record waiting, each with the stamp a
        tick must carry to release it."""
        stamp = self.key_stamp(partition, header)
        return {
            other: stamp + 1
            for other, log in enumerate(self.logs)
            if other != partition
            and (log.floor < stamp or (log.floor == stamp and other < partition))
        }

    def find_taken(self, partition: int, header: Header) -> list[tuple[int, int]]:
        """``(partition, record)`` of accepted records holding any of the record's ids.

        Everything applied precedes the record in the judging order (see the module), so
        every accepted record of every partition counts.
        """
        ids = header.ids
        if header.event_count == 1:
            return self.holders((ids,))
        count = header.event_count
        return self.holders([ids[16 * index : 16 * index + 16] for index in range(count)])

    def holders(self, ids: Sequence[bytes]) -> list[tuple[int, int]]:
        """``(partition, record)`` of the accepted records holding any of ``ids`` (16 bytes
        each), each record once."""
        logs = self.logs
        if len(logs) == 1 and len(ids) == 1:
            # The common case, kept cheap: every one-event append checks here before sending.
            log = logs[0]
            number = log.ids.find(ids[0])
            return [] if number < 0 else [(0, log.record_of_event(number))]
        taken: list[tuple[int, int]] = []
        for id16 in ids:
            for other, log in enumerate(logs):
                number = log.ids.find(id16)
                if number < 0:
                    continue
                record = log.record_of_event(number)
                if (other, record) not in taken:
                    taken.append((other, record))
        return taken

    def apply(self, partition: int, offset: int, header: Header | None) -> Verdict:
        """Judge the record at ``offset`` (the partition's next offset) and apply it."""
        log = self.logs[partition]
        assert offset == log.next_offset, "records are applied densely, in offset order"
        log.next_offset = offset + 1
        if len(self.logs) > 1:
            stamp = self.key_stamp(partition, header)
            log.stamp = stamp
            if stamp > log.floor:
                log.floor = stamp
        if header is None or header.event_count == 0:
            return Verdict(INVALID, 0, -1)
        count = header.event_count
        ids = header.ids
        stream_id = header.stream_id
        number = log.streams.get(stream_id)
        version = 0 if number is None else log.stream_version[number]
        if count == 1 and len(self.logs) == 1:
            # The common case (one event, one partition) without the general lookup's calls:
            # every append and every record replayed on open is judged here.
            held = log.ids.find(ids)
            if held >= 0:
                return Verdict(REFUSED, version, -1, ((0, log.record_of_event(held)),))
        else:
            if count > 1 and len({ids[16 * i : 16 * i + 16] for i in range(count)}) != count:
                return Verdict(INVALID, 0, -1)
            taken = self.find_taken(partition, header)
            if taken:
                return Verdict(REFUSED, version, -1, tuple(taken))
        claim = header.claim
        if claim != CLAIM_ANY and not claim_holds(claim, version):
            return Verdict(CONFLICT, version, -1)
        record, version = log.accept(offset, stream_id, ids, count, number)
        return Verdict(ACCEPTED, version, record)

    def skip(self, partition: int, offset: int) -> None:
        """Count a record that is not an append of this store (for example a foreign one)."""
        self.apply(partition, offset, None)

    def nbytes(self) -> int:
        """Bytes held by the arrays and id tables of every partition."""
        return sum(log.nbytes() for log in self.logs)
