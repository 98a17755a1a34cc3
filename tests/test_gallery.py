"""The gallery of broken adapters: the conformance suite catches every one, with the right test.

Each variant of ``tests/gallery/variants.py`` carries one realistic bug. The suite runs
against each in its own subprocess (``-x``, a short ``--eventstore-timeout``), several at
once, and must fail — first at the test the variant names, so that a run failing for an
unrelated reason cannot pass for a catch. The controls, the unbroken adapters, must pass
exactly the same runs: the selection of modules hides no miss.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gallery.runner import Outcome, run_all, table
from gallery.variants import VARIANTS, caught_as_expected


@pytest.fixture(scope="module")
def gallery(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome | None]:
    """Every variant's outcome, run in parallel subprocesses on first use."""
    postgres_url: str | None = None
    if any(v.base == "postgres" for v in VARIANTS.values()):
        postgres_url = request.getfixturevalue("postgres_url")
    outcomes = run_all(VARIANTS.values(), postgres_url, tmp_path_factory.mktemp("gallery"))
    report = Path(tmp_path_factory.getbasetemp()) / "gallery.md"
    report.write_text(table(outcomes) + "\n")
    print(f"\nthe gallery's table: {report}")
    return outcomes


@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if v.broken])
def test_the_suite_catches_the_broken_variant(
    name: str, gallery: dict[str, Outcome | None]
) -> None:
    """The suite fails against the variant, first at the test the variant names."""
    variant = VARIANTS[name]
    outcome = gallery[name]
    assert outcome is not None, f"{name}: not run"
    missed = f"{name} ({variant.bug}) was NOT caught (exit code {outcome.returncode}):\n"
    assert outcome.returncode == 1, missed + outcome.output[-3000:]
    assert outcome.failed, missed + outcome.output[-3000:]
    assert caught_as_expected(variant, outcome.failed[0]), (
        f"{name} was caught by {outcome.failed[0]}, not by {variant.caught_by}:\n"
        + outcome.output[-3000:]
    )


@pytest.mark.parametrize("name", [n for n, v in VARIANTS.items() if not v.broken])
def test_the_unbroken_adapter_passes_the_same_run(
    name: str, gallery: dict[str, Outcome | None]
) -> None:
    """The control: with the bug taken out, the very same run passes."""
    outcome = gallery[name]
    assert outcome is not None, f"{name}: not run"
    assert outcome.returncode == 0, outcome.output[-3000:]
