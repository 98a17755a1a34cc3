"""SQLite-specific behaviour the conformance suite cannot see."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import eventstore_core as es


def _store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("eventstore-sqlite")]


async def test_a_file_that_is_not_a_database_gives_a_clear_error_and_no_stray_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a SQLite file" * 100)
    before = set(threading.enumerate())
    with pytest.raises(es.EventStoreError, match="is not a SQLite database"):
        async with es.connect(f"sqlite:///{path}"):
            pass
    # The store runs a thread per connection: close() (and a failed open) ends them before
    # returning. (Executor worker threads that other code starts lazily do not count.)
    stray = [
        thread
        for thread in threading.enumerate()
        if thread not in before and not thread.name.startswith(("asyncio_", "ThreadPoolExecutor"))
    ]
    assert stray == []


async def test_reading_before_setup_says_to_run_setup(tmp_path: Path) -> None:
    async with es.connect(f"sqlite:///{tmp_path / 'empty.db'}") as store:
        with pytest.raises(es.EventStoreError, match=r"run 'await store.setup\(\)' first"):
            await store.stream_version("Order-1")


async def test_relative_and_absolute_paths_resolve_as_sqlalchemy_does(tmp_path: Path) -> None:
    relative = es.connect("sqlite:///./data/events.db")
    absolute = es.connect(f"sqlite:///{tmp_path}/events.db")
    assert str(relative.path) == "data/events.db"  # type: ignore[attr-defined]
    assert str(absolute.path) == f"{tmp_path}/events.db"  # type: ignore[attr-defined]


async def test_a_missing_directory_is_a_configuration_error_and_leaves_no_thread(
    tmp_path: Path,
) -> None:
    with pytest.raises(es.ConfigurationError, match="does not exist"):
        async with es.connect(f"sqlite:///{tmp_path}/missing/dir/x.db"):
            pass
    assert _store_threads() == []


def test_the_cli_on_a_missing_directory_says_so_in_one_line_without_a_traceback(
    tmp_path: Path,
) -> None:
    cli = (sys.executable, "-m", "eventstore_core.cli")
    url = f"sqlite:///{tmp_path}/missing/dir/x.db"
    # A write would create the file: the missing directory is a configuration error (3).
    append = subprocess.run(
        [*cli, "append", "X-1", "Happened", "{}", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert append.returncode == 3, append.stderr
    assert "configuration error" in append.stderr
    # A read never creates it, and says the store is not there.
    read = subprocess.run(
        [*cli, "read", "X-1", "--url", url], capture_output=True, text=True, timeout=60
    )
    assert read.returncode != 0
    for done in (append, read):
        assert done.stderr.strip().count("\n") == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "Exception in thread" not in done.stderr
    assert not (tmp_path / "missing").exists()


async def test_closing_ends_the_connection_threads_before_it_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    for _ in range(20):
        async with es.connect(url) as store:
            await store.setup()
            assert len(_store_threads()) == 3  # the writer, the reader, the checkpointer
        assert _store_threads() == []


async def test_a_file_created_with_autoincrement_positions_keeps_working(tmp_path: Path) -> None:
    # Files made before positions became plain rowids declare AUTOINCREMENT; setup() leaves
    # their table as it is, and appends, reads and positions behave the same.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, "
            "stream_id TEXT NOT NULL, version INTEGER NOT NULL, event_id BLOB NOT NULL UNIQUE, "
            "type TEXT NOT NULL, category TEXT NOT NULL, data BLOB NOT NULL, "
            "metadata BLOB NOT NULL, correlation_id TEXT, causation_id TEXT, "
            "recorded_at INTEGER NOT NULL, batch_first INTEGER NOT NULL, "
            "batch_last INTEGER NOT NULL, UNIQUE (stream_id, version))"
        )
    conn.close()
    async with es.connect(f"sqlite:///{path}") as store:
        await store.setup()
        first = await store.append("Old-1", [es.NewEvent("A", {}), es.NewEvent("B", {})])
        second = await store.append("Old-2", [es.NewEvent("C", {})])
        assert (first.position, second.position) == (es.Position.of(2), es.Position.of(3))
        assert [e.type async for e in store.read_all()] == ["A", "B", "C"]
