"""How the CLI shows events and stores: readable lines for people, JSON lines for programs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson
from rich.table import Table
from rich.text import Text

from eventstore_core.models import Capabilities, RecordedEvent, Snapshot
from eventstore_core.redaction import is_secret_name
from eventstore_core.store import EventStore

__all__ = [
    "capabilities_table",
    "event_json",
    "event_line",
    "snapshot_json",
    "snapshot_line",
    "store_json",
    "store_table",
]


def _masked(options: Mapping[str, Any]) -> dict[str, Any]:
    # The same rule as for URL query parameters: secret-looking options are masked, also
    # inside an option that groups others (a backend's pass-through connection parameters).
    return {
        name: (
            "***"
            if value and is_secret_name(name)
            else _masked(value)
            if isinstance(value, Mapping)
            else value
        )
        for name, value in options.items()
    }


def _options(store: EventStore) -> dict[str, Any]:
    # by_alias: each option under the name the URL's query string uses (schema, not db_schema).
    return _masked(store.options.model_dump(mode="json", by_alias=True))


def _compact(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value).decode()


def event_json(event: RecordedEvent) -> str:
    """One event as a single JSON line (the ``--json`` format of ``read`` and ``tail``).

    The position is its string token, so a program can pass it back as ``--after``.
    """
    return orjson.dumps(
        {
            "stream_id": event.stream_id,
            "version": event.version,
            "position": str(event.position),
            "id": str(event.id),
            "type": event.type,
            "data": event.data,
            "metadata": event.metadata,
            "correlation_id": event.correlation_id,
            "causation_id": event.causation_id,
            "recorded_at": event.recorded_at.isoformat(),
        }
    ).decode()


def event_line(event: RecordedEvent) -> Text:
    """One event on one line: position, time (UTC), stream@version, type, data, metadata.

    Built as :class:`Text` rather than markup, so brackets in event data are shown verbatim.
    """
    line = Text()
    line.append(f"{event.position!s:>8}", style="cyan")
    line.append(f"  {event.recorded_at:%Y-%m-%d %H:%M:%S}Z", style="dim")
    line.append(f"  {event.stream_id}@{event.version}", style="bold")
    line.append(f"  {event.type}", style="green")
    line.append(f"  {_compact(event.data)}")
    if event.metadata:
        line.append(f"  metadata={_compact(event.metadata)}", style="dim")
    return line


def snapshot_line(snapshot: Snapshot) -> Text:
    """A snapshot on one line: stream@version, type, data."""
    line = Text()
    line.append(f"{snapshot.stream_id}@{snapshot.version}", style="bold")
    line.append(f"  {snapshot.type}", style="green")
    line.append(f"  {_compact(snapshot.data)}")
    return line


def snapshot_json(stream_id: str, snapshot: Snapshot | None) -> str:
    """What ``snapshot get --json`` prints; version, type and data are null without one."""
    return orjson.dumps(
        {
            "stream_id": stream_id,
            "version": None if snapshot is None else snapshot.version,
            "type": None if snapshot is None else snapshot.type,
            "data": None if snapshot is None else snapshot.data,
        }
    ).decode()


def _capabilities(capabilities: Capabilities) -> dict[str, Any]:
    return dataclasses.asdict(capabilities)


def capabilities_table(capabilities: Capabilities) -> Table:
    """The capabilities as a two-column table."""
    table = Table(title="Capabilities", title_justify="left")
    table.add_column("capability", style="bold")
    table.add_column("value", overflow="fold")  # a long URL wraps, never "..."
    for name, value in _capabilities(capabilities).items():
        table.add_row(name, f"{value:,}" if type(value) is int else str(value))
    return table


def store_table(store: EventStore, backend: str) -> Table:
    """The backend, its class, the redacted URL and the options, as a two-column table."""
    table = Table(title="Store", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")  # a long URL wraps, never "..."
    table.add_row("backend", backend)
    table.add_row("class", f"{type(store).__module__}.{type(store).__qualname__}")
    table.add_row("url", store.url)
    for name, value in _options(store).items():
        if name == "require" and not value:
            continue
        table.add_row(f"option {name}", str(value))
    return table


def store_json(store: EventStore, backend: str) -> str:
    """What ``info --json`` prints: backend, class, redacted URL, options and capabilities."""
    return orjson.dumps(
        {
            "backend": backend,
            "class": f"{type(store).__module__}.{type(store).__qualname__}",
            "url": store.url,
            "options": _options(store),
            "capabilities": _capabilities(store.capabilities),
        }
    ).decode()
