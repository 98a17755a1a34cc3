"""``eventstore compare``: the command, its ``render`` and ``diff`` subcommands.

Registered on the ``eventstore`` application by ``eventstore_core/cli/app.py``. The command
itself (no subcommand) runs a comparison; ``render`` rewrites the reports from a
``results.json``; ``diff`` compares two of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eventstore_core.compare import facts, outputs
from eventstore_core.compare.diff import DifferentMachinesError, diff
from eventstore_core.compare.report import SUMMARY_COLUMNS, summary_rows
from eventstore_core.compare.runner import Progress as RunnerProgress
from eventstore_core.compare.runner import RunOptions, run_comparison
from eventstore_core.compare.targets import (
    URLS_ENV_VAR,
    Target,
    default_targets,
    is_billed,
    url_target,
    urls_from,
)
from eventstore_core.compare.workloads import DEFAULT, QUICK, WorkloadResult

compare_app = typer.Typer(
    name="compare",
    help=(
        "Measure event stores on this machine through this library's API, check their "
        "guarantees, price them, and recommend one per requirement profile. Writes "
        "results.json, report.md and report.html into --out."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Bars(RunnerProgress):
    """One rich progress bar per backend, advancing per workload."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def target_started(self, target: Target, steps: int) -> None:
        if target.name not in self.tasks:
            self.tasks[target.name] = self.progress.add_task(target.name, total=steps)
        else:
            self.progress.reset(self.tasks[target.name], total=steps)

    def step_started(self, target: Target, label: str) -> None:
        self.progress.update(self.tasks[target.name], description=f"{target.name}: {label}")

    def step_done(self, target: Target, result: WorkloadResult) -> None:
        self.progress.advance(self.tasks[target.name])
        if not result.sound:
            failed = result.error or next(c.name for c in result.checks if not c.passed)
            self.progress.console.print(f"[red]{target.name}: {result.label}: {failed}[/red]")

    def target_done(self, target: Target, status: str) -> None:
        task = self.tasks.get(target.name)
        if task is None:
            task = self.tasks[target.name] = self.progress.add_task(target.name, total=1)
        self.progress.update(task, description=f"{target.name}: {status}")
        self.progress.update(task, completed=self.progress.tasks[task].total)


def _summary_table(results: dict[str, Any]) -> Table:
    table = Table(title="Summary, events/s on this machine (ratio to memory://)")
    table.add_column("backend")
    table.add_column("status")
    for header, *_ in SUMMARY_COLUMNS:
        table.add_column(header, justify="right")
    for name, _kind, status, *cells in summary_rows(results, facts.load_backends()):
        table.add_row(name, status, *cells)
    return table


