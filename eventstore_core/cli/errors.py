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

import orjson
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

__all__ = [
    "DEBUG_ENV_VAR",
    "ExitCode",
    "NotSetUpError",
    "UsageError",
    "describe",
    "describe_json",
    "print_error",
    "reporting_errors",
]

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
    NOT_SET_UP = 8
    """The store's tables (file, schema, table) do not exist: run ``eventstore setup``."""
    INTERRUPTED = 130
    """Ctrl-C during a command other than ``tail`` (128 + SIGINT, as shells report it)."""


class UsageError(Exception):
    """A command-line argument the CLI itself rejects (before any store is touched)."""


class NotSetUpError(Exception):
    """A command that only reads found no store at the URL; it creates nothing itself."""


# Most specific first: InvalidEventError must win over its ValueError base, and the
# EventStoreError base comes last.
_CODES: tuple[tuple[type[BaseException], ExitCode, str], ...] = (
    (UsageError, ExitCode.USAGE, "error"),
    (NotSetUpError, ExitCode.NOT_SET_UP, "not set up"),
    (InvalidEventError, ExitCode.USAGE, "invalid input"),
    (ConcurrencyError, ExitCode.CONFLICT, "conflict"),
    (DuplicateEventIdError, ExitCode.DUPLICATE_EVENT_ID, "duplicate event id"),
    (ConfigurationError, ExitCode.CONFIGURATION, "configuration error"),
    (UnsupportedOperationError, ExitCode.UNSUPPORTED, "unsupported"),
    (BackendUnavailableError, ExitCode.UNAVAILABLE, "backend unavailable"),
    (EventStoreError, ExitCode.ERROR, "error"),
)


def _classify(error: BaseException) -> tuple[ExitCode, str, str]:
    detail = " ".join(str(error).split()) or type(error).__name__
    for kind, code, label in _CODES:
        if isinstance(error, kind):
            return code, label, detail
    return (
        ExitCode.ERROR,
        "unexpected error",
        f"({type(error).__name__}) {detail} (set {DEBUG_ENV_VAR}=1 to see the traceback)",
    )


def describe(error: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message for ``error``."""
    code, label, detail = _classify(error)
    return code, f"{label}: {detail}"


def describe_json(error: BaseException) -> tuple[ExitCode, str]:
    """The exit code and a one-line JSON object for ``error`` (the ``--json`` form)."""
    code, label, detail = _classify(error)
    return code, orjson.dumps({"error": label, "message": detail, "exit_code": int(code)}).decode()


def print_error(message: str) -> None:
    """Print ``message`` on standard error, on one line whatever the terminal's width."""
    Console(stderr=True, highlight=False).print(Text(message, style="red"), soft_wrap=True)


@contextmanager
def reporting_errors(
    *, interrupt_code: ExitCode = ExitCode.INTERRUPTED, json_output: bool = False
) -> Iterator[None]:
    """Turn any error raised inside into a message on stderr and ``typer.Exit(code)``.

    ``interrupt_code`` is the exit code for Ctrl-C: ``tail`` passes ``OK``, since Ctrl-C is
    how one normally stops it. With ``json_output`` the message is one JSON object
    (``{"error": ..., "message": ..., "exit_code": ...}``), for programs.
    """
    report = describe_json if json_output else describe
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if interrupt_code is not ExitCode.OK:
            print_error("interrupted")
        raise typer.Exit(interrupt_code) from None
    except (EventStoreError, UsageError, NotSetUpError) as error:
        code, message = report(error)
        print_error(message)
        raise typer.Exit(code) from None
    except Exception as error:
        # A bug (ours or a backend's): still one line for the user, the traceback on demand.
        if os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0"):
            raise
        code, message = report(error)
        print_error(message)
        raise typer.Exit(code) from None
