"""Run the workloads against every target and collect ``results.json``.

Each target runs in turn: its server (if any) is started, the store opened and set up, every
workload variant run (each under a time limit, its errors caught and recorded), storage
measured, and the server stopped, before the next target starts, so that two servers never
share this machine's cores during a measurement. ``--repeat N`` runs the whole list N times,
rotating the order, and keeps the median of each figure with its spread.

Ctrl-C stops the run where it is: what was measured so far is kept, the interrupted target is
marked, and the caller writes a partial report marked *interrupted*.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import eventstore_core as es
from eventstore_core.compare import capacity
from eventstore_core.compare.environment import fingerprint
from eventstore_core.compare.stats import median, relative_spread
from eventstore_core.compare.targets import Target
from eventstore_core.compare.verify import run_suite
from eventstore_core.compare.workloads import (
    Context,
    Ledger,
    Sizes,
    WorkloadResult,
    plan,
    warm_up,
)
from eventstore_core.redaction import redact_url

SCHEMA = "eventstore-compare"
SCHEMA_VERSION = 1


@dataclass
class RunOptions:
    """How a comparison runs."""

    sizes: Sizes
    preset: str = "quick"
    seed: int = 42
    repeat: int = 1
    verify: bool = False
    rate: float | None = None
    """Events/s the user needs (a threshold in the recommendations)."""
    p99_ms: float | None = None
    """The p99 append latency the user can accept."""
    extra: dict[str, Any] = field(default_factory=dict)


class Progress:
    """What the runner reports while it works (the CLI draws bars; tests pass nothing)."""

    def target_started(self, target: Target, steps: int) -> None:
        """A target begins: ``steps`` workload variants follow."""

    def step_started(self, target: Target, label: str) -> None:
        """A workload variant begins."""

    def step_done(self, target: Target, result: WorkloadResult) -> None:
        """A workload variant ended (well or not)."""

    def target_done(self, target: Target, status: str) -> None:
        """A target ended with ``status``."""


# -- one target ---------------------------------------------------------------------------


def _error_text(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:500]


async def _stored_bytes(url: str) -> int | None:
    """Bytes the store occupies now, where that can be asked of its storage (else None)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(parts.path)
        files = [path, path.with_name(path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) or None
    if parts.scheme in ("postgresql", "postgres"):
        try:
            import asyncpg

            connection = await asyncpg.connect(url, timeout=10)
            try:
                size = await connection.fetchval("SELECT pg_database_size(current_database())")
            finally:
                await connection.close()
            return int(size)
        except Exception:
            return None
    if parts.scheme == "dynamodb":
        try:
            import aioboto3

            query = dict(parse_qsl(parts.query))
            session = aioboto3.Session(region_name=query.get("region", "us-east-1"))
            async with session.client("dynamodb", endpoint_url=query.get("endpoint_url")) as c:
                table = await c.describe_table(TableName=parts.netloc)
            return int(table["Table"].get("TableSizeBytes") or 0) or None
        except Exception:
            return None
    return None


async def _server_version(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return None
    try:
        import asyncpg

        connection = await asyncpg.connect(url, timeout=10)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()
    except Exception:
        return None


async def run_target(
    target: Target, url: str, options: RunOptions, progress: Progress
) -> dict[str, Any]:
    """Measure one started target; never raises for a backend's failure (it is recorded)."""
    record: dict[str, Any] = {"status": "ok", "error": None, "workloads": []}
    steps = plan(options.sizes)
    progress.target_started(target, len(steps))
    metered = contextlib.ExitStack()
    units = metered.enter_context(capacity.metering()) if target.scheme == "dynamodb" else None
    with metered:
        try:
            store = es.connect(url)
            record["capabilities"] = _capabilities(store.capabilities)
            await asyncio.wait_for(store.open(), timeout=60)
        except Exception as error:
            record["status"] = "unreachable"
            record["error"] = _error_text(error)
            return record
        try:
            await asyncio.wait_for(store.setup(), timeout=120)
            version = await _server_version(url)
            if version:
                target.server["version"] = version
            before = await _stored_bytes(url)
            ctx = Context(
                options.sizes,
                Ledger(f"Cmp{secrets.token_hex(3)}"),
                options.seed,
                store.capabilities,
            )
            if target.kind == "remote":
                ctx.read_filter = es.EventFilter(categories=[ctx.ledger.category])
            limit = options.sizes.seconds * 6 + options.sizes.live_seconds + 60
            measured = target.wrap(store) if target.wrap is not None else store
            # Servers warm up (a JVM's JIT, caches, connection pools); in-process stores
            # have nothing to warm.
            if options.sizes.warmup_seconds > 0 and target.kind not in ("reference", "embedded"):
                progress.step_started(target, "warm-up (not measured)")
                record["warmup_events"] = await asyncio.wait_for(
                    warm_up(measured, ctx), timeout=options.sizes.warmup_seconds + 60
                )
            for label, step in steps:
                if _INTERRUPTED.is_set():
                    break
                progress.step_started(target, label)
                start_units = units.copy() if units is not None else None
                try:
                    result = await asyncio.wait_for(step(measured, ctx), timeout=limit)
                except TimeoutError:
                    result = WorkloadResult(label.replace(" ", "_"), label)
                    result.error = f"did not finish within {limit:.0f} s"
                except es.EventStoreError as error:
                    result = WorkloadResult(label.replace(" ", "_"), label)
                    result.error = _error_text(error)
                if units is not None and start_units is not None and result.events:
                    used = units.minus(start_units)
                    result.extra["reported_wcu_per_event"] = used.reported_write / result.events
                    result.extra["reported_rcu_per_event"] = used.reported_read / result.events
                    result.extra["billed_wru_per_event"] = used.billed_write / result.events
                    result.extra["requests_per_event"] = used.requests / result.events
                record["workloads"].append(result.to_json())
                progress.step_done(target, result)
            after = await _stored_bytes(url)
            events = ctx.ledger.events + record.get("warmup_events", 0)
            if after is not None and events:
                grown = after - (before or 0)
                record["stored_bytes_per_event"] = round(grown / events, 1) if grown > 0 else None
            record["events_written"] = events
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.close(), timeout=30)
    return record


def _capabilities(capabilities: es.Capabilities) -> dict[str, Any]:
    # Every field, whatever this version's Capabilities holds (the report lists them all).
    fields = getattr(capabilities, "__dataclass_fields__", {})
    return {name: getattr(capabilities, name) for name in fields}


# -- many targets, repeats ----------------------------------------------------------------------


def _merge(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One workload list from repeated runs: median figures, every failed check kept."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for workload in run.get("workloads", []):
            by_key.setdefault(workload["key"], []).append(workload)
    merged = []
    for samples in by_key.values():
        first = dict(samples[0])
        if len(samples) > 1:
            figures: dict[str, float | None] = {}
            spread: dict[str, float] = {}
            for name in first["figures"]:
                values = [
                    s["figures"][name]
                    for s in samples
                    if s["figures"].get(name) is not None and math.isfinite(s["figures"][name])
                ]
                figures[name] = round(median(values), 4) if values else None
                spread[name] = round(relative_spread(values), 4)
            first["figures"] = figures
            first["spread"] = spread
            first["repeats"] = len(samples)
            failed = [c for s in samples for c in s["checks"] if not c["passed"]]
            first["checks"] = failed or first["checks"]
            first["sound"] = all(s["sound"] for s in samples)
            first["error"] = next((s["error"] for s in samples if s["error"]), None)
        merged.append(first)
    return merged


#: Set by Ctrl-C while a target runs (see _run_interruptibly).
_INTERRUPTED = threading.Event()


def _run_interruptibly(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run one target's coroutine; turn Ctrl-C into ``KeyboardInterrupt`` whatever happens.

    ``asyncio.run`` turns Ctrl-C into a cancellation of the main task, and raises
    ``KeyboardInterrupt`` only if that cancellation comes back out of it; code on the way
    that catches it (a driver mapping a cancelled call to its own error, which a workload
    records and moves past) would let the run go on. Here Ctrl-C sets a flag and cancels
    every task, and the flag, not the task's outcome, decides; the workload loop also stops
    at the flag. A second Ctrl-C interrupts at once.
    """
    # Whatever an earlier run of this process left (a run that Ctrl-C ended leaves the flag
    # set), this one starts uninterrupted: a stale flag would skip every workload.
    _INTERRUPTED.clear()
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        # Not ours to handle (another thread, or SIGINT ignored or taken by the caller).
        return asyncio.run(coroutine)
    with asyncio.Runner() as runner:
        loop = runner.get_loop()

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            if _INTERRUPTED.is_set():
                raise KeyboardInterrupt
            _INTERRUPTED.set()

            def cancel_all() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            loop.call_soon_threadsafe(cancel_all)

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            record = runner.run(coroutine)
        except asyncio.CancelledError:
            if _INTERRUPTED.is_set():
                raise KeyboardInterrupt from None
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt
    return record


def run_comparison(
    targets: list[Target],
    options: RunOptions,
    progress: Progress | None = None,
    *,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every target ``options.repeat`` times; return the results document.

    ``on_update`` receives the document after each target (to write partial results). On
    Ctrl-C the document is returned with ``interrupted`` true, never raised through.
    """
    progress = progress or Progress()
    started = time.time()
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "interrupted": False,
        "options": {
            "preset": options.preset,
            "seconds_per_variant": options.sizes.seconds,
            "seed": options.seed,
            "repeat": options.repeat,
            "rate": options.rate,
            "p99_ms": options.p99_ms,
            "sizes": {
                name: list(value) if isinstance(value, tuple) else value
                for name, value in vars(options.sizes).items()
            },
        }
        | options.extra,
        "environment": fingerprint(),
        "backends": [],
    }
    entries: dict[str, dict[str, Any]] = {}
    for target in targets:
        entry: dict[str, Any] = {
            "name": target.name,
            "scheme": target.scheme,
            "kind": target.kind,
            "url": target.describe_url(),
            "note": target.note,
            "status": "unavailable" if target.unavailable else "pending",
            "error": target.unavailable,
            "server": {},
            "runs": [],
            "workloads": [],
        }
        entries[target.name] = entry
        results["backends"].append(entry)
    runnable = [t for t in targets if not t.unavailable]
    try:
        for repeat in range(options.repeat):
            shift = repeat % len(runnable) if runnable else 0
            for target in runnable[shift:] + runnable[:shift]:
                entry = entries[target.name]
                run_id = secrets.token_hex(4)
                try:
                    with target.started(run_id) as url:
                        if target.url is None:
                            entry["url"] = redact_url(url)
                        record = _run_interruptibly(run_target(target, url, options, progress))
                        if options.verify and record["status"] == "ok" and repeat == 0:
                            progress.step_started(target, "conformance suite")
                            entry["verify"] = run_suite(url)
                except KeyboardInterrupt:
                    entry["status"] = "interrupted"
                    raise
                except Exception as error:
                    if _INTERRUPTED.is_set():
                        # Ctrl-C reached the server too (one process group): stopping it
                        # failed, which is the interruption's doing, not the backend's.
                        entry["status"] = "interrupted"
                        raise KeyboardInterrupt from error
                    record = {"status": "failed to start", "error": _error_text(error)}
                entry["runs"].append(record)
                entry["server"] = dict(target.server)
                _summarise(entry)
                progress.target_done(target, entry["status"])
                if on_update is not None:
                    on_update(results)
    except KeyboardInterrupt:
        results["interrupted"] = True
    for entry in entries.values():
        if entry["status"] == "pending":
            entry["status"] = "not run (interrupted)" if results["interrupted"] else "pending"
    results["wall_seconds"] = round(time.time() - started, 1)
    if hasattr(os, "getloadavg"):  # a load that grew during the run moves the later targets
        results["environment"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return results


def _summarise(entry: dict[str, Any]) -> None:
    runs = entry["runs"]
    statuses = [run.get("status", "failed") for run in runs]
    failed = next((run for run in runs if run.get("status") != "ok"), None)
    entry["status"] = "ok" if all(s == "ok" for s in statuses) else statuses[-1]
    entry["error"] = failed.get("error") if failed else None
    ok_runs = [run for run in runs if run.get("status") == "ok"]
    entry["workloads"] = _merge(ok_runs) if ok_runs else []
    for name in ("capabilities",):
        value = next((run[name] for run in runs if name in run), None)
        if value is not None:
            entry[name] = value
    sizes = [r["stored_bytes_per_event"] for r in ok_runs if r.get("stored_bytes_per_event")]
    entry["stored_bytes_per_event"] = median(sizes) if sizes else None
    entry["sound"] = bool(entry["workloads"]) and all(w["sound"] for w in entry["workloads"])


__all__ = ["SCHEMA", "SCHEMA_VERSION", "Progress", "RunOptions", "run_comparison", "run_target"]
