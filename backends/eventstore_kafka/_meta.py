"""The companion topic ``<topic>.meta``: checkpoints and snapshots.

One partition, never compacted (like the events topic, its offsets stay dense, so the same
hole-safe tailer reads it; tansu does not compact anyway). Every instance tails it and keeps
only small indexes in memory: the latest position token per checkpoint name, and per stream
the version and offset of its best snapshot (highest version; of equal versions the last
saved), whose record is fetched when loaded. Records:

- checkpoint: ``b"C"``, ``>H`` length of the name, the name, the position token;
- snapshot: ``b"S"``, ``>q`` version, ``>H`` length of the stream id, the stream id,
  ``>H`` length of the type, the type, the data (JSON).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = ["MetaState", "SnapshotRecord", "decode_snapshot", "encode_checkpoint", "encode_snapshot"]

_H = struct.Struct(">H")
_Q = struct.Struct(">q")


def encode_checkpoint(name: str, token: str) -> bytes:
    """The meta record of a checkpoint."""
    raw = name.encode()
    return b"C" + _H.pack(len(raw)) + raw + token.encode()


def encode_snapshot(stream_id: str, version: int, type_: str, data: bytes) -> bytes:
    """The meta record of a snapshot."""
    stream = stream_id.encode()
    kind = type_.encode()
    return b"".join(
        (b"S", _Q.pack(version), _H.pack(len(stream)), stream, _H.pack(len(kind)), kind, data)
    )


class SnapshotRecord(NamedTuple):
    """A decoded snapshot record."""

    stream_id: str
    version: int
    type: str
    data: bytes


def decode_snapshot(value: bytes) -> SnapshotRecord:
    """Decode a snapshot record."""
    (version,) = _Q.unpack_from(value, 1)
    at = 9
    (length,) = _H.unpack_from(value, at)
    stream_id = value[at + 2 : at + 2 + length].decode()
    at += 2 + length
    (length,) = _H.unpack_from(value, at)
    type_ = value[at + 2 : at + 2 + length].decode()
    at += 2 + length
    return SnapshotRecord(stream_id, version, type_, value[at:])


class MetaState:
    """What the meta topic says so far."""

    def __init__(self) -> None:
        self.checkpoints: dict[str, str] = {}
        self.snapshots: dict[str, tuple[int, int]] = {}
        """stream id -> (version, offset of the record)."""

    def apply(self, offset: int, value: bytes) -> None:
        """Apply the meta record at ``offset`` (anything unknown is ignored)."""
        try:
            if value[:1] == b"C":
                (length,) = _H.unpack_from(value, 1)
                name = value[3 : 3 + length].decode()
                self.checkpoints[name] = value[3 + length :].decode()
            elif value[:1] == b"S":
                record = decode_snapshot(value)
                best = self.snapshots.get(record.stream_id)
                # The highest version wins; of equal versions, the last saved.
                if best is None or record.version >= best[0]:
                    self.snapshots[record.stream_id] = (record.version, offset)
        except (struct.error, UnicodeDecodeError):
            return
