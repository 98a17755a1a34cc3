"""sqlite3's exceptions, translated to the library's errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eventstore_core.adapter import BackendUnavailableError, EventStoreError, InvalidEventError

__all__ = ["as_library_error", "translate"]


def translate(
    error: sqlite3.Error, path: Path, busy_timeout: float, *, maybe_applied: bool = False
) -> EventStoreError:
    """The library error for a sqlite3 error met on the file at ``path``.

    ``maybe_applied`` says whether a write may have been committed all the same (an error
    raised by COMMIT itself); every other failure rolled its transaction back.
    """
    message = str(error)
    if isinstance(error, sqlite3.OperationalError):
        if "no such table" in message:
            return EventStoreError(
                f"{path} has no event store tables: run 'await store.setup()' first"
            )
        if "locked" in message or "busy" in message:
            return BackendUnavailableError(
                f"SQLite file {path} stayed locked by another writer for more than "
                f"busy_timeout={busy_timeout}s"
            )
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in message:
        return EventStoreError(f"{path} is not a SQLite database")
    return BackendUnavailableError(
        f"SQLite error on {path}: {message}", maybe_applied=maybe_applied
    )


def as_library_error(error: BaseException, path: Path, busy_timeout: float) -> BaseException:
    """What a caller sees for an exception raised while running SQL for it.

    The library's own errors pass unchanged. A value SQLite cannot take is bad input: an
    integer beyond 64 bits (``OverflowError`` from the driver) or text with a lone surrogate
    (``UnicodeEncodeError``), refused before anything is written.
    """
    if isinstance(error, EventStoreError):
        return error
    if isinstance(error, sqlite3.Error):
        return translate(error, path, busy_timeout)
    if isinstance(error, OverflowError):
        return InvalidEventError(f"an integer is too large for SQLite (over 2**63 - 1): {error}")
    if isinstance(error, UnicodeEncodeError):
        return InvalidEventError(
            f"text with a character that is not valid Unicode (a lone surrogate): {error}"
        )
    return error
