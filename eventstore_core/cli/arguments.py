"""Turning command-line strings into API values, with messages that name the argument."""

from __future__ import annotations

import sys
from typing import Any
from uuid import UUID, uuid4

import orjson

from eventstore_core.cli.errors import UsageError
from eventstore_core.models import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion

__all__ = ["parse_event_id", "parse_expected_version", "parse_json_object"]

# The spellings users of EventStoreDB and the Python API already know, all accepted.
_STATES: dict[str, ExpectedVersion] = {
    "any": ANY,
    "no-stream": NO_STREAM,
    "no_stream": NO_STREAM,
    "nostream": NO_STREAM,
    "exists": STREAM_EXISTS,
    "stream-exists": STREAM_EXISTS,
    "stream_exists": STREAM_EXISTS,
}


def parse_expected_version(text: str) -> ExpectedVersion:
    """``any``, ``no-stream``, ``exists`` or an integer ``>= 0`` (the exact current version)."""
    value = text.strip().lower()
    if value in _STATES:
        return _STATES[value]
    try:
        version = int(value)
    except ValueError:
        version = -1
    if version < 0:
        raise UsageError(
            f"--expected-version must be any, no-stream, exists or an integer >= 0, got {text!r}"
        )
    return version


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """Decode ``text`` as a JSON object; ``-`` reads the JSON from standard input."""
    if text == "-":
        text = sys.stdin.read()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise UsageError(f"{what} is not valid JSON ({error}): {_shorten(text)}") from None
    if not isinstance(value, dict):
        raise UsageError(
            f"{what} must be a JSON object such as '{{\"total\": 10}}', "
            f"got {type(value).__name__}: {_shorten(text)}"
        )
    return value


def _shorten(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def parse_event_id(text: str | None) -> UUID:
    """The ``--id`` of an event (a UUID), or a new random one when none is given."""
    if text is None:
        return uuid4()
    try:
        return UUID(text)
    except ValueError:
        raise UsageError(f"--id must be a UUID, got {text!r}") from None
