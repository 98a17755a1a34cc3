"""Small statistics for measurements: percentiles, a seeded Zipf sampler, per-interval series."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence

#: The latency percentiles every workload reports, by their key in ``results.json``.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, by the nearest-rank method.

    Nearest rank, not interpolation: every figure reported is a latency that was observed.
    """
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max of latencies given in seconds, in milliseconds."""
    ordered = sorted(seconds)
    summary = {key: percentile(ordered, q) * 1000.0 for key, q in PERCENTILES}
    summary["max"] = (ordered[-1] * 1000.0) if ordered else math.nan
    return summary


def median(values: Sequence[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def relative_spread(values: Sequence[float]) -> float:
    """``(max - min) / median`` of repeated measurements: 0 for a single one."""
    finite = [value for value in values if math.isfinite(value)]
    if len(finite) < 2:
        return 0.0
    middle = median(finite)
    return (max(finite) - min(finite)) / middle if middle else 0.0


def per_interval_rates(
    completions: Sequence[float], counts: Sequence[int], interval: float = 0.5
) -> list[float]:
    """Events per second in consecutive ``interval``-second windows.

    ``completions`` are seconds since the workload started, ``counts`` the events each
    completion carried. The last, partial window is dropped unless it is the only one.
    """
    if not completions:
        return []
    end = max(completions)
    windows = max(1, math.ceil(end / interval))
    totals = [0] * windows
    for at, count in zip(completions, counts, strict=True):
        totals[min(windows - 1, int(at / interval))] += count
    if windows > 1 and end % interval:
        totals = totals[:-1]
    return [total / interval for total in totals]


class Zipf:
    """A seeded sampler of ``0 .. n-1`` where rank ``k`` has weight ``1 / (k + 1) ** s``.

    Inverse-transform sampling over the cumulative weights: exact for any ``s`` and ``n``,
    and reproducible from the seed, so two runs contend on the same streams in the same order.
    """

    def __init__(self, n: int, s: float, seed: int) -> None:
        """Prepare the cumulative weights of ``n`` ranks with exponent ``s``."""
        if n < 1:
            raise ValueError("Zipf needs at least one rank")
        self.n = n
        self.s = s
        self._cumulative = list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(n)))
        self._random = random.Random(seed)

    def sample(self) -> int:
        """The next rank."""
        point = self._random.random() * self._cumulative[-1]
        return min(self.n - 1, bisect.bisect_left(self._cumulative, point))

    def share_of_top(self) -> float:
        """The probability of rank 0 (how hot the hottest stream is)."""
        return float(self._cumulative[0] / self._cumulative[-1])


__all__ = [
    "PERCENTILES",
    "Zipf",
    "latency_summary",
    "median",
    "per_interval_rates",
    "percentile",
    "relative_spread",
]
