"""Wake-ups between processes: NOTIFY after commit (debounced) and a reconnecting LISTEN.

Why not ``NOTIFY`` inside the append transaction, as the ``eventsourcing`` library does: a
transaction that has notified takes a cluster-wide lock at commit to queue the notification,
which serialises every committing writer and halves append throughput (5,751 vs 2,914 events/s,
docs/backends/postgres.md). So an append commits first, and the :class:`Waker` then sends one
``pg_notify`` from its own connection, outside any append transaction, coalescing every commit
that happened while the previous notification was in flight or cooling down.

A notification carries nothing: it only tells subscribers "read again". They re-run the gated
``read_all`` query from their last position, so a lost or late notification costs latency and
never correctness; the core's fallback poll (``poll_interval``) covers the rest, including
commits whose rows were not yet visible behind the xmin gate when their notification arrived.

LISTEN needs a dedicated connection (a pooled one would be handed to other work and lose its
registration on reset). The :class:`Listener` owns that connection and reconnects with backoff
when it drops (server restart, network), then wakes every subscriber once, since notifications
sent while it was disconnected are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from eventstore_core.adapter import Backoff
from eventstore_postgres._errors import is_unavailable

log = logging.getLogger("eventstore_postgres")

#: How often the idle LISTEN connection is checked, so a silently dead one is replaced.
HEALTH_CHECK_INTERVAL = 5.0


class Waker:
    """Sends ``NOTIFY channel`` after commits, at most one in flight, spaced by ``debounce``."""

    def __init__(
        self,
        send: Callable[[], Awaitable[None]],
        debounce: float,
    ) -> None:
        self._send = send
        self._debounce = debounce
        self._requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Requests made, and requests covered by a wake-up that was sent: close() compares them
        # so that the last commits before a store closes still wake other processes.
        self._requests = 0
        self._covered = 0

    def request(self) -> None:
        """Ask for a wake-up to be sent soon; never blocks and never fails the caller."""
        self._requests += 1
        self._requested.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="eventstore-postgres-notify"
            )

    async def _run(self) -> None:
        while True:
            await self._requested.wait()
            self._requested.clear()
            covering = self._requests
            try:
                await self._send()
            except Exception as error:  # a missed wake-up only delays subscribers (fallback poll)
                log.debug("could not send the wake-up notification: %r", error)
            else:
                self._covered = covering
            if self._debounce > 0:
                await asyncio.sleep(self._debounce)

    async def close(self, flush_timeout: float = 1.0) -> None:
        """Stop the sender task, sending first a wake-up still owed for the last commits.

        Without this, the commits made just before a store closes (a batch job's last
        appends) would reach other processes' subscribers only at their fallback poll.
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._covered != self._requests:
            try:
                async with asyncio.timeout(flush_timeout):
                    await self._send()
            except Exception as error:  # best effort: subscribers still have their poll
                log.debug("could not send the last wake-up notification: %r", error)
            else:
                self._covered = self._requests


def _setter(event: asyncio.Event) -> Callable[..., None]:
    def set_event(*_: object) -> None:
        event.set()

    return set_event


class Listener:
    """Keeps one connection LISTENing on ``channel``, reconnecting whenever it drops."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        channel: str,
        on_wakeup: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._on_wakeup = on_wakeup
        self.connected = asyncio.Event()
        #: How many times a LISTEN connection was established (tests observe reconnects).
        self.connections_made = 0

    def _on_notification(self, *_: object) -> None:
        self._on_wakeup()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with backoff whenever the connection drops."""
        backoff = Backoff(None, base=0.025, cap=2.0, jitter=False)
        while True:
            conn: Any = None
            try:
                conn = await self._connect()
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(self._channel, self._on_notification)
                self.connections_made += 1
                self.connected.set()
                backoff.reset()
                # Commits made while no LISTEN was active sent notifications nobody heard:
                # wake every subscriber once so it re-reads.
                self._on_wakeup()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEALTH_CHECK_INTERVAL):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(HEALTH_CHECK_INTERVAL):
                            await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not is_unavailable(error):
                    log.warning("LISTEN connection failed: %r", error)
                log.debug("LISTEN connection lost (%r); reconnecting", error)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await backoff.wait()
