"""Shared test configuration: the conformance plugin, and one store URL per backend.

``eventstore_url`` (the fixture the conformance suite asks for) is parametrized over the
backends, so ``tests/test_conformance_suite.py`` runs the whole suite against each; test ids
end in ``[memory]``, ``[sqlite]``, ``[postgres]``, ``[dynamodb]``, ``[kafka]``, ``[kafka3]``
(three partitions), ``[kurrentdb]`` and ``[kurrentdb-strict]`` (the KurrentDB adapter in its
default and its strict idempotency mode, on the protocol double unless
``EVENTSTORE_TEST_KURRENTDB_URL`` names a server). Choose backends
with ``--backends memory,sqlite`` (or ``EVENTSTORE_TEST_BACKENDS``), or ``-k sqlite``; run the
suite against any other store with ``--eventstore-url URL``.

Services start lazily, once per session, and only when a selected test needs them: the
``postgres_url`` and ``dynamodb_url`` fixtures (also used by the adapters' own tests) wrap
``eventstore_core.local``. A backend whose adapter is not importable yet is skipped unless it was
selected explicitly, in which case its tests fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eventstore_core.errors import ConfigurationError
from eventstore_core.registry import load_backend

if TYPE_CHECKING:
    from eventstore_conformance import HoldCommit, NotApplicable, Restartable, Shortfall
    from eventstore_conformance.faults import ProxiedStore

    from eventstore_core.local.kafka import Tansu

pytest_plugins = ["eventstore_conformance"]

#: Backend name (the test id) -> URL scheme.
BACKENDS = {
    "memory": "memory",
    # The memory store with three partitions: the suite on a partitioned global order.
    "memory3": "memory",
    "sqlite": "sqlite",
    "postgres": "postgresql",
    "dynamodb": "dynamodb",
    "kafka": "kafka",
    # The same broker, a topic of three partitions (global_order="partitioned").
    "kafka3": "kafka",
    "kurrentdb": "kurrentdb",
    "kurrentdb-strict": "kurrentdb",
}


def declared_shortfalls() -> dict[str, list[Shortfall]]:
    """Known shortfalls each backend declares next to its conformance run (see
    eventstore_conformance.shortfalls): backend name -> declarations."""
    # Imported here, not at the top: this file is read before pytest_plugins loads the suite,
    # and an early import would keep the suite's asserts from being rewritten.
    from eventstore_conformance import never, notimpl, notyet  # noqa: F401

    return {
        "kurrentdb": [],
        "kurrentdb-strict": [],
    }


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--backends``."""
    parser.addoption(
        "--backends",
        dest="eventstore_backends",
        default=os.environ.get("EVENTSTORE_TEST_BACKENDS"),
        metavar="NAMES",
        help=f"comma-separated backends to run the conformance suite on ({', '.join(BACKENDS)}; "
        "default: all whose adapter is installed)",
    )


