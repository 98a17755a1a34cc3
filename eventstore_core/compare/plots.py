"""Plots for ``report.html``, drawn with matplotlib (the ``compare`` extra) as inline SVG.

:func:`render_plots` returns an empty dict when matplotlib is not installed; the HTML report
then says how to get the plots, and the Markdown and JSON never need them.
"""

from __future__ import annotations

import io
import math
from typing import Any

#: One colour per backend, in report order (colour-blind-safe Okabe-Ito palette).
_COLOURS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7")


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    # Inline in HTML: drop the XML prolog and DOCTYPE, keep the <svg> element.
    return text[text.index("<svg") :]


def _workload(entry: dict[str, Any], key: str) -> dict[str, Any] | None:
    for workload in entry.get("workloads", []):
        if workload["key"] == key and not workload.get("error") and not workload.get("skipped"):
            return dict(workload)
    return None


def render_plots(results: dict[str, Any]) -> dict[str, str]:
    """SVG documents by name: ``throughput``, ``latency``, ``live``, ``series``."""
    if not available():
        return {}
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    plt.rcParams.update({"font.size": 10, "svg.fonttype": "none", "axes.grid": True})
    entries = [e for e in results.get("backends", []) if e.get("workloads")]
    colours = {e["name"]: _COLOURS[i % len(_COLOURS)] for i, e in enumerate(entries)}
    plots: dict[str, str] = {}

    # Throughput by concurrency: single-event appends at each writer count, and batches.
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for entry in entries:
        points = []
        for workload in entry["workloads"]:
            if workload["key"].startswith("append_single.w") and workload["figures"].get(
                "events_per_s"
            ):
                points.append((workload["params"]["writers"], workload["figures"]["events_per_s"]))
        if points:
            points.sort()
            left.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                color=colours[entry["name"]],
                label=entry["name"],
            )
        batches = []
        for key in ("append_single.w1", "append_batch.b10", "append_batch.b100"):
            workload = _workload(entry, key)
            if workload and workload["figures"].get("events_per_s"):
                # At the batch size really used (a store's max_append_events may cap it).
                size = workload["params"].get("batch", 1)
                batches.append((size, workload["figures"]["events_per_s"]))
        if batches:
            right.plot(
                [b[0] for b in batches],
                [b[1] for b in batches],
                marker="s",
                color=colours[entry["name"]],
                label=entry["name"],
            )
    writers = sorted(
        {
            w["params"]["writers"]
            for e in entries
            for w in e["workloads"]
            if "writers" in w["params"]
        }
    )
    for ax, ticks in ((left, writers or [1]), (right, [1, 10, 33, 100])):
        ax.set(xscale="log", yscale="log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
    left.set(xlabel="concurrent writers", ylabel="events/s")
    left.set_title("Single-event appends by writers (this machine)")
    right.set(xlabel="events per append", ylabel="events/s")
    right.set_title("Appends by batch size, 1 writer (this machine)")
    handles, names = left.get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=min(4, len(names) or 1), fontsize=8)
    figure.subplots_adjust(bottom=0.25, wspace=0.25)
    plots["throughput"] = _svg(figure)
    plt.close(figure)

    # Latency distributions (from the evenly spaced sample of sorted latencies).
    for name, keys, title in (
        (
            "latency",
            ("append_single.w1", "append_single.w4", "hot_streams"),
            "append latency",
        ),
        ("live", ("live",), "append-to-delivery latency, open loop"),
    ):
        figure, axes = plt.subplots(
            1, len(keys), figsize=(11 if len(keys) > 1 else 6, 4.2), sharey=True
        )
        axes_list = list(axes) if len(keys) > 1 else [axes]
        drawn = False
        for ax, key in zip(axes_list, keys, strict=True):
            for entry in entries:
                workload = _workload(entry, key)
                sample = workload.get("latency_sample_ms") if workload else None
                if not sample or workload is None:
                    continue
                ranks = [(i + 0.5) / len(sample) for i in range(len(sample))]
                ax.plot(sample, ranks, color=colours[entry["name"]], label=entry["name"])
                drawn = True
            ax.set(xscale="log", xlabel="ms (log)")
            label = next(
                (w["label"] for e in entries for w in e["workloads"] if w["key"] == key), key
            )
            ax.set_title(label.replace(", Zipf", ",\nZipf"), fontsize=9)
        axes_list[0].set_ylabel("share of operations at or below")
        handles, names = axes_list[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="lower center", ncol=min(4, len(names) or 1), fontsize=8)
        figure.suptitle(f"Distribution of {title} (this machine)")
        figure.subplots_adjust(bottom=0.27, top=0.83, wspace=0.08)
        if drawn:
            plots[name] = _svg(figure)
        plt.close(figure)

    # Per-interval series of the 4-writer (or the widest) single-event appends.
    figure, ax = plt.subplots(figsize=(11, 3.6))
    drawn = False
    for entry in entries:
        singles = sorted(
            (w for w in entry["workloads"] if w["key"].startswith("append_single.w")),
            key=lambda w: w["params"].get("writers", 0),
        )
        if not singles:
            continue
        workload = singles[-1]
        series = workload.get("series_events_per_s") or []
        interval = float(workload.get("series_interval_s", 0.5))
        if series:
            ax.plot(
                [interval * (i + 1) for i in range(len(series))],
                [value if value > 0 else math.nan for value in series],
                color=colours[entry["name"]],
                label=f"{entry['name']} ({workload['params'].get('writers')} writers)",
                marker=".",
            )
            drawn = True
    ax.set(yscale="log", xlabel="seconds into the workload", ylabel="events/s per window")
    ax.set_title("Single-event appends over time (this machine)")
    ax.legend(fontsize=8)
    if drawn:
        plots["series"] = _svg(figure)
    plt.close(figure)
    return plots


__all__ = ["available", "render_plots"]
