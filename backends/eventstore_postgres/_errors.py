"""Mapping asyncpg's exceptions onto the library's errors, so none leaks out raw."""

from __future__ import annotations

import asyncio

import asyncpg

from eventstore_core.adapter import BackendUnavailableError, EventStoreError

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


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means "the backend is unreachable or too slow" (not a bad request)."""
    return isinstance(error, CONNECTION_ERRORS + TIMEOUT_ERRORS)


def unavailable(
    error: BaseException, what: str, *, sent: bool, lost: bool = False
) -> BackendUnavailableError:
    """A :class:`BackendUnavailableError` for a failure during ``what``.

    ``sent`` says whether a write had already reached the server: then its outcome is unknown
    (the commit may have happened and only the answer was lost). A server-side cancel
    (``QueryCanceledError``) rolled the statement back, so it cannot have been applied.
    ``lost`` says that an earlier attempt of the same call sent the write and lost the
    answer: whatever this attempt did, the write may have been applied.
    """
    maybe_applied = lost or (sent and not isinstance(error, asyncpg.QueryCanceledError))
    kind = "timed out" if isinstance(error, TIMEOUT_ERRORS) else "lost the connection"
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return BackendUnavailableError(
        f"PostgreSQL {kind} during {what} ({detail})", maybe_applied=maybe_applied
    )


def unexpected(error: BaseException, what: str) -> EventStoreError:
    """Wrap any other driver error, keeping its SQLSTATE and message for diagnosis."""
    sqlstate = getattr(error, "sqlstate", None)
    code = f" [{sqlstate}]" if sqlstate else ""
    return EventStoreError(f"PostgreSQL error during {what}{code}: {error}")
