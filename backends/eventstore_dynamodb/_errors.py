"""Mapping botocore's exceptions onto the library's errors: what is worth a retry, what was sent.

botocore's own retries are off (see ``_table``): one retry layer only, the core's
:class:`~eventstore_core.adapter.Backoff`, driven from here, knows that a cancelled transaction
with ``TransactionConflict`` is worth retrying too, and when to give up for the caller.

A write that fails is reported with ``maybe_applied`` when *any* attempt of it may have reached
DynamoDB (:func:`may_have_applied`), not only the last: a retry after a lost answer that then
cannot reconnect must not tell the caller "nothing was written".
"""

from __future__ import annotations

import socket

from aiohttp import ClientConnectorError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from eventstore_core.adapter import (
    BackendUnavailableError,
    ConfigurationError,
    EventStoreError,
    InvalidEventError,
)

__all__ = [
    "CAUGHT",
    "RETRYABLE_CODES",
    "error_code",
    "is_retryable",
    "may_have_applied",
    "translate",
]

#: Error codes that mean "not now": throttling, a busy item, a service hiccup.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflictException",
        "LimitExceededException",
    }
)

#: Answers after which a write may have been applied all the same: AWS documents that an
#: ``InternalServerError`` may hide a completed request, and ``TransactionInProgress`` means
#: the same token's transaction is still running.
_MAYBE_APPLIED_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
)

#: Everything a client call raises that this module knows how to translate. ``UnicodeError``:
#: botocore encodes the request body itself, and a lone surrogate there fails before sending.
CAUGHT = (TimeoutError, BotoCoreError, ClientError, OSError, UnicodeError)

#: Connection failures: worth a retry. Whether the request was sent is :func:`_not_sent`'s.
_CONNECTION = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ConnectionClosedError,
    ReadTimeoutError,
)


def error_code(error: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (empty for anything else)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _not_sent(error: BaseException) -> bool:
    """Whether the request certainly never reached DynamoDB (no connection was made)."""
    if isinstance(error, ConnectTimeoutError):
        return True
    if isinstance(error, EndpointConnectionError):
        # aiobotocore raises this for every aiohttp connection error, a connection reset
        # after the request was written included; only a failed connect proves nothing left.
        cause = getattr(error, "kwargs", {}).get("error")
        return cause is None or isinstance(cause, ClientConnectorError | socket.gaierror)
    return False


def may_have_applied(error: BaseException) -> bool:
    """Whether a write that failed with ``error`` may have been applied all the same."""
    if isinstance(error, UnicodeError):
        return False  # raised while encoding the request, before anything was sent
    if isinstance(error, ClientError):
        return error_code(error) in _MAYBE_APPLIED_CODES
    if isinstance(error, NoCredentialsError | PartialCredentialsError | NoRegionError):
        return False
    return not _not_sent(error)


def is_retryable(error: BaseException) -> bool:
    """Whether trying the same request again later may succeed."""
    if isinstance(error, ClientError):
        return error_code(error) in RETRYABLE_CODES
    return isinstance(error, _CONNECTION)


def translate(
    error: BaseException, operation: str, *, maybe_applied: bool = False
) -> EventStoreError:
    """The library error for a botocore exception raised by ``operation``.

    ``maybe_applied`` says that this write, or an earlier attempt of it, may have been applied
    (see :func:`may_have_applied`); a :class:`BackendUnavailableError` then reports it.
    """
    if isinstance(error, UnicodeError):
        return InvalidEventError(
            f"DynamoDB {operation}: a value cannot be encoded as UTF-8 (a lone surrogate?): "
            f"{error}; nothing was sent"
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return ConfigurationError(
            f"DynamoDB {operation}: no usable AWS credentials (set AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where a role is available)"
        )
    if isinstance(error, NoRegionError):
        return ConfigurationError(
            f"DynamoDB {operation}: no AWS region (add ?region=... to the URL or set "
            "AWS_DEFAULT_REGION)"
        )
    if _not_sent(error):
        earlier = ", after an earlier attempt whose answer was lost" if maybe_applied else ""
        return BackendUnavailableError(
            f"DynamoDB {operation}: cannot connect ({error}){earlier}",
            maybe_applied=maybe_applied,
        )
    if isinstance(error, _CONNECTION):
        return BackendUnavailableError(
            f"DynamoDB {operation}: connection lost ({error})", maybe_applied=maybe_applied
        )
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "")
        if code in RETRYABLE_CODES:
            return BackendUnavailableError(
                f"DynamoDB {operation}: still failing after retries ({code}: {message})",
                maybe_applied=maybe_applied,
            )
        if code == "ResourceNotFoundException":
            return EventStoreError(
                f"DynamoDB {operation}: the table does not exist; call 'await store.setup()' "
                f"first ({message})"
            )
        if code in ("UnrecognizedClientException", "AccessDeniedException"):
            return ConfigurationError(f"DynamoDB {operation}: access refused ({code}: {message})")
        return EventStoreError(f"DynamoDB {operation} failed ({code}: {message})")
    if isinstance(error, BotoCoreError | OSError | TimeoutError):
        return BackendUnavailableError(
            f"DynamoDB {operation}: {type(error).__name__}: {error}", maybe_applied=maybe_applied
        )
    return EventStoreError(f"DynamoDB {operation}: {type(error).__name__}: {error}")
