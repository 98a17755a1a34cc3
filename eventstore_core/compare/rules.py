"""The recommendation engine: requirement profiles from a data file, applied to results.

The engine knows no backend by name. For each profile of ``rules.toml`` it:

1. excludes every backend that did not run (listed with its error), that has a failed
   correctness check anywhere (unsound), that is a reference (trait ``reference``) or a
   protocol double standing in for a server (target kind ``double``), that
   falls short of the profile's required capabilities or traits, or that misses the user's
   thresholds (``--rate`` on the profile's ``rate_figure``, ``--p99-ms`` on its
   ``p99_figure``);
2. ranks the rest by the profile's ``rank`` figure, and calls every candidate within the
   noise of the best a tie (the noise is the rules' ``noise``, or the spread repeated runs
   measured, whichever is larger);
3. writes sentences that each name the figure they rest on, with its value on this machine
   and its ratio to the reference (``memory://``) where that has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from eventstore_core.compare.facts import costs, facts_for

#: Capability values ranked from weakest to strongest (a requirement is met at or above).
_RANKS: dict[str, tuple[str, ...]] = {
    "concurrency": ("single-writer", "multi-writer"),
    "idempotency": ("none", "window", "permanent"),
    "unique_event_ids": ("none", "stream", "store"),
    "global_order": ("partitioned", "total"),
    "live_subscriptions": ("poll", "push"),
}


@dataclass
class Ranked:
    """A candidate of a profile with the figure that ranked it."""

    name: str
    value: float
    ratio: float | None
    """The figure divided by the reference backend's, where the reference has it."""
    spread: float = 0.0


@dataclass
class Verdict:
    """What one profile concluded."""

    id: str
    title: str
    need: str
    figure: str
    figure_label: str
    unit: str
    better: str
    chosen: list[str] = field(default_factory=list)
    ranking: list[Ranked] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    noise: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The verdict as stored in ``results.json``."""
        return {
            "id": self.id,
            "title": self.title,
            "need": self.need,
            "figure": self.figure,
            "better": self.better,
            "noise": self.noise,
            "chosen": self.chosen,
            "ranking": [
                {"name": r.name, "value": r.value, "ratio_to_reference": r.ratio}
                for r in self.ranking
            ],
            "excluded": [{"name": name, "reason": reason} for name, reason in self.excluded],
            "sentences": self.sentences,
        }


def figures_of(entry: dict[str, Any], prices: list[dict[str, Any]]) -> dict[str, float]:
    """Every figure of one backend, flat: ``<workload key>.<figure>``, ``capability.*``,
    ``cost.*``. Unmeasured figures are absent."""
    out: dict[str, float] = {}
    for workload in entry.get("workloads", []):
        if workload.get("skipped") or workload.get("error"):
            continue
        for name, value in workload["figures"].items():
            if value is not None and math.isfinite(value):
                out[f"{workload['key']}.{name}"] = float(value)
    for name, value in (entry.get("capabilities") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f"capability.{name}"] = float(value)
    priced = costs(entry, prices)["per_million"].get("single-event appends")
    if priced is not None:
        out["cost.usd_per_million_events"] = float(priced["usd"])
    return out


def _spread_of(entry: dict[str, Any], figure: str) -> float:
    for workload in entry.get("workloads", []):
        if figure.startswith(workload["key"] + "."):
            name = figure[len(workload["key"]) + 1 :]
            return float((workload.get("spread") or {}).get(name, 0.0))
    return 0.0


def _capability_shortfalls(capabilities: dict[str, Any], require: dict[str, Any]) -> list[str]:
    problems = []
    for key, wanted in require.items():
        have = capabilities.get(key)
        if have is None:
            problems.append(f"does not declare {key}")
        elif key in _RANKS:
            ranks = _RANKS[key]
            if have not in ranks or wanted not in ranks or ranks.index(have) < ranks.index(wanted):
                problems.append(f"{key} is {have!r}, {wanted!r} required")
        elif isinstance(wanted, bool):
            if wanted and not have:
                problems.append(f"{key} is false, required")
        elif isinstance(wanted, int | float) and isinstance(have, int | float) and have < wanted:
            problems.append(f"{key} is {have:,}, at least {wanted:,} required")
    return problems


def failed_checks(entry: dict[str, Any]) -> list[str]:
    """``workload: check`` for every failed correctness check of a backend."""
    return [
        f"{workload['key']}: {check['name']} ({check['detail']})"
        for workload in entry.get("workloads", [])
        for check in workload.get("checks", [])
        if not check["passed"]
    ]


def format_value(value: float, unit: str) -> str:
    """A figure for a sentence or a table cell: ``1,234 events/s``, ``3.2 ms``, ``12%``."""
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "USD":
        return f"${value:,.2f}"
    if unit == "bytes":
        return f"{value / 1_048_576:,.1f} MiB" if value >= 1_048_576 else f"{value:,.0f} B"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def evaluate(
    results: dict[str, Any],
    rules: dict[str, Any],
    backends: dict[str, dict[str, Any]],
    prices: list[dict[str, Any]],
    *,
    rate: float | None = None,
    p99_ms: float | None = None,
) -> list[Verdict]:
    """Apply every profile of ``rules`` to ``results``; see the module's docstring."""
    labels: dict[str, dict[str, str]] = rules.get("figures", {})
    base_noise = float(rules.get("noise", 0.1))
    entries = results.get("backends", [])
    figures = {entry["name"]: figures_of(entry, prices) for entry in entries}
    traits = {
        entry["name"]: set(facts_for(backends, entry["scheme"]).get("traits", []))
        for entry in entries
    }
    reference = next(
        (e["name"] for e in entries if "reference" in traits[e["name"]] and e.get("sound")),
        None,
    )
    verdicts = []
    for profile in rules.get("profile", []):
        figure = profile["rank"]
        meta = labels.get(figure, {"label": figure, "unit": ""})
        verdict = Verdict(
            profile["id"],
            profile["title"],
            profile.get("need", ""),
            figure,
            meta["label"],
            meta.get("unit", ""),
            profile.get("better", "higher"),
        )
        candidates: list[Ranked] = []
        for entry in entries:
            name = entry["name"]
            reason = _exclusion(entry, profile, traits[name], figures[name], labels, rate, p99_ms)
            if reason:
                verdict.excluded.append((name, reason))
                continue
            value = figures[name][figure]
            ref = figures.get(reference or "", {}).get(figure)
            ratio = value / ref if ref else None
            candidates.append(Ranked(name, value, ratio, _spread_of(entry, figure)))
        higher = verdict.better == "higher"
        candidates.sort(key=lambda r: r.value, reverse=higher)
        verdict.ranking = candidates
        _conclude(verdict, candidates, base_noise, reference, labels, profile, figures)
        verdicts.append(verdict)
    return verdicts


