"""Opening the store a command works on, so that reading never creates anything.

Opening a store must not change it: a mistyped SQLite path would otherwise leave an empty
file behind, and a read on a DynamoDB table that does not exist would create it. So only
``setup`` (and ``append``, unless ``--no-setup``) call :meth:`EventStore.setup`; every other
command opens the store as it is and, when it finds no store there, says so and how to create
one, with its own exit code (:attr:`ExitCode.NOT_SET_UP`).

The API has no "is this store set up?" call, so the CLI finds out in two ways:

- before opening an SQLite store, whether its file exists (opening would create it), and for
  a command that may create the store, whether its directory exists (a configuration error,
  not an unavailable backend);
- after a failure, whether the backend's error says the tables are missing. Each adapter
  words that in its own message (quoted in :data:`_NOT_SET_UP_MESSAGES`); a core error class
  for it would make this a plain ``isinstance``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import eventstore_core as es
from eventstore_core.cli.errors import NotSetUpError
from eventstore_core.config import parse_url

__all__ = ["Target", "opened"]

#: How the adapters word "the tables do not exist" (SQLite, DynamoDB, PostgreSQL).
_NOT_SET_UP_MESSAGES = (
    "has no event store tables",
    "the table does not exist",
    "is not set up",
)


@dataclass(frozen=True)
class Target:
    """The store a command works on: ``url`` as given, or None for EVENTSTORE_URL/default."""

    url: str | None
    explicit: bool
    """Whether the URL was given on the command line (then hints repeat ``--url``)."""

    def setup_hint(self, store: es.EventStore) -> str:
        """The command that creates the store, to quote in an error message."""
        return f"eventstore setup --url '{store.url}'" if self.explicit else "eventstore setup"


def _sqlite_path(store: es.EventStore) -> Path | None:
    """The file of an SQLite store (the same rule as the adapter's), or None for others."""
    parsed = parse_url(store.url)
    if parsed.base_scheme != "sqlite" or parsed.host:
        return None
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    return Path(path) if path else None


def _check_before_open(store: es.EventStore, target: Target, *, creates: bool) -> None:
    path = _sqlite_path(store)
    if path is None:
        return
    if creates:
        directory = path.parent
        if not directory.is_dir():
            raise es.ConfigurationError(
                f"cannot create the SQLite file {path}: directory {directory} does not exist"
            )
    elif not path.exists():
        raise NotSetUpError(
            f"no SQLite file at {path}; check the path, or create the store with: "
            f"{target.setup_hint(store)}"
        )


def is_not_set_up(error: BaseException) -> bool:
    """Whether an adapter's error means that the store's tables do not exist."""
    if type(error) is not es.EventStoreError:
        return False
    message = str(error)
    return any(fragment in message for fragment in _NOT_SET_UP_MESSAGES)


@asynccontextmanager
async def opened(target: Target, *, setup: bool = False) -> AsyncIterator[es.EventStore]:
    """The store at ``target``, open; set up first only if ``setup``.

    Without ``setup`` nothing is created: an SQLite file that does not exist, or tables that
    do not, raise :class:`NotSetUpError` naming the command that creates them.
    """
    store = es.connect(target.url)
    _check_before_open(store, target, creates=setup)
    try:
        async with store:
            if setup:
                await store.setup()
            yield store
    except es.EventStoreError as error:
        if not setup and is_not_set_up(error):
            raise NotSetUpError(
                f"the store at {store.url} is not set up (its tables do not exist); "
                f"create it with: {target.setup_hint(store)}"
            ) from None
        raise
