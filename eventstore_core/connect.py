"""``connect``: from a URL to an :class:`EventStore`, with every check done before any I/O."""

from __future__ import annotations

from typing import Any

from eventstore_core.config import configured_url, parse_options, parse_url
from eventstore_core.errors import UnsupportedOperationError
from eventstore_core.registry import load_backend
from eventstore_core.store import EventStore

__all__ = ["connect"]


def connect(url: str | None = None, **options: Any) -> EventStore:
    """Resolve the backend for ``url`` and validate its options; no I/O happens here.

    With ``url=None`` the ``EVENTSTORE_URL`` environment variable is used, and failing that the
    embedded default ``sqlite:///./eventstore.db``. Query-string parameters are options;
    keyword options win over them. ``require={"concurrency": "multi-writer", ...}`` raises
    :class:`UnsupportedOperationError` at once if the backend's capabilities fall short.

    Connections open on ``async with`` (or ``await store.open()``).
    """
    if url is None:
        url = configured_url()
    parsed = parse_url(url)
    backend = load_backend(parsed.base_scheme)
    store = backend(parsed, parse_options(backend.Options, parsed.query, options))
    problems = store.capabilities.shortfalls(store.options.require)
    if problems:
        raise UnsupportedOperationError(
            f"{type(store).__name__} ({store.url}) does not meet the requirements: "
            + "; ".join(problems)
        )
    return store
