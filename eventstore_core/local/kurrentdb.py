"""Start the KurrentDB protocol double in a subprocess and get its URL.

No KurrentDB server can be installed without Docker, so tests and benchmarks run against
:mod:`eventstore_kurrentdb.double` (an in-memory imitation of the server's gRPC API, labelled
as such), started here on a free loopback port::

    with kurrentdb_double() as url:          # kurrentdb://127.0.0.1:PORT?tls=false
        async with es.connect(url) as store: ...

``EVENTSTORE_TEST_KURRENTDB_URL`` (see ``url_from_environment``) points tests at a real server
instead, e.g. the ``kurrentdb`` service of docker-compose.yml.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from eventstore_core.local import stop_process

__all__ = ["ENV_VAR", "RestartableDouble", "kurrentdb_double", "url_from_environment"]

ENV_VAR = "EVENTSTORE_TEST_KURRENTDB_URL"
_START_TIMEOUT = 30.0


def url_from_environment() -> str | None:
    """The URL of a real server to test against, if ``EVENTSTORE_TEST_KURRENTDB_URL`` is set."""
    return os.environ.get(ENV_VAR) or None


@contextlib.contextmanager
def kurrentdb_double(extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Run the double (``python -m eventstore_kurrentdb.double --port 0``) for the block.

    Yields its ``kurrentdb://`` URL (insecure, loopback). ``extra_args`` go to the double's
    command line (``--id-cache-bytes N``, ``--max-append-size N``).
    """
    command = [sys.executable, "-m", "eventstore_kurrentdb.double", "--port", "0", *extra_args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        port = _wait_for_port(process)
        yield f"kurrentdb://127.0.0.1:{port}?tls=false"
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


def _wait_for_port(process: subprocess.Popen[str]) -> int:
    # The double prints "listening: insecure 127.0.0.1:PORT" once it serves.
    assert process.stdout is not None
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            code = process.poll()
            raise RuntimeError(f"the KurrentDB double exited before serving (exit code {code})")
        if line.startswith("listening:"):
            return int(line.rsplit(":", 1)[1].split(",")[0])
    raise RuntimeError("the KurrentDB double did not start in time")


class RestartableDouble:
    """The double on an event loop of its own thread, for restart tests: ``restart()`` stops its
    servers (every open call fails, as on a node restart), waits ``downtime`` and serves again
    on the same port, keeping the data; the server's idempotency cache is lost, as on a real
    node. Use ``with RestartableDouble() as double: double.url``.
    """

    def __init__(self, downtime: float = 0.5) -> None:
        """Prepare (do not start) a double; ``with`` runs it."""
        self.downtime = downtime
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kurrentdb-double", daemon=True
        )
        self._double: Any = None

    @property
    def url(self) -> str:
        """The double's ``kurrentdb://`` URL (insecure, loopback)."""
        url: str = self._double.url
        return url

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT)

    def restart(self) -> None:
        """Stop serving, wait ``downtime`` seconds, serve again; returns once it serves."""
        self._run(self._double.restart(downtime=self.downtime))

    def __enter__(self) -> RestartableDouble:
        # Imported here: the core does not depend on the adapter's package.
        from eventstore_kurrentdb.double import KurrentDBDouble

        self._thread.start()
        self._double = KurrentDBDouble()
        self._run(self._double.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._double is not None:
                self._run(self._double.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
