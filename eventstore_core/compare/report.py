"""``report.md`` and ``report.html`` from a results document.

Both are rendered from one list of blocks (headings, paragraphs, tables, lists, figures), so
the Markdown and the HTML always say the same thing; the HTML adds plots (see
:mod:`eventstore_core.compare.plots`) when the ``compare`` extra (matplotlib) is installed,
and says how to get them when it is not. The report never hides a backend: one that was
unavailable, unreachable, failed or unsound has its row, its status and its reason.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from eventstore_core.compare.environment import describe
from eventstore_core.compare.facts import costs, facts_for
from eventstore_core.compare.rules import Verdict, failed_checks, format_value


@dataclass
class Block:
    """One piece of a report: ``kind`` is h1/h2/h3/p/banner/table/ul/figure."""

    kind: str
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    items: tuple[str, ...] = ()
    svg: str = ""
    anchor: str = ""


# -- figures for tables ------------------------------------------------------------------------

#: The summary table's columns: (header, workload key, figure, unit).
SUMMARY_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("appends, 1 writer", "append_single.w1", "events_per_s", "events/s"),
    ("appends, 4 writers", "append_single.w4", "events_per_s", "events/s"),
    ("batches of 100", "append_batch.b100", "events_per_s", "events/s"),
    ("hot streams, useful", "hot_streams", "events_per_s", "events/s"),
    ("read_all", "read_all", "events_per_s", "events/s"),
    ("live p99", "live", "latency_ms.p99", "ms"),
)


def _workload(entry: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((w for w in entry.get("workloads", []) if w["key"] == key), None)


def _value(entry: dict[str, Any], key: str, figure: str) -> float | None:
    workload = _workload(entry, key)
    if workload is None or workload.get("error") or workload.get("skipped"):
        return None
    value = workload["figures"].get(figure)
    return float(value) if value is not None and math.isfinite(value) else None


def _reference(results: dict[str, Any], backends: dict[str, dict[str, Any]]) -> dict[str, Any]:
    for entry in results.get("backends", []):
        if "reference" in facts_for(backends, entry["scheme"]).get("traits", []):
            return dict(entry)
    return {}


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(entry: dict[str, Any], ref: dict[str, Any], key: str, figure: str, unit: str) -> str:
    value = _value(entry, key, figure)
    if value is None:
        workload = _workload(entry, key)
        if workload is not None and workload.get("error"):
            return "error"
        return "-"
    text = _number(value)
    if unit == "ms":
        text += " ms"
    workload = _workload(entry, key)
    params = workload.get("params", {}) if workload is not None else {}
    if params.get("asked") and params.get("batch") != params["asked"]:
        text += f" [{params['batch']}/append]"  # the store's max_append_events
    if workload is not None and not workload.get("sound", True):
        text += " UNSOUND"
    base = _value(ref, key, figure) if ref and ref is not entry else None
    if base and entry.get("name") != ref.get("name"):
        text += f" ({ratio(value / base)})"
    return text


def ratio(value: float) -> str:
    """A ratio to the reference with two significant digits: ``0.43x``, ``0.0012x``, ``11x``."""
    if value >= 10:
        return f"{value:,.0f}x"
    if value >= 0.1:
        return f"{value:.2f}x"
    return f"{value:.2g}x"


def summary_rows(
    results: dict[str, Any], backends: dict[str, dict[str, Any]]
) -> list[tuple[str, ...]]:
    """The summary table's rows: backend, kind, status, then one cell per summary column."""
    ref = _reference(results, backends)
    return [
        (
            entry["name"],
            entry["kind"],
            _status(entry),
            *(_cell(entry, ref, key, fig, unit) for _, key, fig, unit in SUMMARY_COLUMNS),
        )
        for entry in results.get("backends", [])
    ]


def _status(entry: dict[str, Any]) -> str:
    if entry.get("status") != "ok":
        return str(entry.get("status"))
    return "ok" if entry.get("sound") else "UNSOUND"


# -- the blocks ----------------------------------------------------------------------------------


