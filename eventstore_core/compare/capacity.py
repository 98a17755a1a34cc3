"""DynamoDB capacity units, counted from the driver's own answers while a workload runs.

The store is never reached into: botocore builds every session's event handlers from the
module-level list ``botocore.handlers.BUILTIN_HANDLERS``, so a handler appended there (for the
duration of a run, before the store opens its session) sees every request and answer of every
DynamoDB client created meanwhile. Each request asks for ``ReturnConsumedCapacity=TOTAL``;
the answers' ``ConsumedCapacity`` is summed as the engine reports it. DynamoDB Local reports
with its own arithmetic, so the units AWS would bill are also computed from the requests
themselves by AWS's published rules (1 write unit per started KB of an item, twice that in a
transaction; 1 read unit per started 4 KB of a strongly consistent read), like
``benchmarks/dynamodb_bench.py`` does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_READ_OPS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"})


@dataclass
class Units:
    """Capacity counted so far."""

    reported_read: float = 0.0
    reported_write: float = 0.0
    billed_write: float = 0.0
    """Write request units AWS would bill for the requests sent (its pricing rules)."""
    requests: int = 0

    def minus(self, other: Units) -> Units:
        """The units counted since ``other`` was copied."""
        return Units(
            self.reported_read - other.reported_read,
            self.reported_write - other.reported_write,
            self.billed_write - other.billed_write,
            self.requests - other.requests,
        )

    def copy(self) -> Units:
        """A snapshot of the counters."""
        return Units(self.reported_read, self.reported_write, self.billed_write, self.requests)


def attribute_bytes(value: dict[str, Any]) -> int:
    """The size DynamoDB counts for one attribute value (close to its published rules)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return (len(str(inner).lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(str(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + attribute_bytes(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + attribute_bytes(v) for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v).encode()) for v in inner)
    return 0


def item_bytes(item: dict[str, Any]) -> int:
    """Attribute names plus values: the size DynamoDB bills an item by."""
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


def _kb(item: dict[str, Any]) -> int:
    return max(1, math.ceil(item_bytes(item) / 1024))


def billed_write_units(operation: str, params: dict[str, Any]) -> float:
    """The write request units AWS bills for one request (its published pricing rules)."""
    if operation == "PutItem":
        return _kb(params.get("Item", {}))
    if operation in ("UpdateItem", "DeleteItem"):
        return 1.0  # the items the adapters update (heads, counters) are far below 1 KB
    if operation == "BatchWriteItem":
        return sum(
            _kb(request["PutRequest"]["Item"]) if "PutRequest" in request else 1
            for requests in params.get("RequestItems", {}).values()
            for request in requests
        )
    if operation == "TransactWriteItems":
        units = 0
        for action in params.get("TransactItems", []):
            units += 2 * _kb(action["Put"]["Item"]) if "Put" in action else 2
        return units
    return 0.0


@contextlib.contextmanager
def metering() -> Iterator[Units]:
    """Count DynamoDB capacity for every client created inside the ``with`` block.

    Yields the live :class:`Units`; does nothing (and counts nothing) without botocore.
    """
    units = Units()
    try:
        from botocore import handlers
    except ImportError:
        yield units
        return

    def before(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        units.billed_write += billed_write_units(model.name, params)

    def after(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        units.requests += 1
        consumed = parsed.get("ConsumedCapacity")
        if not consumed:
            return
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            read = entry.get("ReadCapacityUnits")
            write = entry.get("WriteCapacityUnits")
            if read is None and write is None:
                if model.name in _READ_OPS:
                    units.reported_read += float(entry.get("CapacityUnits", 0.0))
                else:
                    units.reported_write += float(entry.get("CapacityUnits", 0.0))
            else:
                units.reported_read += float(read or 0.0)
                units.reported_write += float(write or 0.0)

    specs: list[tuple[str, Callable[..., None]]] = [
        ("provide-client-params.dynamodb", before),
        ("after-call.dynamodb", after),
    ]
    handlers.BUILTIN_HANDLERS.extend(specs)
    try:
        yield units
    finally:
        for spec in specs:
            with contextlib.suppress(ValueError):
                handlers.BUILTIN_HANDLERS.remove(spec)


__all__ = ["Units", "attribute_bytes", "billed_write_units", "item_bytes", "metering"]
