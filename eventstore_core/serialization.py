"""JSON encoding of event data and metadata, with orjson (fast, and strict about keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def dumps(value: Mapping[str, Any]) -> bytes:
    """Encode a mapping as compact UTF-8 JSON.

    Raises ``TypeError`` for values JSON cannot represent. orjson also encodes ``datetime``,
    ``UUID``, ``Enum`` and dataclass values (as ISO strings, strings and objects): they read
    back as those JSON forms, not as the original Python types.
    """
    return orjson.dumps(value)


def loads(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Decode JSON made by :func:`dumps`."""
    value = orjson.loads(data)
    if not isinstance(value, dict):  # pragma: no cover - only if storage was tampered with
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value