def _selected_backends(config: pytest.Config) -> tuple[list[str], bool]:
    """The chosen backend names, and whether they were chosen explicitly."""
    option: str | None = config.getoption("eventstore_backends", None)
    if not option:
        return list(BACKENDS), False
    names = [name.strip() for name in option.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        raise pytest.UsageError(
            f"--backends: unknown backend(s) {', '.join(unknown)} (known: {', '.join(BACKENDS)})"
        )
    return names, True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses ``eventstore_url`` over the selected backends."""
    if "eventstore_url" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("eventstore_url", None):
        names = ["custom"]
    else:
        names, _ = _selected_backends(metafunc.config)
    metafunc.parametrize("eventstore_url", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session (started on first use)."""
    from eventstore_core.local.postgres import postgres_url as start_postgres

    with start_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def eventstore_endpoint(eventstore_url: str) -> tuple[str, int] | None:
    """Where the fault proxy sits: the server the URL names (for Kafka, its bootstrap broker;
    ``eventstore_proxy`` then rewrites the brokers the metadata advertises)."""
    from eventstore_conformance.faults import endpoint_from_url

    return endpoint_from_url(eventstore_url)


@pytest.fixture
def eventstore_proxy(
    eventstore_url: str,
    eventstore_endpoint: tuple[str, int] | None,
    eventstore_url_through: Callable[[str, str, int], str],
) -> Iterator[ProxiedStore]:
    """The suite's fault proxy (``eventstore_conformance.faults``); in front of Kafka, one that
    also names itself as the broker in metadata answers (``kafka_proxy``), since a Kafka
    client dials the advertised broker, not the URL's."""
    from eventstore_conformance.faults import FaultProxy, ProxiedStore

    if eventstore_endpoint is None:
        pytest.skip("the store has no network endpoint to put a proxy in front of")
    if eventstore_url.startswith("kafka"):
        from kafka_proxy import KafkaFaultProxy

        proxy: FaultProxy = KafkaFaultProxy(*eventstore_endpoint)
    else:
        proxy = FaultProxy(*eventstore_endpoint)
    proxy.start()
    try:
        yield ProxiedStore(eventstore_url_through(eventstore_url, proxy.host, proxy.port), proxy)
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def restartable_postgres() -> Iterator[Restartable]:
    """A PostgreSQL server of its own, for the suite's restart test (started on first use)."""
    from eventstore_conformance import Restartable

    from eventstore_core.local.postgres import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        yield Restartable(server.url, server.restart)


@pytest.fixture(scope="session")
def restartable_dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restartable | None]:
    """A DynamoDB Local of its own whose tables live in a file, so that they survive its
    restart (none where DynamoDB Local cannot run: moto keeps nothing across a restart)."""
    from eventstore_conformance import Restartable
    from eventstore_conformance.faults import FaultProxy

    from eventstore_core.local import ServiceUnavailableError
    from eventstore_core.local.dynamodb import DynamoDBLocal, ensure_dummy_credentials, make_url

    if os.environ.get("EVENTSTORE_TEST_DYNAMODB_URL"):
        yield None  # a server of the user's: not ours to restart
        return
    ensure_dummy_credentials()
    # DynamoDB Local keeps its file in SQLite, syncing every write: on a tmpfs the test
    # measures the adapter, not the disk (it keeps the data across the restart all the same).
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("ddb")
    try:
        server = DynamoDBLocal(db_path=base).start()
    except ServiceUnavailableError:
        yield None
        return
    # DynamoDB Local answers a TransactWriteItems before its SQLite COMMIT has run: its
    # commitTransaction queues the COMMIT and returns. Stopped in that window (SIGTERM or
    # SIGKILL alike), it loses a write it acknowledged: 5-8 of about 1,250 appends through 30
    # restarts. Real DynamoDB answers only once a write is durable. So clients reach it
    # through a proxy, and a restart first cuts them off and refuses them, gives the queued
    # commits a second to run, and only then stops the server: whatever a client saw
    # acknowledged is on disk (0 lost through 30 restarts), and what was in flight is lost on
    # the way back, as in a real restart.
    proxy = FaultProxy("127.0.0.1", server.port).start()

    def restart() -> None:
        proxy.refuse()
        proxy.cut_all()
        time.sleep(1.0)
        try:
            server.restart()
        finally:
            proxy.refuse(False)

    try:
        url = make_url(f"http://127.0.0.1:{proxy.port}", "eventstore_restart")
        yield Restartable(url, restart)
    finally:
        proxy.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def restartable_kurrentdb() -> Iterator[Restartable | None]:
    """A protocol double of its own, on a thread of this process, that keeps its data across a
    restart (none when ``EVENTSTORE_TEST_KURRENTDB_URL`` names a real server)."""
    from eventstore_conformance import Restartable

    from eventstore_core.local.kurrentdb import RestartableDouble, url_from_environment

    if url_from_environment() is not None:
        yield None
        return
    with RestartableDouble() as double:
        yield Restartable(double.url, double.restart)


@pytest.fixture(scope="session")
def restartable_tansu() -> Iterator[Tansu]:
    """A tansu broker of its own on S3 storage (moto), whose data survives a restart, for the
    suite's restart test (started on first use)."""
    from eventstore_core.local.kafka import Tansu

    with Tansu(storage="s3") as broker:
        yield broker


@pytest.fixture
def eventstore_restartable(request: pytest.FixtureRequest) -> Restartable | None:
    """The suite's restart test gets a server of its own that the harness may restart:
    PostgreSQL, DynamoDB Local, the KurrentDB double, and Kafka on a tansu of its own with S3
    storage (a topic of 1 or 3 partitions)."""
    from eventstore_conformance import Restartable

    callspec = getattr(request.node, "callspec", None)
    backend = "" if callspec is None else str(callspec.params.get("eventstore_url", ""))
    if backend in ("kafka", "kafka3"):
        broker: Tansu = request.getfixturevalue("restartable_tansu")
        partitions = 3 if backend == "kafka3" else 1
        url = broker.url(f"eventstore_restart{partitions}", partitions=partitions, hole_timeout=1)
        return Restartable(url, broker.restart)
    fixture = {
        "postgres": "restartable_postgres",
        "dynamodb": "restartable_dynamodb",
        "kurrentdb": "restartable_kurrentdb",
        "kurrentdb-strict": "restartable_kurrentdb",
    }.get(backend)
    if fixture is None:
        return None
    server: Restartable | None = request.getfixturevalue(fixture)
    if server is not None and backend == "kurrentdb-strict":
        server = Restartable(server.url + "&idempotency=strict", server.restart)
    return server


