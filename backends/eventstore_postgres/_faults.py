"""Connecting under cancellation without leaving asyncpg's futures behind.

asyncpg cancelled in the middle of its connection handshake leaves one of its internal futures
to fail later with "unexpected connection_lost() call", with nobody to retrieve the exception:
asyncio then reports "Future exception was never retrieved" from the garbage collector — noise
in the user's logs every time a subscription (its LISTEN connection) or an append (a pool
connection) is cancelled at that moment. So a connection attempt is never cancelled half-way:
the caller's cancellation waits for the attempt to end (it is bounded by ``connect_timeout``,
and takes a few milliseconds on a healthy server), hands a connection it made to ``orphan``
(which closes it or keeps it), and then propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["connect_whole"]


async def connect_whole(
    connect: Callable[[], Awaitable[Any]], orphan: Callable[[Any], None]
) -> Any:
    """``await connect()``, letting it finish even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(connect())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            # asyncio.wait, unlike awaiting the task, does not cancel it when we are
            # cancelled again; then the task is disposed of when it ends.
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.add_done_callback(lambda done: _dispose(done, orphan))
                raise
        _dispose(task, orphan)
        raise


def _dispose(task: asyncio.Future[Any], orphan: Callable[[Any], None]) -> None:
    if task.cancelled():
        return
    if task.exception() is None:  # retrieving it is the point: no "never retrieved" report
        orphan(task.result())
