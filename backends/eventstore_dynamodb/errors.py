"""Mapping botocore's exceptions onto the library's errors, and the retry policy.

botocore already retries throttling and 5xx answers a few times (``standard`` retry mode);
what it cannot know is that a cancelled transaction with ``TransactionConflict`` is worth
retrying too, nor when to give up for the caller: that is decided here, with a deadline.
"""

from __future__ import annotations

import asyncio
import random
import time

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

from eventstore_core.errors import (
    BackendUnavailableError,
    ConfigurationError,
    EventStoreError,
)

__all__ = ["RETRYABLE_CODES", "Backoff", "error_code", "is_retryable", "translate"]

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

_NOT_SENT = (EndpointConnectionError, ConnectTimeoutError)
_MAYBE_SENT = (ConnectionClosedError, ReadTimeoutError)


def error_code(error: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (empty for anything else)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def is_retryable(error: BaseException) -> bool:
    """Whether trying the same request again later may succeed."""
    if isinstance(error, ClientError):
        return error_code(error) in RETRYABLE_CODES
    return isinstance(error, _NOT_SENT + _MAYBE_SENT)


def translate(error: BaseException, operation: str, *, write: bool = False) -> EventStoreError:
    """The library error for a botocore exception raised by ``operation``.

    ``write`` marks operations that change data: a lost answer may then hide a commit, which
    :class:`BackendUnavailableError` reports as ``maybe_applied``.
    """
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
    if isinstance(error, _NOT_SENT):
        return BackendUnavailableError(f"DynamoDB {operation}: cannot connect ({error})")
    if isinstance(error, _MAYBE_SENT):
        return BackendUnavailableError(
            f"DynamoDB {operation}: connection lost ({error})", maybe_applied=write
        )
    if isinstance(error, ClientError):
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", "")
        if code in RETRYABLE_CODES:
            return BackendUnavailableError(
                f"DynamoDB {operation}: still failing after retries ({code}: {message})",
                maybe_applied=write and code == "TransactionInProgressException",
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
            f"DynamoDB {operation}: {type(error).__name__}: {error}", maybe_applied=write
        )
    return EventStoreError(f"DynamoDB {operation}: {type(error).__name__}: {error}")


class Backoff:
    """Exponential backoff with full jitter, until a deadline.

    Full jitter (a random delay between 0 and the exponential cap) spreads writers that lost
    the same race, which is what contention on the global counter needs.
    """

    def __init__(self, timeout: float, base: float = 0.005, cap: float = 0.1) -> None:
        self._deadline = time.monotonic() + timeout
        self._base = base
        self._cap = cap
        self.attempts = 0

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._deadline

    async def wait(self) -> bool:
        """Sleep before the next attempt; false (without sleeping) once the deadline passed."""
        self.attempts += 1
        delay = random.uniform(0, min(self._cap, self._base * 2 ** min(self.attempts, 16)))
        if time.monotonic() + delay >= self._deadline:
            return False
        await asyncio.sleep(delay)
        return True
