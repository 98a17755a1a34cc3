"""The conformance plugin itself, run as an outside adapter author would run it."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
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


def _one_usage_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """pytest stopped before running anything, with one ERROR line that says why."""
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert fragment in errors[0]
    assert " passed" not in output
    assert " failed" not in output


def test_without_a_url_in_an_empty_directory_the_plugin_says_how_to_give_one(
    tmp_path: Path,
) -> None:
    """Not "no tests ran" (exit 5): the plugin was asked for, so the URL was forgotten."""
    result = _run_pytest(tmp_path, "-p", "eventstore_conformance", "-q")
    _one_usage_error(result, "pass --eventstore-url URL, for example")


def test_without_a_url_the_suite_fails_once_not_per_test(tmp_path: Path) -> None:
    """Collecting the suite without a store stops at once rather than failing every test."""
    from eventstore_conformance import SUITE_DIR

    result = _run_pytest(
        tmp_path, "-p", "eventstore_conformance", str(SUITE_DIR / "test_read_stream.py"), "-q"
    )
    _one_usage_error(result, "--eventstore-url")


def test_an_unknown_scheme_is_one_error_before_any_test(tmp_path: Path) -> None:
    result = _run_pytest(
        tmp_path, "-p", "eventstore_conformance", "--eventstore-url", "nosuch://x", "-q"
    )
    _one_usage_error(result, "no backend is registered for URL scheme 'nosuch'")


def test_an_invalid_option_is_one_error_before_any_test(tmp_path: Path) -> None:
    url = "memory://plugin-check?page_size=0"
    result = _run_pytest(tmp_path, "-p", "eventstore_conformance", "--eventstore-url", url)
    _one_usage_error(result, "page_size")


def test_an_unnamed_memory_store_is_refused_with_the_named_form(tmp_path: Path) -> None:
    """Every connect of memory:// is a new empty store: the suite would fail like a bug."""
    result = _run_pytest(
        tmp_path, "-p", "eventstore_conformance", "--eventstore-url", "memory://", "-q"
    )
    _one_usage_error(result, "memory://conformance")


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


def test_without_a_hold_commit_hook_the_summary_says_the_out_of_order_test_did_not_run(
    tmp_path: Path,
) -> None:
    """No ``eventstore_hold_commit`` hook: the test skips, and the summary says NOT RUN."""
    result = _run_pytest(
        tmp_path,
        "-p",
        "eventstore_conformance",
        "--eventstore-url",
        "memory://plugin-hold",
        "-q",
        "-k",
        "skips_events_committed_after_later_ones",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "out-of-order commits" in result.stdout
    assert "NOT RUN: no eventstore_hold_commit hook" in result.stdout


LEAKY_TEST = """
import threading


def test_leaves_a_thread_behind():
    threading.Thread(target=threading.Event().wait, name="leaked-worker").start()
"""


def test_the_exit_guard_ends_a_process_a_leaked_thread_would_keep_alive(tmp_path: Path) -> None:
    """A non-daemon thread left running does not keep pytest from exiting: it is named, and
    the process ends with pytest's status a few seconds after the session."""
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    started = time.monotonic()
    result = _run_pytest(
        tmp_path,
        "-p",
        "eventstore_conformance",
        "--eventstore-url",
        "memory://x",
        "-q",
        str(tmp_path / "test_leaky.py"),
    )
    assert time.monotonic() - started < 60
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "still running after the session (leaked-worker)" in result.stderr


async def test_stopping_the_fault_proxy_with_open_connections_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its handlers end when their connections are cut, not by a cancel that asyncio's
    start_server callback would log (with a traceback formatted on the proxy's thread)."""
    from eventstore_conformance.faults import FaultProxy

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = FaultProxy("127.0.0.1", port).start()
    connections = [await asyncio.open_connection(proxy.host, proxy.port) for _ in range(3)]
    for reader, writer in connections:
        writer.write(b"ping")
        await writer.drain()
        assert await reader.readexactly(4) == b"ping"
    with caplog.at_level(logging.WARNING):
        await asyncio.to_thread(proxy.stop)
    for reader, writer in connections:
        assert await reader.read() == b""  # cut by the proxy
        writer.close()
    server.close()
    await server.wait_closed()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