@compare_app.callback(invoke_without_command=True)
def compare(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for results.json, report.md, report.html.")
    ] = Path("compare-report"),
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Also start throwaway local servers (PostgreSQL, DynamoDB Local, and the "
            "others whose launcher and pieces are installed), and stop them afterwards.",
        ),
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Short workloads: about 3 minutes with --local.")
    ] = False,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            help=f"Another store URL to measure (repeatable; also {URLS_ENV_VAR}).",
        ),
    ] = None,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, help="Run everything N times, rotating the order.")
    ] = 1,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Also run the conformance suite against each backend."),
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Events/s you need: backends below it are not recommended."),
    ] = None,
    p99_ms: Annotated[
        float | None,
        typer.Option("--p99-ms", help="p99 latency you accept (ms), for the recommendations."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every workload.")] = 42,
    scale: Annotated[
        float,
        typer.Option("--scale", min=0.001, help="Multiply every workload's duration by this."),
    ] = 1.0,
    prices: Annotated[
        Path | None, typer.Option("--prices", help="A prices file replacing the shipped one.")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="A rules file replacing the shipped one.")
    ] = None,
    allow_billed: Annotated[
        bool,
        typer.Option(
            "--allow-billed",
            help="Allow a billed cloud endpoint (DynamoDB without a loopback endpoint_url); "
            "needs --max-usd.",
        ),
    ] = False,
    max_usd: Annotated[
        float | None,
        typer.Option("--max-usd", help="Spending cap for billed endpoints, checked before."),
    ] = None,
) -> None:
    """Compare event stores on this machine (see ``eventstore compare --help``)."""
    if ctx.invoked_subcommand is not None:
        return
    err = Console(stderr=True, highlight=False)
    sizes = (
        (QUICK if quick else DEFAULT).scaled(scale)
        if scale != 1.0
        else (QUICK if quick else DEFAULT)
    )
    price_list = facts.load_prices(prices)
    targets = default_targets(local)
    for url in urls_from(backend or [], os.environ.get(URLS_ENV_VAR)):
        target = url_target(url)
        if is_billed(url) and not target.unavailable:
            from eventstore_core.compare.facts import estimate_billed_usd

            estimate = estimate_billed_usd(sizes, price_list) * repeat
            if not allow_billed:
                target.unavailable = (
                    "billed cloud endpoint: pass --allow-billed and --max-usd "
                    f"(this run could cost up to ${estimate:.2f})"
                )
            elif max_usd is None or estimate > max_usd:
                target.unavailable = (
                    f"estimated cost up to ${estimate:.2f} exceeds --max-usd {max_usd}"
                )
            else:
                err.print(f"{target.name}: billed endpoint, estimated at most ${estimate:.2f}")
        targets.append(target)
    options = RunOptions(
        sizes,
        preset="quick" if quick else "default",
        seed=seed,
        repeat=repeat,
        verify=verify,
        rate=rate,
        p99_ms=p99_ms,
        extra={"scale": scale, "local": local},
    )
    for target in targets:
        if target.unavailable:
            err.print(f"[yellow]{target.name}: not run: {target.unavailable}[/yellow]")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bars:

        def partial(results: dict[str, Any]) -> None:
            outputs.write(results, out, rules_path=rules, prices_path=prices, html=False)

        results = run_comparison(targets, options, _Bars(bars), on_update=partial)
    paths = outputs.write(results, out, rules_path=rules, prices_path=prices)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)  # a log or a pipe: no wrapping
    console.print(_summary_table(results))
    for verdict in results.get("recommendations", []):
        chosen = ", ".join(verdict["chosen"]) or "none qualifies"
        tie = " (tie)" if len(verdict["chosen"]) > 1 else ""
        console.print(f"{verdict['title']}: [bold]{chosen}[/bold]{tie}")
    console.print(
        f"wrote {', '.join(str(p) for p in paths.values())} in {results['wall_seconds']} s"
    )
    if results.get("interrupted"):
        err.print("[yellow]interrupted: the report is partial[/yellow]")
        raise typer.Exit(130)


@compare_app.command("render")
def render(
    results_file: Annotated[Path, typer.Argument(help="A results.json to render again.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default: beside the file).")
    ] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="Another prices file.")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="Another rules file.")] = None,
) -> None:
    """Write report.md and report.html again from a results.json (new rules or prices)."""
    try:
        results = outputs.load_results(results_file)
    except (OSError, ValueError) as error:
        Console(stderr=True).print(f"error: {error}", markup=False)
        raise typer.Exit(2) from None
    directory = out or results_file.parent
    paths = outputs.write(results, directory, rules_path=rules, prices_path=prices)
    if out is None:
        paths.pop("results", None)  # rewritten in place with the new recommendations
    Console(highlight=False).print(f"wrote {', '.join(str(p) for p in paths.values())}")


@compare_app.command("diff")
def diff_command(
    a: Annotated[Path, typer.Argument(help="The earlier results.json.")],
    b: Annotated[Path, typer.Argument(help="The later results.json.")],
    force: Annotated[
        bool, typer.Option("--force", help="Diff runs from different environments (banner).")
    ] = False,
) -> None:
    """Show how the summary figures changed from A to B (same machine only, unless forced)."""
    err = Console(stderr=True)
    try:
        text = diff(outputs.load_results(a), outputs.load_results(b), force=force)
    except DifferentMachinesError as error:
        err.print(f"refused: {error}", markup=False)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as error:
        err.print(f"error: {error}", markup=False)
        raise typer.Exit(2) from None
    typer.echo(text, nl=False)


__all__ = ["compare_app"]
