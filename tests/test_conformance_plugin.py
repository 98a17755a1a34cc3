"""The conformance plugin itself, run as an outside adapter author would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UNDER_DECLARING = '''
"""Loaded with -p: the memory backend declares less than it delivers."""
import dataclasses

from eventstore_memory import MemoryEventStore

MemoryEventStore.capabilities = dataclasses.replace(
    MemoryEventStore.capabilities, idempotency="none"
)
'''


def _run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "ignore", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_plugin_collects_the_suite_from_an_empty_directory(tmp_path: Path) -> None:
    """``pytest -p eventstore_conformance --eventstore-url URL`` needs no file of one's own."""
    result = _run_pytest(
        tmp_path,
        "-p",
        "eventstore_conformance",
        "--eventstore-url",
        "memory://plugin-check",
        "-q",
        "-k",
        "read_stream or capabilities or processes",
        "-rs",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    # The process tests skip for memory://, with the structural reason.
    assert "shared_across_processes is False" in result.stdout


def test_without_a_url_the_suite_fails_loudly(tmp_path: Path) -> None:
    """Collecting the suite without a store fails rather than passing vacuously."""
    from eventstore_conformance import SUITE_DIR

    result = _run_pytest(
        tmp_path,
        "-p",
        "eventstore_conformance",
        str(SUITE_DIR / "test_read_stream.py"),
        "-q",
        "-k",
        "missing_stream",
    )
    assert result.returncode != 0
    assert "--eventstore-url" in result.stdout


@pytest.mark.slow
def test_a_backend_that_under_declares_fails_the_suite(tmp_path: Path) -> None:
    """A capability declared missing but actually delivered is an XPASS(strict): a failure."""
    (tmp_path / "underdeclare.py").write_text(UNDER_DECLARING)
    result = _run_pytest(
        tmp_path,
        "-p",
        "underdeclare",
        "-p",
        "eventstore_conformance",
        "--eventstore-url",
        "memory://plugin-check",
        "-q",
        "-k",
        "retrying_the_same_batch_returns_the_original_result",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "XPASS(strict)" in result.stdout
    assert "idempotency is 'none'" in result.stdout


SHORTFALL_CONFTEST = """
import pytest

from eventstore_conformance import never, notyet


@pytest.fixture(scope="session")
def eventstore_shortfalls():
    return [
        # A real shortfall of the store under test (it declares idempotency="none" below,
        # but the test checked here is not gated by it, so it is declared as a shortfall).
        never(
            "test_the_first_event_of_a_stream_has_version_one",
            reason="this demo store starts at 1 anyway",
        ),
        notyet("test_no_such_test_*", reason="left over from an older version"),
    ]
"""


def test_declared_shortfalls_run_strict_and_stale_ones_are_reported(tmp_path: Path) -> None:
    """A declared shortfall is a strict xfail (a test that passes anyway fails the run), and
    the summary lists every declaration, flagging those that cover no test."""
    # An adapter's declarations, loaded as a plugin module beside the suite (in a project
    # that re-exports the suite, the same fixture goes in its conftest.py).
    (tmp_path / "my_shortfalls.py").write_text(SHORTFALL_CONFTEST)
    result = _run_pytest(
        tmp_path,
        "-p",
        "eventstore_conformance",
        "-p",
        "my_shortfalls",
        "--eventstore-url",
        "memory://plugin-shortfalls",
        "-q",
        "-k",
        "first_event_of_a_stream",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "XPASS(strict)" in output or "1 failed" in output, output
    assert "declared shortfalls" in output
    assert "never: test_the_first_event_of_a_stream_has_version_one" in output
    assert "STALE" in output


def test_a_shortfall_needs_a_reason() -> None:
    from eventstore_conformance import notimpl

    with pytest.raises(ValueError, match="reason"):
        notimpl("test_x", reason=" ")