def build(
    results: dict[str, Any],
    verdicts: list[Verdict],
    backends: dict[str, dict[str, Any]],
    prices: list[dict[str, Any]],
    plots: dict[str, str] | None = None,
) -> list[Block]:
    """The report's blocks, in order; ``plots`` maps a plot name to an SVG document."""
    plots = plots or {}
    ref = _reference(results, backends)
    ref_name = ref.get("name", "memory://")
    environment = results.get("environment", {})
    options = results.get("options", {})
    entries = results.get("backends", [])
    blocks = [Block("h1", "Event store comparison, measured on this machine")]
    if results.get("interrupted"):
        blocks.append(
            Block("banner", "INTERRUPTED: this is a partial report; targets not run are marked.")
        )
    blocks.append(
        Block(
            "p",
            f"Measured on {describe(environment)}, preset {options.get('preset')} "
            f"({options.get('seconds_per_variant')} s per variant, seed {options.get('seed')}, "
            f"{options.get('repeat')} run(s)), {results.get('created_at')}, "
            f"{results.get('wall_seconds', '?')} s in all.",
        )
    )
    start_load = environment.get("load_average_at_start") or [None]
    end_load = environment.get("load_average_at_end") or [None]
    cores = environment.get("cores") or 1
    if start_load[0] is not None and max(start_load[0], end_load[0] or 0) > cores:
        blocks.append(
            Block(
                "banner",
                f"BUSY MACHINE: the 1-minute load average was {start_load[0]} at the start and "
                f"{'not recorded' if end_load[0] is None else end_load[0]} at the end, on "
                f"{cores} cores; other work shared the CPU, so "
                "the figures (and most of all the latency tails) are lower than this machine "
                "can do. Rerun when it is idle, or with --repeat 3 to see the spread.",
            )
        )
    blocks.append(
        Block(
            "p",
            "Every absolute figure is from this machine and does not travel; the ratio in "
            f"brackets is to {ref_name}, the library's own cost with no storage behind it. "
            "Local servers are throwaway test servers sharing this machine's cores with the "
            "client: their figures are not production capacity. A protocol double measures "
            "the library's overhead, not a server's speed.",
        )
    )

    # Summary
    blocks.append(Block("h2", "Summary (on this machine)", anchor="summary"))
    headers = ("backend", "kind", "status", *(c[0] for c in SUMMARY_COLUMNS))
    blocks.append(Block("table", headers=headers, rows=tuple(summary_rows(results, backends))))
    blocks.append(
        Block(
            "p",
            "Throughput columns are events per second; each workload's operations per second "
            "are in the detail tables below. 'hot streams, useful' counts committed appends "
            "only (conflicts retried).",
        )
    )
    problems = [e for e in entries if e.get("status") != "ok" or not e.get("sound")]
    if problems:
        blocks.append(
            Block(
                "ul",
                items=tuple(
                    f"{e['name']}: {_status(e)}"
                    + (f": {e['error']}" if e.get("error") else "")
                    + "".join(f"; failed check {c}" for c in failed_checks(e)[:3])
                    for e in problems
                ),
            )
        )
    if "throughput" in plots:
        blocks.append(Block("figure", "Throughput by concurrency", svg=plots["throughput"]))

    # Recommendations
    blocks.append(Block("h2", "Recommendations by requirement profile", anchor="recommendations"))
    blocks.append(
        Block(
            "p",
            "A profile names the capabilities it requires and the figure that ranks; "
            "candidates within the noise of the best are a tie. No backend is named a winner "
            "outside a profile. Thresholds: "
            f"--rate {options.get('rate') or 'not set'}, "
            f"--p99-ms {options.get('p99_ms') or 'not set'}.",
        )
    )
    for verdict in verdicts:
        blocks.append(Block("h3", verdict.title))
        chosen = (
            "tie: " + ", ".join(verdict.chosen)
            if len(verdict.chosen) > 1
            else (verdict.chosen[0] if verdict.chosen else "none qualifies")
        )
        blocks.append(Block("p", f"{verdict.need} Choice here: **{chosen}**."))
        blocks.append(Block("ul", items=tuple(verdict.sentences)))
        if verdict.excluded:
            blocks.append(
                Block("ul", items=tuple(f"excluded {n}: {r}" for n, r in verdict.excluded))
            )

    # Workloads in detail
    blocks.append(Block("h2", "Workloads in detail (on this machine)", anchor="workloads"))
    if "latency" in plots:
        blocks.append(Block("figure", "Append latency distribution", svg=plots["latency"]))
    if "live" in plots:
        blocks.append(Block("figure", "Live delivery latency distribution", svg=plots["live"]))
    if "series" in plots:
        blocks.append(Block("figure", "Per-interval throughput", svg=plots["series"]))
    keys: list[tuple[str, str]] = []
    for entry in entries:
        for workload in entry.get("workloads", []):
            if workload["key"] not in [k for k, _ in keys]:
                keys.append((workload["key"], workload["label"]))
    for key, label in keys:
        blocks.append(Block("h3", f"{label} ({key})"))
        rows = []
        for entry in entries:
            workload = _workload(entry, key)
            if workload is None:
                continue
            f = workload["figures"]
            if workload.get("error") or workload.get("skipped"):
                reason = workload.get("error") or workload.get("skipped")
                rows.append((entry["name"], str(reason), "", "", "", "", "", "", "", ""))
                continue

            def num(name: str, f: dict[str, Any] = f) -> str:
                value = f.get(name)
                return "-" if value is None else _number(float(value))

            checks = workload.get("checks", [])
            passed = sum(1 for c in checks if c["passed"])
            rows.append(
                (
                    entry["name"],
                    num("events_per_s"),
                    num("ops_per_s"),
                    num("latency_ms.p50"),
                    num("latency_ms.p90"),
                    num("latency_ms.p99"),
                    num("latency_ms.p99.9"),
                    num("latency_ms.max"),
                    num("cpu_ms_per_1000_events"),
                    f"{passed}/{len(checks)}" + ("" if passed == len(checks) else " UNSOUND"),
                )
            )
        blocks.append(
            Block(
                "table",
                headers=(
                    "backend",
                    "events/s",
                    "ops/s",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                    "client CPU ms / 1,000 events",
                    "checks",
                ),
                rows=tuple(rows),
            )
        )
        extras = []
        for entry in entries:
            workload = _workload(entry, key)
            if workload is None:
                continue
            f = workload["figures"]
            if f.get("conflict_rate") is not None:
                extras.append(
                    f"{entry['name']}: conflict rate {f['conflict_rate']:.1%}, "
                    f"{_number(f.get('attempts_per_s') or 0)} attempts/s"
                )
            if f.get("billed_wru_per_event"):
                extras.append(
                    f"{entry['name']}: {f['billed_wru_per_event']:.2f} write units per event "
                    f"by AWS rules ({f.get('reported_wcu_per_event', 0):.2f} reported by the "
                    f"engine), {f.get('reported_rcu_per_event', 0):.3f} read units per event"
                )
            elif f.get("reported_rcu_per_event"):
                extras.append(
                    f"{entry['name']}: {f['reported_rcu_per_event']:.3f} read units per event "
                    "reported by the engine"
                )
        if extras:
            blocks.append(Block("ul", items=tuple(extras)))
    blocks.append(
        Block(
            "p",
            "Latency of read_all is one whole pass over the store. Client CPU is this "
            "process's CPU time; for in-process stores (memory://, SQLite) it includes the "
            "engine itself.",
        )
    )

    # Capabilities
    blocks.append(Block("h2", "Capabilities", anchor="capabilities"))
    names = []
    for entry in entries:
        for name in entry.get("capabilities") or {}:
            if name not in names:
                names.append(name)
    # One row per capability, one column per backend: the table stays as wide as the backends.
    cap_rows = [
        (
            name,
            *(
                _capability((entry.get("capabilities") or {}).get(name))
                if entry.get("capabilities")
                else "not known (did not run)"
                for entry in entries
            ),
        )
        for name in names
    ]
    blocks.append(
        Block("table", headers=("capability", *(e["name"] for e in entries)), rows=tuple(cap_rows))
    )
    verified = [e for e in entries if e.get("verify")]
    if verified:
        blocks.append(Block("h3", "Conformance suite (--verify)"))
        blocks.append(
            Block(
                "table",
                headers=("backend", "passed", "failed", "declared short (xfail)", "skipped"),
                rows=tuple(
                    (
                        e["name"],
                        str(e["verify"].get("passed", 0)),
                        str(e["verify"].get("failed", 0)),
                        str(e["verify"].get("xfailed", 0)),
                        str(e["verify"].get("skipped", 0)),
                    )
                    for e in verified
                ),
            )
        )

    # Capacity and cost
    blocks.append(Block("h2", "Capacity and cost", anchor="cost"))
    blocks.append(
        Block(
            "p",
            "Request-priced services are priced per million events from the capacity units "
            "measured in this run; instance-priced services get a monthly floor from a dated "
            "instance price, shown beside the rates measured here (which were not measured on "
            "that instance). Prices: shipped prices.toml unless --prices was given.",
        )
    )
    cost_rows = []
    used_prices: dict[str, dict[str, Any]] = {}
    for entry in entries:
        priced = costs(entry, prices)
        for price in priced["prices"]:
            used_prices[price["id"]] = price
        for label, value in priced["per_million"].items():
            cost_rows.append(
                (
                    entry["name"],
                    f"per million {label}",
                    f"${value['usd']:,.2f}",
                    f"{value['units_per_event']} units/event measured",
                )
            )
        if priced["floor"]:
            floor = priced["floor"]
            rate = _value(entry, "append_single.w4", "events_per_s")
            cost_rows.append(
                (
                    entry["name"],
                    f"monthly floor, {floor['instances']} x {floor['price']['service']}",
                    f"${floor['usd_per_month']:,.2f}/month",
                    f"measured here: {_number(rate)} events/s (4 writers)"
                    if rate
                    else "not measured here",
                )
            )
        size = entry.get("stored_bytes_per_event")
        if size:
            cost_rows.append((entry["name"], "stored bytes per event", f"{size:,.0f} B", ""))
    if cost_rows:
        blocks.append(
            Block("table", headers=("backend", "what", "figure", "basis"), rows=tuple(cost_rows))
        )
    if used_prices:
        blocks.append(
            Block(
                "ul",
                items=tuple(
                    f"{p['service']} ({p['region']}): "
                    + (
                        f"${p['usd_per_million']} per million {p['unit']}s"
                        if "usd_per_million" in p
                        else f"${p['usd']} per {p['unit']}"
                    )
                    + f", as of {p['as_of']}, {p['kind']}, {p['source']}"
                    for p in used_prices.values()
                ),
            )
        )

    # Per backend
    blocks.append(Block("h2", "Per backend", anchor="backends"))
    for entry in entries:
        facts = facts_for(backends, entry["scheme"])
        blocks.append(Block("h3", f"{entry['name']}: {_status(entry)}"))
        server = entry.get("server") or {}
        lines = [f"URL: {entry.get('url')}", f"kind: {entry['kind']}"]
        if entry.get("note"):
            lines.append(f"note: {entry['note']}")
        if server:
            lines.append(
                "server: "
                + ", ".join(
                    f"{k} {v}" if not isinstance(v, dict) else f"{k}: {_settings(v)}"
                    for k, v in server.items()
                )
            )
        if entry.get("error"):
            lines.append(f"error: {entry['error']}")
        lines += [f"failed check: {c}" for c in failed_checks(entry)]
        blocks.append(Block("ul", items=tuple(lines)))
        if facts.get("complexity"):
            blocks.append(Block("p", f"Implementation complexity: {facts['complexity']}."))
        derived = _derived_notes(entry, ref)
        pros = tuple(facts.get("pros", []))
        cons = tuple(facts.get("cons", []))
        if pros:
            blocks.append(Block("p", "Pros:"))
            blocks.append(Block("ul", items=pros))
        if cons:
            blocks.append(Block("p", "Cons:"))
            blocks.append(Block("ul", items=cons))
        ceilings = tuple(f"{c['text']} (source: {c['source']})" for c in facts.get("ceilings", []))
        if ceilings or derived:
            blocks.append(Block("p", "Capacity notes:"))
            blocks.append(Block("ul", items=ceilings + tuple(derived)))

    # Environment
    blocks.append(Block("h2", "Environment", anchor="environment"))
    blocks.append(
        Block(
            "table",
            headers=("field", "value"),
            rows=tuple(
                (k, _settings(v) if isinstance(v, dict) else str(v)) for k, v in environment.items()
            ),
        )
    )
    blocks.append(
        Block(
            "p",
            "Method, workloads and how to read this report: docs/compare.md in the "
            "eventstore-core repository. Re-render with `eventstore compare render "
            "results.json`; compare two runs with `eventstore compare diff A.json B.json`.",
        )
    )
    return blocks


