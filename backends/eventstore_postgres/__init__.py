"""The PostgreSQL backend of eventstore-core (``postgresql://`` and ``postgres://`` URLs).

Install with ``pip install "eventstore-core[postgres]"``; see docs/backends/postgres.md.
"""

from eventstore_postgres.store import PostgresEventStore, PostgresOptions

__all__ = ["PostgresEventStore", "PostgresOptions"]
