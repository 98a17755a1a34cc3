"""A real DynamoDB engine on this machine, for tests, benchmarks and ``eventstore compare``.

Order of preference (see docs/testing.md):

1. ``EVENTSTORE_TEST_DYNAMODB_URL`` from the environment, used as is and never stopped (for
   example ``dynamodb://eventstore_test?region=us-east-1&endpoint_url=http://127.0.0.1:8000``
   for the ``dynamodb`` service of ``docker-compose.yml``);
2. Amazon DynamoDB Local, the real AWS engine (Java), taken from the npm package
   ``amplify-dynamodb-simulator`` which ships ``emulator/DynamoDBLocal.jar``. The package is
   fetched once with ``npm pack`` (the tarball only: the package's 280 JavaScript dependencies
   are not needed to run the jar) and unpacked into ``~/.cache/eventstore-core/``; each session
   then starts ``java -jar DynamoDBLocal.jar -inMemory -sharedDb`` on a free port;
3. a ``moto`` server, with a printed notice, where Java or npm is missing. moto is a Python
   re-implementation, not the engine: it ignores ``ClientRequestToken``, does not enforce the
   4 MB transaction limit and has a single stream shard.

``dynamodb_url()`` is the one entry point a ``conftest.py`` needs::

    @pytest.fixture(scope="session")
    def dynamodb_url() -> Iterator[str]:
        with eventstore_core.local.dynamodb.dynamodb_url() as url:
            yield url

It yields a URL such as ``dynamodb://eventstore_test?region=us-east-1&endpoint_url=...``;
:func:`with_table` gives the same endpoint with another table name, so tests can isolate
themselves by table. The local engines accept any credentials: when the environment has none,
dummy ones are put into ``os.environ`` (inherited by writer subprocesses) for the session.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventstore_core.local import ServiceUnavailableError, cache_dir, free_port, stop_process

ENV_VAR = "EVENTSTORE_TEST_DYNAMODB_URL"

#: The npm package that ships DynamoDB Local, pinned so every machine runs the same engine
#: (2.9.30 carries DynamoDB Local 1.25.1). ``EVENTSTORE_DYNAMODB_SIMULATOR_VERSION`` overrides.
SIMULATOR_PACKAGE = "amplify-dynamodb-simulator"
SIMULATOR_VERSION = "2.9.30"

DEFAULT_TABLE = "eventstore_test"
REGION = "us-east-1"
STARTUP_TIMEOUT = 60.0


def with_table(url: str, table: str) -> str:
    """The same ``dynamodb://`` URL (endpoint, region, options) with another table name."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, table, parts.path, parts.query, parts.fragment))


def make_url(endpoint: str, table: str = DEFAULT_TABLE, region: str = REGION) -> str:
    """A ``dynamodb://`` URL for ``table`` at ``endpoint``."""
    query = urlencode({"region": region, "endpoint_url": endpoint}, safe=":/")
    return f"dynamodb://{table}?{query}"


def endpoint_of(url: str) -> str | None:
    """The ``endpoint_url`` option of a ``dynamodb://`` URL, if it has one."""
    return dict(parse_qsl(urlsplit(url).query)).get("endpoint_url")


