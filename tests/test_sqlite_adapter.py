"""SQLite-specific behaviour the conformance suite cannot see."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import eventstore_core as es


async def test_a_file_that_is_not_a_database_gives_a_clear_error_and_no_stray_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a SQLite file" * 100)
    before = set(threading.enumerate())
    with pytest.raises(es.EventStoreError, match="is not a SQLite database"):
        async with es.connect(f"sqlite:///{path}"):
            pass
    # aiosqlite runs a thread per connection: one left open would keep the process alive.
    # (Executor worker threads that other code in the session starts lazily do not count.)
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
