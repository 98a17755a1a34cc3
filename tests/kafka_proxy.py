"""The suite's fault proxy in front of a Kafka-protocol broker.

A Kafka client dials the brokers that Metadata answers name, not the address it was given,
so a plain TCP proxy would carry the bootstrap request only. :class:`KafkaFaultProxy` is the
suite's :class:`FaultProxy` that also rewrites every Metadata answer (API key 3, versions
0-5, what aiokafka asks) so that it names the proxy as the one broker: every connection of
the proxied store then goes through it, and ``lose_answer_after`` can drop a produce answer.
Only for a single-broker cluster (tansu), which is what the test harness runs.
"""

from __future__ import annotations

import asyncio
import struct
from io import BytesIO

from aiokafka.protocol.metadata import (
    MetadataResponse_v0,
    MetadataResponse_v1,
    MetadataResponse_v2,
    MetadataResponse_v3,
    MetadataResponse_v4,
    MetadataResponse_v5,
)
from eventstore_conformance.faults import FaultProxy

__all__ = ["KafkaFaultProxy"]

_METADATA = 3
_RESPONSES = {
    0: MetadataResponse_v0,
    1: MetadataResponse_v1,
    2: MetadataResponse_v2,
    3: MetadataResponse_v3,
    4: MetadataResponse_v4,
    5: MetadataResponse_v5,
}


async def _frame(reader: asyncio.StreamReader) -> bytes | None:
    """One size-prefixed Kafka frame (size included), or None at the end of the stream."""
    try:
        size = await reader.readexactly(4)
        return size + await reader.readexactly(struct.unpack(">i", size)[0])
    except asyncio.IncompleteReadError:
        return None


class KafkaFaultProxy(FaultProxy):
    """A :class:`FaultProxy` whose Metadata answers name the proxy as the broker."""

    def __init__(self, host: str, port: int) -> None:
        """Proxy to the broker at ``(host, port)``."""
        super().__init__(host, port)
        self._metadata: dict[int, int] = {}  # correlation id -> Metadata version asked

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        while (frame := await _frame(reader)) is not None:
            api_key, version, correlation = struct.unpack_from(">hhi", frame, 4)
            if api_key == _METADATA and version in _RESPONSES:
                self._metadata[correlation] = version
            with self._lock:
                markers = self._markers
                if markers and any(m in frame for m in markers):
                    self._markers = ()
                    doomed.set()
            writer.write(frame)
            await writer.drain()

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        while (frame := await _frame(reader)) is not None:
            if doomed.is_set():
                self._lose_answer()
                return  # the answer is dropped; _handle cuts both sides
            (correlation,) = struct.unpack_from(">i", frame, 4)
            version = self._metadata.pop(correlation, None)
            if version is not None:
                frame = self._rewrite(frame, version)
            writer.write(frame)
            await writer.drain()

    def _rewrite(self, frame: bytes, version: int) -> bytes:
        response = _RESPONSES[version].decode(BytesIO(frame[8:]))
        brokers = response.brokers  # type: ignore[attr-defined]
        rewritten = [(node, self.host, self.port, *rest) for node, _, _, *rest in brokers]
        response.brokers = rewritten  # type: ignore[attr-defined]
        body = frame[4:8] + response.encode()
        return struct.pack(">i", len(body)) + body
