"""Making the xid gate visible: who holds the readers back, and for how long.

``read_all`` returns only rows whose transaction id is below the oldest transaction still
running anywhere in the cluster (see the adapter's module docstring). The price: a write
transaction left open — in this store, another schema, another database, a psql session —
holds every reader at its xid until it ends, and subscriptions look stuck. That is silent
unless somebody says so; this module does. While subscriptions are open it checks, every
``interval`` seconds, whether committed events wait behind the gate, and if so which backend
has the oldest transaction id; once that transaction has been open for ``threshold`` seconds,
it logs one warning naming it (pid, application, user, database, state, age and query, from
``pg_stat_activity``). docs/backends/postgres.md says what to do about it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from eventstore_postgres._errors import is_unavailable

__all__ = ["GateMonitor"]

log = logging.getLogger("eventstore_postgres")

_BLOCKER = """
    SELECT a.pid, a.application_name, a.usename, a.datname, a.state,
           extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS open_for,
           left(a.query, 200) AS query, a.xact_start
    FROM pg_stat_activity a
    WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
    ORDER BY age(a.backend_xid) DESC
    LIMIT 1
"""


class GateMonitor:
    """Warns when the xid gate has held readers back longer than ``threshold`` seconds."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[list[Any]]],
        events_table: str,
        schema: str,
        threshold: float,
    ) -> None:
        self._fetch = fetch
        self._schema = schema
        self._threshold = threshold
        self.interval = max(0.05, min(threshold / 2, 2.0))
        # Are committed events waiting behind the gate? (The primary key is (tx_id, seq).)
        self._held = (
            f"SELECT EXISTS (SELECT 1 FROM {events_table} "
            "WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()))"
        )
        self._warned: set[tuple[int, object]] = set()

    async def run(self) -> None:
        """Check until cancelled; a failed check is skipped (the next one tries again)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception as error:
                if not is_unavailable(error):
                    log.debug("xid gate check failed: %r", error)

    async def check(self) -> None:
        """One check: log a warning if a transaction open too long holds the readers."""
        held = await self._fetch(self._held)
        if not held or not held[0][0]:
            return
        rows = await self._fetch(_BLOCKER)
        if not rows:
            return
        pid, app, user, database, state, open_for, query, started = rows[0]
        if open_for is None or open_for < self._threshold or (pid, started) in self._warned:
            return
        self._warned.add((pid, started))
        log.warning(
            "PostgreSQL's xid gate is holding the readers of schema %r back: committed events "
            "wait behind the transaction of backend pid %s (application %r, user %r, database "
            "%r, state %r, open for %.1f s, last query %r). Every reader waits until it ends; "
            "end it (commit, roll back, or pg_terminate_backend(%s)) and see "
            "docs/backends/postgres.md, 'Long transactions and the xid gate'.",
            self._schema,
            pid,
            app,
            user,
            database,
            state,
            open_for,
            query,
            pid,
        )
