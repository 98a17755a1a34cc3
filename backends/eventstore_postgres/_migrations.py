"""Numbered schema migrations, applied by ``setup()`` under an advisory lock.

Every migration runs in its own transaction and records its number in ``schema_migrations``, so
``setup()`` is idempotent and resumes where an interrupted run stopped. Several processes may run
``setup()`` at the same moment (every replica of a service on boot): a session-level
``pg_advisory_lock`` keyed on the schema name serialises them, so the second process waits, then
finds every migration applied and does nothing. ``CREATE ... IF NOT EXISTS`` alone is not enough:
two concurrent ``CREATE TABLE IF NOT EXISTS`` can both pass the existence check and one then fails
on the catalog's unique index.

Migrations are append-only: never edit a released one, add the next number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: ``pg_advisory_lock(classid, objid)``: the first key is a constant that marks "eventstore-core
#: migrations" (the ASCII of "ESmg"), the second is ``hashtext(schema)``, so stores in different
#: schemas of one database migrate independently.
_LOCK_CLASS = 0x45536D67

# Each migration is a list of statements with ``{s}`` standing for the quoted schema name.
MIGRATIONS: Sequence[tuple[int, str, Sequence[str]]] = (
    (
        1,
        "events, stream heads, snapshots, checkpoints",
        (
            # One row per stream: its current version. The append statement upserts this row
            # first, so the row lock serialises writers of one stream (and only of that stream)
            # and the expected-version check happens on a value nobody else can change meanwhile.
            """
            CREATE TABLE {s}.streams (
                stream_id text PRIMARY KEY,
                version bigint NOT NULL CHECK (version >= 0)
            )
            """,
            # The global position is the pair (tx_id, seq): see the module docstring of
            # eventstore_postgres.store for why a bigserial alone skips events.
            # tx_id is pg_current_xact_id() of the writing transaction (a 64-bit xid8 that never
            # wraps); seq orders the events of one transaction (and is unique overall).
            """
            CREATE TABLE {s}.events (
                tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                seq bigint GENERATED ALWAYS AS IDENTITY,
                stream_id text NOT NULL,
                version bigint NOT NULL,
                event_id uuid NOT NULL,
                type text NOT NULL,
                category text GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
                data jsonb NOT NULL,
                metadata jsonb NOT NULL,
                correlation_id text,
                causation_id text,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT events_position_pkey PRIMARY KEY (tx_id, seq),
                CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
                CONSTRAINT events_event_id_key UNIQUE (event_id)
            )
            """,
            # Filtered read_all: one index per filter kind, ordered by position inside each
            # value, so "type = X AND position > P ORDER BY position LIMIT n" is an index range
            # scan. Several values are read with one LATERAL range scan per value.
            "CREATE INDEX events_type_position_idx ON {s}.events (type, tx_id, seq)",
            "CREATE INDEX events_category_position_idx ON {s}.events (category, tx_id, seq)",
            # Only the latest snapshot of a stream is kept.
            """
            CREATE TABLE {s}.snapshots (
                stream_id text PRIMARY KEY,
                version bigint NOT NULL,
                type text NOT NULL,
                data jsonb NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE {s}.checkpoints (
                name text PRIMARY KEY,
                position text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1][0]


async def migrate(conn: Any, schema: str, quoted_schema: str) -> list[int]:
    """Apply the missing migrations on ``conn`` (an asyncpg connection); return their numbers.

    Holds ``pg_advisory_lock`` for the whole run; the lock is released in ``finally`` and would
    also go with the session if the process died.
    """
    await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _LOCK_CLASS, schema)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema}")
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {quoted_schema}.schema_migrations (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        applied = {
            row[0]
            for row in await conn.fetch(f"SELECT version FROM {quoted_schema}.schema_migrations")
        }
        done: list[int] = []
        for version, description, statements in MIGRATIONS:
            if version in applied:
                continue
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement.format(s=quoted_schema))
                await conn.execute(
                    f"INSERT INTO {quoted_schema}.schema_migrations (version, description)"
                    " VALUES ($1, $2)",
                    version,
                    description,
                )
            done.append(version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, schema)
