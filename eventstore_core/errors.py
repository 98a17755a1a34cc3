"""The error hierarchy: every error the library raises derives from :class:`EventStoreError`.

Backends map their driver's exceptions onto these classes, so user code never has to catch
``asyncpg`` or ``botocore`` exceptions (the PEP 249 approach of the ``eventsourcing`` library).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventstore_core.models import ExpectedVersion

__all__ = [
    "BackendUnavailableError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventIdError",
    "EventStoreError",
    "InvalidEventError",
    "UnsupportedOperationError",
    "WrongExpectedVersionError",
]


class EventStoreError(Exception):
    """Base class of every error raised by eventstore-core and its backends."""


class ConcurrencyError(EventStoreError):
    """The stream's version did not match ``expected_version``; nothing of the batch was written."""

    def __init__(self, stream_id: str, expected: ExpectedVersion, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r}: expected version {_describe(expected)}, "
            f"but the stream is at version {actual}"
        )

    def __reduce__(self) -> tuple[type[ConcurrencyError], tuple[str, ExpectedVersion, int]]:
        return (type(self), (self.stream_id, self.expected, self.actual))


#: The name EventStoreDB and KurrentDB users know.
WrongExpectedVersionError = ConcurrencyError


class DuplicateEventIdError(EventStoreError):
    """An event id was reused other than by retrying the very same batch on the same stream."""

    def __init__(self, message: str, *, event_ids: tuple[str, ...] = ()) -> None:
        self.event_ids = event_ids
        super().__init__(message)


class InvalidEventError(EventStoreError, ValueError):
    """Input was rejected before anything was sent; the message names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class UnsupportedOperationError(EventStoreError):
    """The backend cannot do what was asked (see ``store.capabilities``)."""


class ConfigurationError(EventStoreError):
    """A URL, option or installation problem, raised by ``connect`` before any I/O."""


class BackendUnavailableError(EventStoreError):
    """The backend could not be reached, or the connection was lost or timed out.

    ``maybe_applied`` is true when the failure happened after a write was sent, so the write may
    have been committed: retrying the same append (same event ids) is safe, since appends are
    idempotent, and yields exactly one copy.
    """

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        self.maybe_applied = maybe_applied
        if maybe_applied:
            message += (
                " (the write may have been applied: retry the same append, with the same "
                "event ids, to find out safely)"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_unavailable, (self.args[0], self.maybe_applied))


def _rebuild_unavailable(message: str, maybe_applied: bool) -> BackendUnavailableError:
    error = BackendUnavailableError("", maybe_applied=False)
    error.args = (message,)
    error.maybe_applied = maybe_applied
    return error


def _describe(expected: ExpectedVersion) -> str:
    return str(expected) if isinstance(expected, int) else expected.name
