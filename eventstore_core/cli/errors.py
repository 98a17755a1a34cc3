"""Exit codes and one-line messages: what a user sees when a command fails.

Every failure the user can cause or meet (bad arguments, an unknown URL scheme, a version
conflict, an unreachable server) ends the command with one line on standard error and a
non-zero exit code, never a traceback. Scripts can tell the cases apart by the exit code; a
version conflict has its own, so a script can re-read and retry.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text

from eventstore_core.errors import (
    BackendUnavailableError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventIdError,
    EventStoreError,
    InvalidEventError,
    UnsupportedOperationError,
)

__all__ = ["DEBUG_ENV_VAR", "ExitCode", "UsageError", "describe", "reporting_errors"]

#: Set to 1 to let unexpected errors (bugs) propagate with their traceback.
DEBUG_ENV_VAR = "EVENTSTORE_DEBUG"


class ExitCode(enum.IntEnum):
    """The exit codes of the ``eventstore`` command."""

    OK = 0
    ERROR = 1
    """An error not covered below (including an unexpected one)."""
    USAGE = 2
    """Bad arguments: invalid JSON, stream id, expected version, position... (as Click's own)."""
    CONFIGURATION = 3
    """A bad URL, an unknown scheme, an invalid option or a missing optional dependency."""
    CONFLICT = 4
    """The stream was not at the expected version; nothing was written."""
    DUPLICATE_EVENT_ID = 5
    """An event id was reused other than by retrying the very same append."""
    UNSUPPORTED = 6
    """The backend cannot do what was asked."""
    UNAVAILABLE = 7
    """The backend could not be reached, or the connection was lost."""
    INTERRUPTED = 130
    """Ctrl-C during a command other than ``tail`` (128 + SIGINT, as shells report it)."""


class UsageError(Exception):
    """A command-line argument the CLI itself rejects (before any store is touched)."""


# Most specific first: InvalidEventError must win over its ValueError base, and the
# EventStoreError base comes last.
_CODES: tuple[tuple[type[BaseException], ExitCode, str], ...] = (
    (UsageError, ExitCode.USAGE, "error"),
    (InvalidEventError, ExitCode.USAGE, "invalid input"),
    (ConcurrencyError, ExitCode.CONFLICT, "conflict"),
    (DuplicateEventIdError, ExitCode.DUPLICATE_EVENT_ID, "duplicate event id"),
    (ConfigurationError, ExitCode.CONFIGURATION, "configuration error"),
    (UnsupportedOperationError, ExitCode.UNSUPPORTED, "unsupported"),
    (BackendUnavailableError, ExitCode.UNAVAILABLE, "backend unavailable"),
    (EventStoreError, ExitCode.ERROR, "error"),
)


def describe(error: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message for ``error``."""
    detail = " ".join(str(error).split()) or type(error).__name__
    for kind, code, label in _CODES:
        if isinstance(error, kind):
            return code, f"{label}: {detail}"
    return ExitCode.ERROR, (
        f"unexpected error ({type(error).__name__}): {detail} "
        f"(set {DEBUG_ENV_VAR}=1 to see the traceback)"
    )


def print_error(message: str) -> None:
    """Print ``message`` on standard error, on one line whatever the terminal's width."""
    Console(stderr=True, highlight=False).print(Text(message, style="red"), soft_wrap=True)


@contextmanager
def reporting_errors(*, interrupt_code: ExitCode = ExitCode.INTERRUPTED) -> Iterator[None]:
    """Turn any error raised inside into a message on stderr and ``typer.Exit(code)``.

    ``interrupt_code`` is the exit code for Ctrl-C: ``tail`` passes ``OK``, since Ctrl-C is
    how one normally stops it.
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if interrupt_code is not ExitCode.OK:
            print_error("interrupted")
        raise typer.Exit(interrupt_code) from None
    except (EventStoreError, UsageError) as error:
        code, message = describe(error)
        print_error(message)
        raise typer.Exit(code) from None
    except Exception as error:
        # A bug (ours or a backend's): still one line for the user, the traceback on demand.
        if os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0"):
            raise
        code, message = describe(error)
        print_error(message)
        raise typer.Exit(code) from None