def engine_of(url: str) -> str:
    """Which engine answers at the URL's endpoint: ``moto``, ``dynamodb-local`` or ``aws``.

    Told by the HTTP ``Server`` header (moto runs on Werkzeug, DynamoDB Local on Jetty). Tests
    that need real transaction isolation skip on moto: its TransactWriteItems takes no lock,
    and its rollback restores a copy of the whole table over concurrent writes.
    """
    endpoint = endpoint_of(url)
    if endpoint is None:
        return "aws"
    request = urllib.request.Request(endpoint, data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            server = answer.headers.get("Server", "")
    except urllib.error.HTTPError as error:
        server = error.headers.get("Server", "")
    except OSError:
        return "unknown"
    if "Werkzeug" in server or "moto" in server.lower():
        return "moto"
    if "Jetty" in server:
        return "dynamodb-local"
    return "unknown"


def ensure_dummy_credentials() -> None:
    """Give botocore credentials when the environment has none (local engines accept any)."""
    if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
        # DynamoDB Local (>= 1.23) rejects access keys that are not purely alphanumeric.
        os.environ["AWS_ACCESS_KEY_ID"] = "eventstoretest"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "eventstoretest"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


def wait_until_answering(
    endpoint: str, timeout: float, process: subprocess.Popen[bytes] | None
) -> None:
    """Wait until ``endpoint`` answers HTTP (any status); raise if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ServiceUnavailableError(f"the server exited with code {process.returncode}")
        try:
            request = urllib.request.Request(endpoint, data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an HTTP error status is an answer: the server is up
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(f"{endpoint} did not answer within {timeout:.0f}s")
        time.sleep(0.1)


# -- DynamoDB Local --------------------------------------------------------------------------


def install_dynamodb_local(version: str | None = None) -> Path:
    """Return the ``emulator/`` directory of DynamoDB Local, fetching it with npm on first use.

    A file lock makes concurrent sessions (pytest-xdist, two terminals) share one download.
    """
    version = version or os.environ.get("EVENTSTORE_DYNAMODB_SIMULATOR_VERSION", SIMULATOR_VERSION)
    root = cache_dir() / "dynamodb-local"
    target = root / f"{SIMULATOR_PACKAGE}-{version}"
    jar = target / "emulator" / "DynamoDBLocal.jar"
    if jar.is_file():
        return jar.parent
    npm = shutil.which("npm")
    if npm is None:
        raise ServiceUnavailableError("npm is not installed (needed once to fetch DynamoDB Local)")
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.is_file():  # another session installed it while we waited
            return jar.parent
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            # `npm pack` fetches the package's own tarball only (no dependency tree, no
            # install scripts): all we need is the jar and its native libraries.
            result = subprocess.run(
                [npm, "pack", f"{SIMULATOR_PACKAGE}@{version}", "--pack-destination", tmp],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if result.returncode != 0:
                raise ServiceUnavailableError(f"npm pack failed: {result.stderr.strip()[-2000:]}")
            tarballs = list(Path(tmp).glob("*.tgz"))
            if len(tarballs) != 1:
                raise ServiceUnavailableError(f"npm pack produced {tarballs!r}")
            unpacked = Path(tmp) / "unpacked"
            with tarfile.open(tarballs[0]) as archive:
                archive.extractall(unpacked, filter="data")
            emulator = unpacked / "package" / "emulator"
            if not (emulator / "DynamoDBLocal.jar").is_file():
                raise ServiceUnavailableError(
                    f"{SIMULATOR_PACKAGE}@{version} has no DynamoDBLocal.jar"
                )
            target.mkdir(parents=True, exist_ok=True)
            # Rename last, so a half-unpacked directory is never taken for an install.
            os.replace(emulator, target / "emulator")
    return jar.parent


class DynamoDBLocal:
    """Amazon DynamoDB Local on a free port, run with the ``java`` on PATH.

    In memory by default; with ``db_path`` (a directory) its tables live in a file there, so
    they survive :meth:`restart` (the restart tests of the conformance suite use that).
    """

    def __init__(self, port: int | None = None, db_path: Path | None = None) -> None:
        """Prepare (do not start) a server; ``start()`` or ``with`` runs it."""
        self.port = port or free_port()
        self.db_path = db_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def endpoint(self) -> str:
        """The server's HTTP endpoint."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DynamoDBLocal:
        """Install if needed, start the server and wait until it answers."""
        java = shutil.which("java")
        if java is None:
            raise ServiceUnavailableError("java is not installed (DynamoDB Local needs Java 17)")
        emulator = install_dynamodb_local()
        fd, log_path = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log")
        self._log = Path(log_path)
        with os.fdopen(fd, "wb") as log:
            # -sharedDb: one database whatever the credentials and region, so every test
            # process sees the same tables. -disableTelemetry: no calls home from tests.
            self._process = subprocess.Popen(
                [
                    java,
                    "-Djava.library.path=DynamoDBLocal_lib",
                    "-jar",
                    "DynamoDBLocal.jar",
                    *(["-dbPath", str(self.db_path)] if self.db_path else ["-inMemory"]),
                    "-sharedDb",
                    "-disableTelemetry",
                    "-port",
                    str(self.port),
                ],
                cwd=emulator,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_until_answering(self.endpoint, STARTUP_TIMEOUT, self._process)
        except ServiceUnavailableError as error:
            tail = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
            self.stop()
            raise ServiceUnavailableError(
                f"DynamoDB Local did not start: {error}\n{tail}"
            ) from None
        return self

    def stop(self) -> None:
        """Stop the server (its in-memory data is gone) and remove its log."""
        process, self._process = self._process, None
        stop_process(process)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def restart(self) -> None:
        """Stop the server and start it again on the same port (keeps data with ``db_path``)."""
        self.stop()
        self.start()

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- moto fallback ---------------------------------------------------------------------------


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """A ``moto`` server in a thread of this process, stopped on exit."""
    import logging

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        # moto is deliberately not in the ``local`` extra nor in the default development
        # environment (it is large, and not the engine).
        raise ServiceUnavailableError(
            "moto is not installed (in a clone: uv sync --group moto; "
            "otherwise: pip install 'moto[server]')"
        ) from None

    # werkzeug logs every request to stderr otherwise.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until_answering(endpoint, STARTUP_TIMEOUT, None)
        yield endpoint
    finally:
        server.stop()


# -- the session entry point -----------------------------------------------------------------


@contextlib.contextmanager
def dynamodb_url(table: str = DEFAULT_TABLE) -> Iterator[str]:
    """Yield a ``dynamodb://`` URL for the session; stop whatever was started on exit."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        yield from_env
        return
    ensure_dummy_credentials()
    with contextlib.ExitStack() as stack:
        try:
            endpoint = stack.enter_context(DynamoDBLocal()).endpoint
        except ServiceUnavailableError as error:
            notice = (
                f"DynamoDB Local is unavailable ({error}); falling back to a moto server, "
                "which is not the real engine (no ClientRequestToken, no 4 MB transaction "
                "limit, no isolation between concurrent transactions)"
            )
            print(f"\nNOTICE: {notice}", file=sys.stderr)
            # pytest captures the print during fixture setup; a warning reaches its summary.
            warnings.warn(notice, stacklevel=2)
            endpoint = stack.enter_context(moto_endpoint())
        # Yield outside the try: an exception from the tests must not trigger the fallback.
        yield make_url(endpoint, table)


__all__ = [
    "ENV_VAR",
    "REGION",
    "SIMULATOR_PACKAGE",
    "SIMULATOR_VERSION",
    "DynamoDBLocal",
    "ServiceUnavailableError",
    "cache_dir",
    "dynamodb_url",
    "endpoint_of",
    "engine_of",
    "ensure_dummy_credentials",
    "free_port",
    "install_dynamodb_local",
    "make_url",
    "moto_endpoint",
    "with_table",
]