def _capability(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return format_value(float(value), "bytes") if value >= 65536 else f"{value:,}"
    return str(value)


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _derived_notes(entry: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Capacity notes drawn from this run's own figures."""
    notes = []
    one = _value(entry, "append_single.w1", "events_per_s")
    four = _value(entry, "append_single.w4", "events_per_s")
    if one and four:
        notes.append(
            f"from 1 to 4 writers, single-event appends went from {_number(one)} to "
            f"{_number(four)} events/s on this machine ({four / one:.2f}x)"
        )
    conflict = _value(entry, "hot_streams", "conflict_rate")
    if conflict is not None:
        notes.append(f"{conflict:.1%} of contended attempts lost the race and were retried")
    cpu = _value(entry, "append_single.w1", "cpu_ms_per_1000_events")
    if cpu is not None:
        notes.append(f"client CPU: {cpu:.0f} ms per 1,000 single-event appends")
    size = entry.get("stored_bytes_per_event")
    if size:
        notes.append(f"{size:,.0f} stored bytes per event (about 200 bytes of JSON data each)")
    return notes


# -- Markdown ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown (figures are left to the HTML report)."""
    out: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append("#" * int(block.kind[1]) + " " + block.text)
        elif block.kind == "p":
            out.append(block.text)
        elif block.kind == "banner":
            out.append(f"> **{block.text}**")
        elif block.kind == "ul":
            out.append("\n".join(f"- {item}" for item in block.items))
        elif block.kind == "table":
            lines = ["| " + " | ".join(_md_cell(h) for h in block.headers) + " |"]
            lines.append("|" + "|".join("---" for _ in block.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif block.kind == "figure":
            out.append(f"*({block.text}: a plot in report.html)*")
        out.append("")
    return "\n".join(out)


# -- HTML ----------------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 0 24px 48px; color: #1d232a; }
h1 { margin-top: 28px; } h2 { margin-top: 40px; border-bottom: 2px solid #dde3ea; }
h3 { margin-top: 26px; }
table { border-collapse: collapse; margin: 10px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid #d4dae1; padding: 4px 8px; text-align: left; }
th { background: #eef2f6; } td.num { text-align: right; white-space: nowrap; }
tr:nth-child(even) td { background: #f8fafc; }
.banner { background: #fff3cd; border: 1px solid #e0b000; padding: 8px 12px; font-weight: 600; }
.unsound { color: #b00020; font-weight: 600; }
figure { margin: 14px 0; } figcaption { color: #55606b; font-size: 13px; }
figure svg { max-width: 100%; height: auto; }
nav a { margin-right: 14px; }
"""


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _td(text: str) -> str:
    classes = []
    if "UNSOUND" in text or text in ("error", "unreachable"):
        classes.append("unsound")
    if text[:1].isdigit() or text[:1] in "$-":
        classes.append("num")  # figures align right, words left
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}>{_inline(text)}</td>"


def to_html(blocks: list[Block], *, plots_note: str | None = None) -> str:
    """A self-contained HTML page (inline CSS and SVG; no script, no external request)."""
    body: list[str] = []
    anchors = [(b.anchor, b.text) for b in blocks if b.anchor]
    for index, block in enumerate(blocks):
        if block.kind in ("h1", "h2", "h3"):
            anchor = f' id="{block.anchor}"' if block.anchor else ""
            body.append(f"<{block.kind}{anchor}>{_inline(block.text)}</{block.kind}>")
            if index == 0:
                body.append(
                    "<nav>"
                    + "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in anchors)
                    + "</nav>"
                )
                if plots_note:
                    body.append(f'<p class="banner">{html.escape(plots_note)}</p>')
        elif block.kind == "p":
            body.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "banner":
            body.append(f'<p class="banner">{_inline(block.text)}</p>')
        elif block.kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif block.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "figure":
            body.append(
                f"<figure>{block.svg}<figcaption>{html.escape(block.text)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Event store comparison</title><style>{_STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


__all__ = ["SUMMARY_COLUMNS", "Block", "build", "ratio", "summary_rows", "to_html", "to_markdown"]