def _exclusion(
    entry: dict[str, Any],
    profile: dict[str, Any],
    traits: set[str],
    figures: dict[str, float],
    labels: dict[str, dict[str, str]],
    rate: float | None,
    p99_ms: float | None,
) -> str | None:
    if entry.get("status") != "ok":
        return f"did not run: {entry.get('status')} ({entry.get('error') or 'no error given'})"
    failed = failed_checks(entry)
    if failed or not entry.get("sound", False):
        return "unsound: " + ("; ".join(failed[:2]) if failed else "a workload failed")
    if "reference" in traits:
        return "reference column (the library's own cost), never recommended"
    if entry.get("kind") == "double":
        return "a protocol double: its figures are library overhead, not server speed"
    shortfalls = _capability_shortfalls(entry.get("capabilities") or {}, profile.get("require", {}))
    missing_traits = [t for t in profile.get("traits", []) if t not in traits]
    if missing_traits:
        shortfalls.append(f"lacks {', '.join(missing_traits)}")
    if shortfalls:
        return "; ".join(shortfalls)
    figure = profile["rank"]
    if figure not in figures:
        return f"no measurement of {labels.get(figure, {}).get('label', figure)}"
    if rate is not None and profile.get("rate_figure"):
        have = figures.get(profile["rate_figure"])
        if have is None or have < rate:
            shown = "unmeasured" if have is None else f"{have:,.0f}"
            label = labels.get(profile["rate_figure"], {}).get("label", profile["rate_figure"])
            return f"below --rate {rate:,.0f}: {label} is {shown} on this machine"
    if p99_ms is not None and profile.get("p99_figure"):
        have = figures.get(profile["p99_figure"])
        if have is None or have > p99_ms:
            shown = "unmeasured" if have is None else f"{have:.2f} ms"
            label = labels.get(profile["p99_figure"], {}).get("label", profile["p99_figure"])
            return f"above --p99-ms {p99_ms:g}: {label} is {shown} on this machine"
    return None


def _conclude(
    verdict: Verdict,
    candidates: list[Ranked],
    base_noise: float,
    reference: str | None,
    labels: dict[str, dict[str, str]],
    profile: dict[str, Any],
    figures: dict[str, dict[str, float]],
) -> None:
    unit = verdict.unit
    if not candidates:
        verdict.sentences.append(
            "No backend measured here qualifies: each is excluded below, with its reason."
        )
        return
    best = candidates[0]
    noise = max([base_noise, best.spread] + [c.spread for c in candidates[1:2]])
    verdict.noise = round(noise, 4)

    def gap(candidate: Ranked) -> float:
        if best.value == 0:
            return 0.0 if candidate.value == 0 else math.inf
        return abs(best.value - candidate.value) / abs(best.value)

    tied = [c for c in candidates if gap(c) <= noise]
    verdict.chosen = [c.name for c in tied]

    measured = not verdict.figure.startswith(("capability.", "cost."))

    def shown(c: Ranked) -> str:
        if not measured:  # a declared limit or a price: the same on every machine
            return format_value(c.value, unit)
        text = f"{format_value(c.value, unit)} on this machine"
        if c.ratio is not None and reference:
            shown_ratio = f"{c.ratio:.2f}" if c.ratio >= 0.1 else f"{c.ratio:.2g}"
            text += f", {shown_ratio}x {reference.split(' ')[0]}"
        return text

    if len(tied) > 1:
        verdict.sentences.append(
            f"A tie on {verdict.figure_label}: "
            + "; ".join(f"{c.name} {shown(c)}" for c in tied)
            + f" (within {noise:.0%} of each other, the noise of this measurement)."
        )
    else:
        verdict.sentences.append(
            f"{best.name} ranks first on {verdict.figure_label}: {shown(best)}."
        )
        if len(candidates) > 1:
            runner_up = candidates[1]
            verdict.sentences.append(
                f"Next is {runner_up.name} at {shown(runner_up)} "
                f"({gap(runner_up):.0%} {'lower' if verdict.better == 'higher' else 'higher'})."
            )
        else:
            verdict.sentences.append(
                "It is the only backend measured here that meets the profile's requirements."
            )
    for extra in profile.get("also", []):
        meta = labels.get(extra, {"label": extra, "unit": ""})
        values = [
            f"{c.name} {format_value(figures[c.name][extra], meta.get('unit', ''))}"
            for c in tied
            if extra in figures[c.name]
        ]
        if values:
            verdict.sentences.append(f"Also {meta['label']}: {', '.join(values)}.")


__all__ = ["Ranked", "Verdict", "evaluate", "failed_checks", "figures_of", "format_value"]
