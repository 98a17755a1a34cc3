"""Reads through kurrentdbclient that always end, even when the client reconnects meanwhile.

kurrentdbclient 1.3.5's ``AsyncReadResponse`` moves the gRPC stream's messages into a queue
from a task of its own, started when the response is made. When any call fails with
``UNAVAILABLE`` (a server restart), the client's ``autoreconnect`` closes the old connection,
and that stops every response still open on it by cancelling its task. A task cancelled
before its first step never runs its ``except`` clause, the one that puts the end-of-stream
marker in the queue: the reader then waits on the queue for good. The window is one turn of
the event loop, between the response's creation and its task's first step, and concurrent
appends during a restart hit it (seen: an append's read-back hung until the test's
deadline; reproduced deterministically by reconnecting right after ``read_all``).

:func:`guarded` closes that window for the responses the adapter holds: when the task ends
cancelled with nothing queued, the marker is queued in its place, so the reader ends with the
client's own ``CancelledByClientError`` (a ``BackendUnavailableError`` here), exactly as when
the task was cancelled after it started. :func:`read_events` reads a whole response so.
Subscriptions are made and confirmed inside the client, before a response is handed out:
the store bounds their start with its request timeout instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from kurrentdbclient import AsyncKurrentDBClient
from kurrentdbclient import RecordedEvent as ClientRecordedEvent

__all__ = ["guarded", "last_event", "read_events"]

_R = TypeVar("_R")


def guarded(response: _R) -> _R:
    """Make ``response`` end when the client stops it before its reading task ever ran.

    A client version without these parts is left as it is (a newer one may have fixed it).
    """
    task = getattr(response, "_read_resp_stream_worker_task", None)
    queue = getattr(response, "_read_resp_queue", None)
    if isinstance(task, asyncio.Task) and isinstance(queue, asyncio.Queue):

        def ended(task: asyncio.Task[Any]) -> None:
            # Cancelled after its first step, the task queued the marker itself, and the
            # reader may have taken it already: one more is never read, and does no harm.
            if task.cancelled() and queue.empty():
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

        task.add_done_callback(ended)
    return response


async def read_events(response: Any) -> list[ClientRecordedEvent]:
    """Every event of a read response (``read_all`` or ``read_stream``), guarded."""
    return [event async for event in guarded(response)]


async def last_event(
    client: AsyncKurrentDBClient,
    stream: str,
    timeout: float,  # noqa: ASYNC109
) -> ClientRecordedEvent | None:
    """The last event of ``stream``, or None when it has none.

    What ``client.get_stream(stream, backwards=True, limit=1)`` answers, through a guarded
    response (``get_stream`` reads through one of its own). Raises the client's
    ``NotFoundError`` for a stream that does not exist, as ``get_stream`` does.
    """
    response = await client.read_stream(stream, backwards=True, limit=1, timeout=timeout)
    found = await read_events(response)
    return found[0] if found else None