@pytest.fixture(scope="session")
def dynamodb_url() -> Iterator[str]:
    """A DynamoDB engine for the session (started on first use)."""
    from eventstore_core.local.dynamodb import dynamodb_url as start_dynamodb

    with start_dynamodb() as url:
        yield url


@pytest.fixture(scope="session")
def kafka_url() -> Iterator[str]:
    """A Kafka-protocol broker for the session: ``EVENTSTORE_TEST_KAFKA_URL``, else Apache
    Kafka through testcontainers where a Docker daemon answers, else tansu.

    The URL's topic is a default; tests pick their own with ``with_topic``.
    """
    from eventstore_core.local.kafka import kafka_url as start_kafka

    with start_kafka("eventstore_test") as url:
        yield url


@pytest.fixture(scope="session")
def kurrentdb_url() -> Iterator[str]:
    """A KurrentDB for the session: ``EVENTSTORE_TEST_KURRENTDB_URL``, else the protocol double."""
    from eventstore_core.local.kurrentdb import kurrentdb_double, url_from_environment

    real = url_from_environment()
    if real is not None:
        yield real
        return
    with kurrentdb_double() as url:
        yield url


@pytest.fixture(scope="session")
def eventstore_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the store the conformance suite runs against, for the backend in param."""
    backend: str = request.param
    if backend == "custom":
        url: str = request.config.getoption("eventstore_url")
        return url
    try:
        load_backend(BACKENDS[backend])
    except ConfigurationError as error:
        if _selected_backends(request.config)[1]:
            pytest.fail(f"backend {backend!r} was selected but cannot be loaded: {error}")
        pytest.skip(f"backend {backend!r} is not available: {error}")
    if backend == "memory":
        # A named memory store is shared by every connection of the process; memory://
        # alone would give each connect a fresh, empty store.
        return "memory://conformance"
    if backend == "memory3":
        return "memory://conformance-partitioned?partitions=3"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite')}/conformance.db"
    if backend == "postgres":
        pg: str = request.getfixturevalue("postgres_url")
        return pg
    if backend in ("kafka", "kafka3"):
        from eventstore_core.local.kafka import with_topic

        kafka: str = request.getfixturevalue("kafka_url")
        # Every test opens new stores, which replay the topic: frequent index snapshots keep
        # that short, and put the snapshot path under the whole suite.
        if backend == "kafka3":
            return with_topic(kafka, "eventstore_conformance3", partitions=3, index_every=500)
        return with_topic(kafka, "eventstore_conformance", index_every=500)
    if backend in ("kurrentdb", "kurrentdb-strict"):
        kurrent: str = request.getfixturevalue("kurrentdb_url")
        if backend == "kurrentdb-strict":
            kurrent += ("&" if "?" in kurrent else "?") + "idempotency=strict"
        return kurrent
    from eventstore_core.local.dynamodb import with_table

    return with_table(request.getfixturevalue("dynamodb_url"), "eventstore_conformance")


@pytest.fixture
def eventstore_shortfalls(request: pytest.FixtureRequest) -> list[Shortfall]:
    """The declared shortfalls of the backend under test (``declared_shortfalls``), per test: the
    backend is the parameter of ``eventstore_url`` in the test's id."""
    callspec = getattr(request.node, "callspec", None)
    backend = "" if callspec is None else str(callspec.params.get("eventstore_url", ""))
    return declared_shortfalls().get(backend, [])


@pytest.fixture
def eventstore_hold_commit(request: pytest.FixtureRequest) -> HoldCommit | NotApplicable | None:
    """The hold-commit hook of the backend under test (``commit_holds.HOLDS``); none for a
    store given with ``--eventstore-url``."""
    from commit_holds import HOLDS

    callspec = getattr(request.node, "callspec", None)
    backend = "" if callspec is None else str(callspec.params.get("eventstore_url", ""))
    return HOLDS.get(backend)
