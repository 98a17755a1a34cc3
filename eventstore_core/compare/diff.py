"""``eventstore compare diff A.json B.json``: what changed between two runs.

Figures from different machines do not compare: unless forced, two results whose
:func:`~eventstore_core.compare.environment.machine_key` differ are refused; forced, the
diff opens with a banner naming what differs.
"""

from __future__ import annotations

from typing import Any

from eventstore_core.compare.environment import machine_key
from eventstore_core.compare.report import SUMMARY_COLUMNS


class DifferentMachinesError(ValueError):
    """The two results were measured in different environments."""


def environment_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``field: A -> B`` for every part of the machine key that differs."""
    key_a = machine_key(a.get("environment", {}))
    key_b = machine_key(b.get("environment", {}))
    return [f"{k}: {key_a[k]} -> {key_b[k]}" for k in key_a if key_a[k] != key_b.get(k)]


def _figure(entry: dict[str, Any], key: str, name: str) -> float | None:
    for workload in entry.get("workloads", []):
        if workload["key"] == key and not workload.get("error"):
            value = workload["figures"].get(name)
            return None if value is None else float(value)
    return None


def diff(a: dict[str, Any], b: dict[str, Any], *, force: bool = False) -> str:
    """A Markdown diff of the summary figures of the backends both runs measured."""
    differences = environment_differences(a, b)
    if differences and not force:
        raise DifferentMachinesError(
            "the two runs come from different environments ("
            + "; ".join(differences)
            + "); their figures do not compare. Pass --force to diff them anyway."
        )
    lines = ["# Comparison diff", ""]
    if differences:
        lines += [
            "> **DIFFERENT ENVIRONMENTS: " + "; ".join(differences) + ". The changes below "
            "mix the code's effect with the machine's.**",
            "",
        ]
    lines.append(f"A: {a.get('created_at')}  B: {b.get('created_at')} (changes are B vs A)")
    lines.append("")
    by_name_b = {entry["name"]: entry for entry in b.get("backends", [])}
    lines.append("| backend | figure | A | B | change |")
    lines.append("|---|---|---|---|---|")
    for entry_a in a.get("backends", []):
        entry_b = by_name_b.get(entry_a["name"])
        if entry_b is None:
            lines.append(f"| {entry_a['name']} | (only in A) | | | |")
            continue
        if entry_a.get("status") != entry_b.get("status"):
            lines.append(
                f"| {entry_a['name']} | status | {entry_a.get('status')} | "
                f"{entry_b.get('status')} | |"
            )
        for header, key, name, unit in SUMMARY_COLUMNS:
            va, vb = _figure(entry_a, key, name), _figure(entry_b, key, name)
            if va is None and vb is None:
                continue
            change = f"{(vb - va) / va:+.1%}" if va and vb is not None else ""
            shown_a = "-" if va is None else f"{va:,.2f}"
            shown_b = "-" if vb is None else f"{vb:,.2f}"
            lines.append(
                f"| {entry_a['name']} | {header} ({unit}) | {shown_a} | {shown_b} | {change} |"
            )
    for name in by_name_b:
        if name not in {entry["name"] for entry in a.get("backends", [])}:
            lines.append(f"| {name} | (only in B) | | | |")
    return "\n".join(lines) + "\n"


__all__ = ["DifferentMachinesError", "diff", "environment_differences"]
