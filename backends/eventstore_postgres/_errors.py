"""Mapping asyncpg's exceptions onto the library's errors, so none leaks out raw."""

from __future__ import annotations

import asyncio
import socket

import asyncpg

from eventstore_core.adapter import BackendUnavailableError, ConfigurationError, EventStoreError

#: The connection is gone or could not be made: the server restarted, the network dropped,
#: too many connections. Retrying on a fresh connection may succeed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and socket errors
    asyncpg.PostgresConnectionError,  # class 08 (ConnectionDoesNotExistError, ...)
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    # "cannot switch to state 12; another operation is in progress": asyncpg's protocol state
    # after the server went away mid-call (a restart, pg_terminate_backend). Not a bad
    # request: the connection is broken, and a fresh one works.
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting or shutting down
    asyncpg.AdminShutdownError,  # 57P01: terminated by the administrator (pg_ctl stop)
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.ConnectionFailureError,
)

#: The call took too long: ``command_timeout`` on the client (asyncio.TimeoutError), or the
#: server's ``statement_timeout`` / a cancel (57014, QueryCanceledError).
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.QueryCanceledError,
)


#: SQLSTATEs that mean the URL or the server's set-up is wrong, not that the server is down: a
#: database that does not exist (3D000), a role that does not exist or may not log in, a wrong
#: password (class 28). Retrying cannot help; the user must change the URL or the server.
CONFIGURATION_SQLSTATES = frozenset({"3D000"})
CONFIGURATION_SQLSTATE_CLASSES = frozenset({"28"})

#: SQLSTATEs that mean the store's schema or tables do not exist: ``setup()`` has not run (or
#: ran with another ``schema``). 42P01: undefined table; 3F000: invalid schema name.
NOT_SET_UP_SQLSTATES = frozenset({"42P01", "3F000"})


def _refused_tls(error: BaseException) -> bool:
    # asyncpg raises a plain ConnectionError when the server answers "no" to SSLRequest, which
    # is a configuration mismatch (sslmode=require against a server without TLS), not an outage.
    return type(error) is ConnectionError and "rejected SSL upgrade" in str(error)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means "the backend is unreachable or too slow" (not a bad request)."""
    return isinstance(error, CONNECTION_ERRORS + TIMEOUT_ERRORS) and not _refused_tls(error)


def _detail(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def unavailable(
    error: BaseException, what: str, *, sent: bool, lost: bool = False
) -> BackendUnavailableError:
    """A :class:`BackendUnavailableError` for a failure during ``what``.

    ``sent`` says whether a write had already reached the server: then its outcome is unknown
    (the commit may have happened and only the answer was lost). A server-side cancel
    (``QueryCanceledError``) rolled the statement back, so it cannot have been applied.

    The message says what happened, as far as the driver tells: a connection that could not be
    made (refused, unknown host, the server starting or full) is not one that was lost.
    ``lost`` says that an earlier attempt of the same call sent the write and lost the
    answer: whatever this attempt did, the write may have been applied.
    """
    maybe_applied = lost or (sent and not isinstance(error, asyncpg.QueryCanceledError))
    hint = ""
    if isinstance(error, ConnectionRefusedError):
        kind = "refused the connection"
        hint = "; is the server running, on that host and port?"
    elif isinstance(error, socket.gaierror):
        kind = "could not be reached: the host name does not resolve"
    elif isinstance(error, asyncpg.TooManyConnectionsError):
        kind = "refused a new connection: too many connections"
    elif isinstance(error, asyncpg.CannotConnectNowError):
        kind = "refused a new connection: the server is starting up or shutting down"
    elif isinstance(error, TIMEOUT_ERRORS):
        kind = "timed out"
    elif isinstance(error, OSError) and not isinstance(error, ConnectionResetError | EOFError):
        kind = "could not be reached"
    else:
        kind = "lost the connection"
    return BackendUnavailableError(
        f"PostgreSQL {kind} during {what} ({_detail(error)}){hint}", maybe_applied=maybe_applied
    )


def unexpected(error: BaseException, what: str) -> EventStoreError:
    """Classify any other driver error, keeping its SQLSTATE and message for diagnosis.

    Wrong settings (a missing database or role, a wrong password, TLS refused by the server)
    are a :class:`ConfigurationError`; a missing table says the store is not set up; no host
    matching ``target_session_attrs`` is :class:`BackendUnavailableError` (a failover may
    bring one); anything else is an :class:`EventStoreError` with the SQLSTATE.
    """
    sqlstate: str | None = getattr(error, "sqlstate", None)
    code = f" [{sqlstate}]" if sqlstate else ""
    if _refused_tls(error):
        return ConfigurationError(
            f"PostgreSQL refused TLS during {what}: the server does not accept SSL connections "
            f"but sslmode requires them; use sslmode=prefer or disable, or enable ssl on the "
            f"server ({error})"
        )
    if sqlstate in CONFIGURATION_SQLSTATES or (
        sqlstate is not None and sqlstate[:2] in CONFIGURATION_SQLSTATE_CLASSES
    ):
        return ConfigurationError(f"PostgreSQL refused the connection{code}: {error}")
    if sqlstate in NOT_SET_UP_SQLSTATES:
        return EventStoreError(
            f"the PostgreSQL store is not set up (during {what}{code}: {error}); "
            "call 'await store.setup()' first, with the same schema option"
        )
    if isinstance(error, asyncpg.TargetServerAttributeNotMatched):
        return BackendUnavailableError(
            f"PostgreSQL: no server to connect to during {what}: {error}"
        )
    return EventStoreError(f"PostgreSQL error during {what}{code}: {error}")
