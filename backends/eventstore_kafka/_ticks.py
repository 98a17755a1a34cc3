"""Ticks: records that are no append, written so that an idle partition shows a later stamp.

With several partitions a record is judged only once every other partition shows a record
with a later key stamp (``_arbiter``: the judging order). A busy partition shows one soon
enough; an idle one never would, so whoever waits writes it a *tick*, a record of no events
whose stamp is just after the waiting record's. Ticks are applied as soon as they are fetched
(judging them changes nothing), so they never wait themselves: no wait chain, no cycle.

Who ticks, and when: the instance whose own append waits, at once (its caller is waiting);
any other instance once a record has waited ``tick_after`` seconds (its writer may have died
after sending). Ticks are coalesced per partition: one tick carries the highest stamp asked
for, and none is sent once the partition's floor has passed it by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping

from eventstore_core.adapter import BackendUnavailableError

__all__ = ["TICK_AFTER", "Ticker"]

log = logging.getLogger("eventstore_kafka")

TICK_AFTER = 0.5
"""Seconds a record of another instance may wait before this instance ticks for it."""
RETRY_AFTER = 0.1
"""Seconds before a tick that could not be sent is tried again."""


class Ticker:
    """Sends the ticks that waiting records need (see the module docstring)."""

    def __init__(
        self,
        send: Callable[[int, int], Awaitable[None]],
        floor_of: Callable[[int], int],
        tick_after: float = TICK_AFTER,
    ) -> None:
        """``send(partition, stamp)`` writes one tick; ``floor_of(partition)`` is the
        partition's floor (``PartitionLog.floor``)."""
        self._send = send
        self._floor_of = floor_of
        self._tick_after = tick_after
        self._needs: dict[int, int] = {}
        self._due = math.inf
        self._waiting: dict[int, tuple[int, float]] = {}
        self._ticked: dict[int, int] = {}
        """Per partition, the highest stamp a written tick carries: it is in the log and will
        be fetched, so a lower one is never sent again."""
        self._wake = asyncio.Event()
        self._sending: dict[int, tuple[int, float]] = {}
        """Per partition, the stamp of the tick being sent and since when (diagnostics)."""
        self._running = False
        #: Ticks sent (for tests and measurements).
        self.sent = 0

    def need(self, partition: int, offset: int, blockers: Mapping[int, int], urgent: bool) -> None:
        """The record at ``offset`` of ``partition`` waits for ``blockers`` (partition ->
        stamp a tick must carry); ``urgent`` when this instance wrote it."""
        now = asyncio.get_running_loop().time()
        seen = self._waiting.get(partition)
        if seen is None or seen[0] != offset:
            seen = self._waiting[partition] = (offset, now)
        due = now if urgent else seen[1] + self._tick_after
        for other, stamp in blockers.items():
            if stamp > self._needs.get(other, -1):
                self._needs[other] = stamp
        if due < self._due:
            self._due = due
            self._wake.set()

    async def run(self) -> None:
        """Send ticks as they fall due, until cancelled (a task of the store's background)."""
        loop = asyncio.get_running_loop()
        self._running = True
        try:
            await self._loop(loop)
        finally:
            self._running = False

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            delay = self._due - loop.time()
            if not self._needs or delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if not self._needs else delay):
                        await self._wake.wait()
                continue
            needs = {
                p: stamp
                for p, stamp in self._needs.items()
                if self._floor_of(p) < stamp and self._ticked.get(p, -1) < stamp
            }
            self._needs.clear()
            self._due = math.inf
            if needs:
                await asyncio.gather(*(self._tick(p, stamp) for p, stamp in needs.items()))

    async def _tick(self, partition: int, stamp: int) -> None:
        self._sending[partition] = (stamp, asyncio.get_running_loop().time())
        try:
            await self._send(partition, stamp)
        except BaseException as error:
            # Not sent (the broker is away, or the background task is being restarted, which
            # cancels this): the need stays, and is tried again shortly. A waiting record is
            # not looked at again until something moves, and nothing would move without it.
            self._again(partition, stamp)
            if not isinstance(error, BackendUnavailableError):
                raise
            log.debug("tick to partition %d failed: %s", partition, error)
            return
        finally:
            self._sending.pop(partition, None)
        self.sent += 1
        self._ticked[partition] = max(stamp, self._ticked.get(partition, -1))

    def _again(self, partition: int, stamp: int) -> None:
        if stamp > self._needs.get(partition, -1):
            self._needs[partition] = stamp
        due = asyncio.get_running_loop().time() + RETRY_AFTER
        if due < self._due:
            self._due = due
            self._wake.set()

    def describe(self) -> str:
        """The ticks asked for, being sent and written, for an error message."""
        now = asyncio.get_running_loop().time()
        needs = ", ".join(f"{p}: {stamp}" for p, stamp in sorted(self._needs.items()))
        due = "" if math.isinf(self._due) else f" in {self._due - now:.3f}s"
        sending = ", ".join(
            f"{p}: {stamp} for {now - since:.1f}s"
            for p, (stamp, since) in sorted(self._sending.items())
        )
        ticked = ", ".join(f"{p}: {stamp}" for p, stamp in sorted(self._ticked.items()))
        state = "running" if self._running else "not running"
        return (
            f"ticker {state}: ticks due{due} {{{needs}}}, sending {{{sending}}}, "
            f"written {{{ticked}}}, {self.sent} sent"
        )

    def reset(self) -> None:
        """Forget everything (the store closed: a reopened one replays from scratch)."""
        self._needs.clear()
        self._waiting.clear()
        self._ticked.clear()
        self._due = math.inf
