"""The shipped data files: backend facts (``backends.toml``), prices (``prices.toml``) and
recommendation rules (``rules.toml``), each overridable by a file of the same format.

Also the figures derived from them: cost per million events from measured capacity units
(request-priced services only) and monthly floors (instance-priced services, never turned
into a per-event price).
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from eventstore_core.compare.workloads import Sizes

HOURS_PER_MONTH = 730


def _load(name: str, override: str | Path | None) -> dict[str, Any]:
    if override is not None:
        return tomllib.loads(Path(override).read_text())
    return tomllib.loads(
        resources.files("eventstore_core.compare").joinpath(f"data/{name}").read_text()
    )


def load_backends(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Backend facts keyed by URL scheme (traits, pros, cons, complexity, ceilings)."""
    return _load("backends.toml", path)


def load_prices(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The dated price entries."""
    prices: list[dict[str, Any]] = _load("prices.toml", path).get("price", [])
    return prices


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """The recommendation rules (profiles, figure labels, noise)."""
    return _load("rules.toml", path)


def facts_for(backends: dict[str, dict[str, Any]], scheme: str) -> dict[str, Any]:
    """The facts of a scheme (``postgres`` is ``postgresql``), or an empty entry."""
    aliases = {"postgres": "postgresql"}
    return backends.get(aliases.get(scheme, scheme), {"title": scheme, "traits": []})


def _price(prices: list[dict[str, Any]], applies_to: str, unit: str) -> dict[str, Any] | None:
    return next(
        (p for p in prices if p.get("applies_to") == applies_to and p.get("unit") == unit), None
    )


def _figure(entry: dict[str, Any], key: str, name: str) -> float | None:
    for workload in entry.get("workloads", []):
        if workload["key"] == key:
            value = workload["figures"].get(name)
            return float(value) if value is not None and math.isfinite(value) else None
    return None


def costs(entry: dict[str, Any], prices: list[dict[str, Any]]) -> dict[str, Any]:
    """Priced figures of one backend's results: per million events, or a monthly floor.

    A request-priced service is priced from the units measured in its own run (single-event
    appends and batches of 10, reads by ``read_all``); an instance-priced one gets a monthly
    floor from its instance price, with the measured rates beside it in the report.
    """
    scheme = "postgresql" if entry.get("scheme") == "postgres" else entry.get("scheme", "")
    out: dict[str, Any] = {"per_million": {}, "floor": None, "prices": []}
    write = _price(prices, scheme, "write request unit")
    read = _price(prices, scheme, "read request unit")
    if write is not None:
        for label, key in (
            ("single-event appends", "append_single.w1"),
            ("appends in batches of 10", "append_batch.b10"),
        ):
            units = _figure(entry, key, "billed_wru_per_event")
            if units is not None:
                out["per_million"][label] = {
                    "units_per_event": round(units, 3),
                    "usd": round(units * write["usd_per_million"], 4),
                }
        out["prices"].append(write)
    if read is not None:
        units = _figure(entry, "read_all", "reported_rcu_per_event")
        if units is not None:
            out["per_million"]["events read by read_all"] = {
                "units_per_event": round(units, 4),
                "usd": round(units * read["usd_per_million"], 4),
            }
        out["prices"].append(read)
    for price in prices:
        if price.get("applies_to") == scheme and price.get("unit", "").endswith("-hour"):
            instances = int(price.get("floor_instances", 1))
            out["floor"] = {
                "usd_per_month": round(price["usd"] * HOURS_PER_MONTH * instances, 2),
                "instances": instances,
                "price": price,
            }
            out["prices"].append(price)
    return out


def estimate_billed_usd(sizes: Sizes, prices: list[dict[str, Any]]) -> float:
    """An upper bound of what one run costs on a request-priced DynamoDB table.

    Assumes the table's ceiling (about 1,000 appends/s, the counter item) for the whole of
    every write variant, at 9 write units per single-event append (the adapter's cost), plus
    reads of everything written; the real bill of a run is lower.
    """
    write = _price(prices, "dynamodb", "write request unit")
    read = _price(prices, "dynamodb", "read request unit")
    if write is None:
        return math.inf
    variants = len(sizes.writers) + len(sizes.batch_sizes) + 1
    events = 1000.0 * sizes.seconds * variants + sizes.live_rate * sizes.live_seconds
    usd = events * 9 * float(write["usd_per_million"]) / 1e6
    if read is not None:
        usd += events * 50 * float(read["usd_per_million"]) / 1e6  # each read many times
    return usd


__all__ = [
    "HOURS_PER_MONTH",
    "costs",
    "estimate_billed_usd",
    "facts_for",
    "load_backends",
    "load_prices",
    "load_rules",
]
