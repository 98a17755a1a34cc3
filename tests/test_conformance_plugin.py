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
