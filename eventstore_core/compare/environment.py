"""The fingerprint of the machine a comparison ran on, and what makes two runs comparable.

Absolute figures belong to one machine: the report prints this fingerprint beside every
table, and ``eventstore compare diff`` refuses to compare runs whose :func:`machine_key`
differs (unless forced, and then with a banner).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import eventstore_core as es


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fsync_probe(directory: str | None = None, rounds: int = 30) -> dict[str, float]:
    """Time ``write(4 KiB) + fsync`` in ``directory``: what a durable commit costs here.

    Durable stores pay at least one such flush per commit (SQLite, PostgreSQL with
    ``synchronous_commit=on``), so this figure bounds their single-writer append rate.
    """
    samples: list[float] = []
    block = os.urandom(4096)
    with tempfile.NamedTemporaryFile(dir=directory, prefix="eventstore-fsync-") as handle:
        for _ in range(rounds):
            started = time.perf_counter()
            handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
            samples.append(time.perf_counter() - started)
    median = statistics.median(samples)
    return {
        "median_ms": round(median * 1000.0, 3),
        "max_ms": round(max(samples) * 1000.0, 3),
        "fsyncs_per_s": round(1.0 / median, 1) if median else 0.0,
    }


def fingerprint() -> dict[str, Any]:
    """Package version, Python, OS, CPU, cores, memory and an fsync probe of this machine."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "package": "eventstore-core",
        "package_version": es.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cores": _usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "load_average_at_start": [round(value, 2) for value in load],
        "fsync": fsync_probe(),
    }


def machine_key(environment: dict[str, Any]) -> dict[str, Any]:
    """The parts of a fingerprint that must match for two runs' figures to be compared."""
    memory = environment.get("memory_bytes") or 0
    return {
        "cpu": environment.get("cpu"),
        "cores": environment.get("cores"),
        "memory_gib": round(memory / 2**30),
        "os": str(environment.get("os", "")).split("-")[0],
        "python": ".".join(str(environment.get("python", "")).split(".")[:2]),
    }


def describe(environment: dict[str, Any]) -> str:
    """One line: ``2 cores (AMD EPYC ...), 7.8 GiB, Linux, Python 3.12, fsync 1.2 ms``."""
    memory = environment.get("memory_bytes") or 0
    fsync = environment.get("fsync") or {}
    return (
        f"{environment.get('cores')} cores ({environment.get('cpu')}), "
        f"{memory / 2**30:.1f} GiB, {str(environment.get('os', '')).split('-')[0]}, "
        f"Python {environment.get('python')}, eventstore-core "
        f"{environment.get('package_version')}, fsync {fsync.get('median_ms', '?')} ms"
    )


__all__ = ["describe", "fingerprint", "fsync_probe", "machine_key"]
