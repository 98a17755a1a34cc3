"""kurrentdbclient's exceptions as the library's errors (driver exceptions never leak raw).

- A lost or refused connection, a deadline, a node that is not the leader, a failed
  discovery: :class:`BackendUnavailableError`. ``maybe_applied`` is true for writes, always:
  the client re-sends an append once after any gRPC error (its ``retrygrpc`` decorator), and a
  deadline may expire after the server committed, so the caller cannot know.
- An append over the server's size limit: :class:`InvalidEventError`.
- A read or subscription from a position that is none of the log's records (a token of the
  right shape that this store never made): :class:`InvalidEventError` naming ``after``.
  KurrentDB 25.1+ refuses it with ``INVALID_ARGUMENT`` "Trying to read from an invalid
  position." (``RpcExceptions.InvalidPositionException``, Streams.Read.cs), which the client
  leaves a plain ``GrpcError``; older servers answered ``UNKNOWN`` "Unexpected
  FilteredReadAllResult: InvalidPosition" (the client's ``InvalidCommitPositionError``).
- Anything else from the client: :class:`EventStoreError`, with the client's message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from kurrentdbclient import exceptions as client_errors

from eventstore_core.adapter import BackendUnavailableError, EventStoreError, InvalidEventError

_UNAVAILABLE = (
    client_errors.ServiceUnavailableError,
    client_errors.DeadlineExceededError,
    client_errors.NodeIsNotLeaderError,
    client_errors.DiscoveryFailedError,
    client_errors.CancelledError,
    client_errors.AbortedByServerError,
    client_errors.ExceptionThrownByHandlerError,
    client_errors.GrpcError,
    grpc.aio.UsageError,
    grpc.RpcError,
    ConnectionError,
    TimeoutError,
)
_TOO_LARGE = (
    client_errors.MaximumAppendSizeExceededError,
    client_errors.RecordMaxSizeExceededError,
    client_errors.TransactionMaxSizeExceededError,
)


def _is_invalid_position(error: BaseException) -> bool:
    if isinstance(error, client_errors.InvalidCommitPositionError):
        return True
    # The client raises GrpcError from the gRPC error, which keeps the status code.
    for cause in (error, error.__cause__, error.__context__):
        if isinstance(cause, grpc.aio.AioRpcError):
            return (
                cause.code() == grpc.StatusCode.INVALID_ARGUMENT
                and "invalid position" in (cause.details() or "").lower()
            )
    return False


def translate(error: BaseException, *, writing: bool, what: str) -> EventStoreError:
    """The library's error for a client exception raised while doing ``what``."""
    if _is_invalid_position(error):
        return InvalidEventError(
            f"{what}: the server holds no event at that position (a token this store did not make)",
            field="after",
        )
    if isinstance(error, _TOO_LARGE):
        return InvalidEventError(
            f"{what}: the server refused the append as too large ({error})", field="events"
        )
    if isinstance(error, _UNAVAILABLE):
        return BackendUnavailableError(
            f"{what}: KurrentDB is unavailable ({type(error).__name__}: {error})",
            maybe_applied=writing,
        )
    return EventStoreError(f"{what}: {type(error).__name__}: {error}")


@contextlib.contextmanager
def translated(*, writing: bool, what: str) -> Iterator[None]:
    """Translate client exceptions raised in the block (``WrongCurrentVersionError`` and
    ``NotFoundError`` are the callers' to handle, and pass through)."""
    try:
        yield
    except (client_errors.WrongCurrentVersionError, client_errors.NotFoundError):
        raise
    except (client_errors.KurrentDBClientError, grpc.RpcError, grpc.aio.UsageError) as error:
        raise translate(error, writing=writing, what=what) from error
    except (ConnectionError, TimeoutError) as error:
        raise translate(error, writing=writing, what=what) from error
