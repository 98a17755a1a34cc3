"""The gallery's PostgreSQL variant (its own module: only its run imports asyncpg)."""

from __future__ import annotations

import dataclasses

from eventstore_postgres import PostgresEventStore
from eventstore_postgres._sql import GATE, Statements

from eventstore_core.adapter import ParsedUrl, StoreOptions


class PostgresWithoutGate(PostgresEventStore):
    """PostgreSQL without its snapshot gate: ``read_all`` returns rows of committed
    transactions past a transaction still open with smaller positions."""

    def __init__(self, url: ParsedUrl, options: StoreOptions) -> None:
        super().__init__(url, options)
        self._sql = Statements(
            **{
                field.name: getattr(self._sql, field.name).replace(GATE, "TRUE")
                for field in dataclasses.fields(Statements)
            }
        )
