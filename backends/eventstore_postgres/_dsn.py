"""From a ``postgresql://`` store URL to the DSN asyncpg connects with.

A store URL is a libpq connection URI whose query string may also hold this adapter's own
options (``schema``, ``pool_max_size``...). The two are told apart by name: the parameters
listed in :data:`LIBPQ_PARAMETERS` are the connection parameters asyncpg reads from a DSN, and
they go to asyncpg untouched; every other parameter must be one of the adapter's options,
validated (and a typo refused) by pydantic. So every form libpq documents works as it does
with ``psql``:

- a Unix-socket directory: ``postgresql://app@/app?host=/var/run/postgresql``
- several hosts, tried in turn: ``postgresql://app@db1:5432,db2:5433/app``
  with ``target_session_attrs=read-write`` (or ``primary``, ``standby``...)
- server settings at connection start: ``options=-c%20search_path%3Dapp``
- a service file entry, a password file, Kerberos: ``service``, ``passfile``, ``krbsrvname``

A few libpq parameters are also the adapter's options, and are validated as such:
``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``connect_timeout`` and
``application_name``. Server settings other than through ``options`` are not accepted in the
query string: asyncpg would send any unknown parameter to the server as a setting, and a
mistyped adapter option would then fail only at connection time, as an unknown setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from eventstore_core.adapter import ParsedUrl, StoreOptions

__all__ = ["LIBPQ_PARAMETERS", "LibpqOptions", "build_dsn"]

#: Connection parameters asyncpg takes from a DSN's query string (asyncpg 0.29 to 0.32), minus
#: those that are also options of the adapter (``sslmode``, ``sslrootcert``, ``sslcert``,
#: ``sslkey``), plus ``options`` (sent to the server at start-up, as libpq does).
LIBPQ_PARAMETERS = frozenset(
    {
        "host",
        "port",
        "dbname",
        "database",
        "user",
        "password",
        "passfile",
        "service",
        "options",
        "target_session_attrs",
        "sslcrl",
        "sslpassword",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
    }
)

#: The adapter's options that asyncpg reads from the DSN too, so they are copied into it.
_TLS_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey")


class LibpqOptions(StoreOptions):
    """Options that keep libpq's connection parameters apart from the adapter's own.

    The parameters named in :data:`LIBPQ_PARAMETERS`, given in the URL's query string or as
    keywords of ``es.connect``, are moved into :attr:`libpq` before validation, so the
    options model (which refuses unknown names) sees only the adapter's options.
    """

    libpq: dict[str, str] = Field(default_factory=dict)
    """libpq connection parameters passed through to asyncpg (``host``, ``options``,
    ``target_session_attrs``...)."""

    @model_validator(mode="before")
    @classmethod
    def _split_libpq(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        options = dict(data)
        given = options.pop("libpq", None) or {}
        if not isinstance(given, Mapping):
            return {**options, "libpq": given}  # let validation say what is wrong with it
        libpq = dict(given)
        for name in LIBPQ_PARAMETERS & options.keys():
            value = options.pop(name)
            # asyncpg wants strings here, as they would come from the URL (port=5432 or 5432).
            libpq[name] = value if isinstance(value, str) else str(value)
        options["libpq"] = libpq
        return options

    @model_serializer(mode="wrap")
    def _flatten_libpq(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Dumped under the names the URL uses (host=..., not libpq={"host": ...}), so that
        # ``eventstore info`` shows options as written, and a dump validates back unchanged.
        dumped: dict[str, Any] = handler(self)
        return {**dumped.pop("libpq", {}), **dumped}


def build_dsn(url: ParsedUrl, options: StoreOptions) -> str:
    """The DSN for asyncpg: the URL's user, password, hosts and database, and libpq's
    parameters; none of the adapter's own options, which asyncpg would send as settings."""
    parts = urlsplit(url.url)
    query: dict[str, str] = {}
    if isinstance(options, LibpqOptions):
        query.update(options.libpq)
    for name in _TLS_OPTIONS:
        value = getattr(options, name, None)
        if value is not None:
            query[name] = str(value)
    # netloc as written: asyncpg parses user:password@, multi-host lists and [IPv6] itself.
    return urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(query, quote_via=quote), "")
    )
