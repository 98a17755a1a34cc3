"""Write ``results.json``, ``report.md`` and ``report.html`` for a results document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eventstore_core.compare import facts, plots, report
from eventstore_core.compare.rules import Verdict, evaluate


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json``, refusing anything that is not one."""
    from eventstore_core.compare.runner import SCHEMA, SCHEMA_VERSION

    data: dict[str, Any] = json.loads(Path(path).read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not an eventstore compare results file")
    if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema version {data['schema_version']}; this version reads up to "
            f"{SCHEMA_VERSION}: upgrade eventstore-core"
        )
    return data


def recommend(
    results: dict[str, Any],
    *,
    rules_path: str | Path | None = None,
    backends_path: str | Path | None = None,
    prices_path: str | Path | None = None,
) -> list[Verdict]:
    """The verdicts of the (shipped or given) rules on ``results``."""
    options = results.get("options", {})
    return evaluate(
        results,
        facts.load_rules(rules_path),
        facts.load_backends(backends_path),
        facts.load_prices(prices_path),
        rate=options.get("rate"),
        p99_ms=options.get("p99_ms"),
    )


def write(
    results: dict[str, Any],
    out: str | Path,
    *,
    rules_path: str | Path | None = None,
    prices_path: str | Path | None = None,
    html: bool = True,
) -> dict[str, Path]:
    """Write the three files into ``out`` (created if missing); return their paths."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    backends = facts.load_backends()
    prices = facts.load_prices(prices_path)
    verdicts = recommend(results, rules_path=rules_path, prices_path=prices_path)
    results["recommendations"] = [verdict.to_json() for verdict in verdicts]
    paths = {"results": directory / "results.json", "markdown": directory / "report.md"}
    paths["results"].write_text(json.dumps(results, indent=1, default=str) + "\n")
    blocks = report.build(results, verdicts, backends, prices)
    paths["markdown"].write_text(report.to_markdown(blocks))
    if html:
        svgs = plots.render_plots(results)
        note = (
            None
            if svgs or not results.get("backends")
            else "No plots: install the compare extra (pip install 'eventstore-core[compare]', "
            "matplotlib) and run `eventstore compare render results.json`."
        )
        paths["html"] = directory / "report.html"
        paths["html"].write_text(
            report.to_html(report.build(results, verdicts, backends, prices, svgs), plots_note=note)
        )
    return paths


__all__ = ["load_results", "recommend", "write"]
