"""Index snapshots: the arbiter's whole state as bytes, so a new instance need not replay.

Every instance must hold the accepted state of the log before it can judge or read anything;
replaying 1M records costs about 12 s of CPU. Because arbitration is deterministic, the state
after offset ``n`` is the same in every instance, so any instance may save it and any other
may start from it and replay only what came later: open time then grows with the records
since the last snapshot, not with the log.

Snapshots live in the topic ``<topic>.index`` (one partition, written by whichever instance has
applied ``index_every`` records since the snapshot it started from). A snapshot is a series
of chunk records (``b"K"``, its 16-byte id, then up to 512 KiB of the blob) followed by a
manifest (``b"M"``, the id, then the chunks' offsets), written last, so a torn write is never
used. The blob is a small JSON header (sizes, next offsets and key stamps, the meta topic's
checkpoints and snapshot index) and the arrays' raw bytes. A snapshot that does not decode,
or was made for another partition count, byte order or version, is ignored: the instance
replays the log instead.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Any

import orjson

from eventstore_kafka._arbiter import Arbiter, IdTable, PartitionLog
from eventstore_kafka._meta import MetaState

__all__ = ["CHUNK_BYTES", "chunks_of", "decode_manifest", "dump", "load", "manifest_of"]

VERSION = 3
"""2: each partition's key stamp (the judging order of several partitions, see _arbiter).
3: the id tables' slots placed by the ids' CRC-32 (before: a multiplicative hash)."""
CHUNK_BYTES = 512 * 1024
_ARRAYS = (
    "stream_version",
    "stream_last",
    "rec_offset",
    "rec_stream",
    "rec_first",
    "rec_count",
    "rec_prev",
    "rec_event0",
)
_HEADER_LEN = struct.Struct(">I")


def dump(arbiter: Arbiter, meta: MetaState, meta_next: int) -> bytes:
    """The state as one blob (arrays copied as they are: a consistent cut between applies)."""
    logs: list[dict[str, Any]] = []
    sections: list[bytes] = []
    for log in arbiter.logs:
        names = "\n".join(log.names).encode()
        entry: dict[str, Any] = {
            "next": log.next_offset,
            "stamp": log.stamp,
            "names": len(names),
            "streams": len(log.names),
            "ids": len(log.ids.ids),
            "slots": len(log.ids._slots),
        }
        sections.append(names)
        for name in _ARRAYS:
            data = getattr(log, name).tobytes()
            entry[name] = len(data)
            sections.append(data)
        sections.append(bytes(log.ids.ids))
        sections.append(log.ids._slots.tobytes())
        logs.append(entry)
    header = orjson.dumps(
        {
            "v": VERSION,
            "order": sys.byteorder,
            "logs": logs,
            "meta_next": meta_next,
            "checkpoints": meta.checkpoints,
            "snapshots": meta.snapshots,
        }
    )
    return b"".join([_HEADER_LEN.pack(len(header)), header, *sections])


def load(blob: bytes | bytearray, partitions: int) -> tuple[Arbiter, MetaState, int] | None:
    """The state a blob holds, or None when it is not usable here."""
    view = memoryview(blob)  # slices without copies: the arrays copy once, from the view
    try:
        (length,) = _HEADER_LEN.unpack_from(blob)
        header = orjson.loads(bytes(view[4 : 4 + length]))
        if header["v"] != VERSION or header["order"] != sys.byteorder:
            return None
        if len(header["logs"]) != partitions:
            return None
        at = 4 + length
        arbiter = Arbiter(partitions)
        for log, entry in zip(arbiter.logs, header["logs"], strict=True):
            at = _load_log(log, entry, view, at)
        meta = MetaState()
        meta.checkpoints = dict(header["checkpoints"])
        meta.snapshots = {k: (int(v[0]), int(v[1])) for k, v in header["snapshots"].items()}
        if at != len(blob):
            return None
        return arbiter, meta, int(header["meta_next"])
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError):
        return None


def _load_log(log: PartitionLog, entry: dict[str, Any], blob: memoryview, at: int) -> int:
    names = bytes(blob[at : at + entry["names"]]).decode()
    at += entry["names"]
    log.names = names.split("\n") if entry["streams"] else []
    if len(log.names) != entry["streams"]:
        raise ValueError("stream count")
    log.streams = {name: number for number, name in enumerate(log.names)}
    for name in _ARRAYS:
        target: array[int] = array(getattr(log, name).typecode)
        target.frombytes(blob[at : at + entry[name]])
        at += entry[name]
        setattr(log, name, target)
    table = IdTable()
    table.ids = bytearray(blob[at : at + entry["ids"]])
    at += entry["ids"]
    slots: array[int] = array("i")
    slots.frombytes(blob[at : at + 4 * entry["slots"]])
    at += 4 * entry["slots"]
    table._slots = slots
    table._mask = len(slots) - 1
    table.count = len(table.ids) // 16
    log.ids = table
    log.next_offset = int(entry["next"])
    log.stamp = log.floor = int(entry["stamp"])
    return at


def chunks_of(snapshot_id: bytes, blob: bytes) -> list[bytes]:
    """The chunk records of a blob."""
    return [
        b"K" + snapshot_id + blob[start : start + CHUNK_BYTES]
        for start in range(0, len(blob), CHUNK_BYTES)
    ]


def manifest_of(snapshot_id: bytes, offsets: list[int], applied: int) -> bytes:
    """The manifest record: the chunks' offsets, and how many records the state covers."""
    return b"M" + snapshot_id + struct.pack(f">qI{len(offsets)}q", applied, len(offsets), *offsets)


def decode_manifest(value: bytes) -> tuple[bytes, int, list[int]] | None:
    """``(snapshot id, records covered, chunk offsets)`` of a manifest record, else None."""
    if value[:1] != b"M" or len(value) < 29:
        return None
    snapshot_id = value[1:17]
    applied, count = struct.unpack_from(">qI", value, 17)
    if len(value) != 29 + 8 * count:
        return None
    return snapshot_id, applied, list(struct.unpack_from(f">{count}q", value, 29))
