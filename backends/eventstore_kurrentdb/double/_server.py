"""Assembling the double: one :class:`Log`, served on an insecure and/or a TLS port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from kurrentdbclient.protos.v1 import gossip_pb2_grpc, persistent_pb2_grpc, streams_pb2_grpc
from kurrentdbclient.protos.v2.streams import streams_pb2_grpc as v2_streams_pb2_grpc

from eventstore_kurrentdb.double._auth import Authenticator
from eventstore_kurrentdb.double._cluster import GossipServicer, PersistentSubscriptionsServicer
from eventstore_kurrentdb.double._log import DEFAULT_ID_CACHE_BYTES, DEFAULT_MAX_APPEND_SIZE, Log
from eventstore_kurrentdb.double._multi import MultiStreamServicer
from eventstore_kurrentdb.double._streams import StreamsServicer

#: The double binds the loopback interface only: it is a test tool, not a server.
HOST = "127.0.0.1"
BANNER = (
    "This is the eventstore-core protocol DOUBLE of KurrentDB, not KurrentDB: an in-memory "
    "imitation of its gRPC Streams API for tests. Nothing is durable."
)
#: The gRPC message size the server accepts (KurrentDB allows appends far above gRPC's 4 MiB).
_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass
class DoubleConfig:
    """What the double serves and how."""

    port: int | None = 0
    tls_port: int | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    users: dict[str, str] = field(default_factory=lambda: {"admin": "changeit"})
    id_cache_bytes: int = DEFAULT_ID_CACHE_BYTES
    max_append_size: int = DEFAULT_MAX_APPEND_SIZE
    #: Serve ``AppendRecords`` (26.1+); off, it answers ``UNIMPLEMENTED`` as 25.x does.
    append_records: bool = True


class KurrentDBDouble:
    """A running double. ``async with KurrentDBDouble() as double: double.url``.

    ``restart()`` stops and starts the gRPC servers on the same ports, keeping the data but
    losing what a real node keeps in memory only (the idempotency cache), and dropping every
    open call, as a node restart does.
    """

    def __init__(self, config: DoubleConfig | None = None, log: Log | None = None) -> None:
        self.config = config or DoubleConfig()
        self.log = log or Log(
            id_cache_bytes=self.config.id_cache_bytes,
            max_append_size=self.config.max_append_size,
        )
        self._servers: list[grpc.aio.Server] = []
        self.port: int | None = None
        self.tls_port: int | None = None

    @property
    def url(self) -> str:
        """A ``kurrentdb://`` URL of the insecure port."""
        if self.port is None:
            raise RuntimeError("the double has no insecure port")
        return f"kurrentdb://{HOST}:{self.port}?tls=false"

    async def start(self) -> None:
        """Bind the ports (0 picks a free one) and start serving."""
        config = self.config
        if config.port is not None:
            server = self._build(Authenticator(None), config.port)
            self.port = server.add_insecure_port(f"{HOST}:{self.port or config.port}")
            self._servers.append(server)
            self._register(server, Authenticator(None), self.port)
        if config.tls_port is not None:
            if config.certfile is None or config.keyfile is None:
                raise ValueError("a TLS port needs a certificate and a key file")
            credentials = grpc.ssl_server_credentials(
                [(config.keyfile.read_bytes(), config.certfile.read_bytes())]
            )
            auth = Authenticator(config.users)
            server = self._build(auth, config.tls_port)
            self.tls_port = server.add_secure_port(
                f"{HOST}:{self.tls_port or config.tls_port}", credentials
            )
            self._servers.append(server)
            self._register(server, auth, self.tls_port)
        for server in self._servers:
            await server.start()

    def _build(self, auth: Authenticator, port: int) -> grpc.aio.Server:
        del auth, port
        return grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
            ]
        )

    def _register(self, server: grpc.aio.Server, auth: Authenticator, port: int) -> None:
        streams_pb2_grpc.add_StreamsServicer_to_server(StreamsServicer(self.log, auth), server)  # type: ignore[no-untyped-call]
        v2_streams_pb2_grpc.add_StreamsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            MultiStreamServicer(self.log, auth, append_records=self.config.append_records), server
        )
        gossip_pb2_grpc.add_GossipServicer_to_server(
            GossipServicer("localhost", port, auth), server
        )  # type: ignore[no-untyped-call]
        persistent_pb2_grpc.add_PersistentSubscriptionsServicer_to_server(  # type: ignore[no-untyped-call]
            PersistentSubscriptionsServicer(), server
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; open calls end with ``UNAVAILABLE``/``CANCELLED`` on the client."""
        servers, self._servers = self._servers, []
        await asyncio.gather(*(s.stop(grace) for s in servers))

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop, forget the in-memory caches, wait ``downtime`` seconds, start again."""
        await self.stop()
        self.log.forget_cache()
        if downtime:
            await asyncio.sleep(downtime)
        await self.start()

    async def __aenter__(self) -> KurrentDBDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def running_double(config: DoubleConfig | None = None) -> AsyncIterator[KurrentDBDouble]:
    """Start a double for the duration of the block."""
    double = KurrentDBDouble(config)
    await double.start()
    try:
        yield double
    finally:
        await double.stop()
