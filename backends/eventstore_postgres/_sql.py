"""The SQL of the PostgreSQL adapter, built once per schema.

Why the statements look the way they do:

* **One round trip per append.** The append is a single statement (so a single implicit
  transaction): a data-modifying CTE upserts the stream head under the expected-version
  condition, and the events are inserted from ``unnest`` of parallel arrays with ``RETURNING``.
  When the condition fails the CTE returns no row, so nothing is inserted and the statement
  returns zero rows: the caller then reads the actual version (and the event ids, for the
  idempotency rule) in a second statement, only on that cold path.
* **The read gate.** ``read_all`` returns only rows with ``tx_id < pg_snapshot_xmin(...)``: every
  transaction whose xid is below the snapshot's xmin has finished, so no row can later appear
  before the last position a reader has seen. ``pg_current_snapshot()`` is the statement's own
  snapshot, so the gate and the rows it filters agree.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Columns of a recorded event, in the order every SELECT returns them: the row layout that
#: _events.StoredEvent reads its fields from.
EVENT_COLUMNS = (
    "tx_id, seq, stream_id, version, event_id, type, data, metadata,"
    " correlation_id, causation_id, recorded_at"
)

#: Rows below this gate belong to finished transactions only (docs/backends/postgres.md, "Design").
#: The sub-select makes it an InitPlan, computed once per statement and usable as the upper
#: bound of the index range; written bare, the function would run for every row (measured:
#: half the read throughput).
GATE = "tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))"


def _append(s: str, head: str) -> str:
    # The head CTE returns the stream's new version, or no row when the expected version does
    # not hold; the events are then numbered new_version - n + 1 .. new_version.
    return f"""
        WITH head AS ({head})
        INSERT INTO {s}.events (stream_id, version, event_id, type, data, metadata,
                                correlation_id, causation_id)
        SELECT $1::text, head.version - $4::bigint + e.ord, e.id, e.type, e.data,
               e.metadata, e.correlation_id, e.causation_id
        FROM head,
             unnest($5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[], $9::text[], $10::text[])
             WITH ORDINALITY AS e(id, type, data, metadata, correlation_id, causation_id, ord)
        ORDER BY e.ord
        RETURNING tx_id, seq, version
    """


def _append_one(s: str, head: str) -> str:
    # One event: plain parameters instead of arrays. Measured with 16 single-event writers,
    # unnest ... WITH ORDINALITY ... ORDER BY cost the server about a quarter of the
    # throughput, and encoding six one-element arrays cost the client 30-40 µs per append.
    return f"""
        WITH head AS ({head})
        INSERT INTO {s}.events (stream_id, version, event_id, type, data, metadata,
                                correlation_id, causation_id)
        SELECT $1::text, head.version, $4::uuid, $5::text, $6::jsonb, $7::jsonb, $8::text,
               $9::text
        FROM head
        RETURNING tx_id, seq, version
    """


def _head_from_zero(s: str, count: str) -> str:
    # A missing stream counts as version 0, so when 0 is in range the head row is upserted
    # (ON CONFLICT only fires for a proposed row).
    return f"""
        INSERT INTO {s}.streams AS h (stream_id, version) VALUES ($1::text, {count})
        ON CONFLICT (stream_id) DO UPDATE
            SET version = h.version + {count}
            WHERE h.version BETWEEN $2::bigint AND $3::bigint
        RETURNING h.version
    """


def _head_existing(s: str, count: str) -> str:
    # 0 is not in range: the existing row must be updated.
    return f"""
        UPDATE {s}.streams AS h SET version = h.version + {count}
        WHERE h.stream_id = $1::text AND h.version BETWEEN $2::bigint AND $3::bigint
        RETURNING h.version
    """


def _filtered(s: str, match: str, after: str, page: str) -> str:
    # One index range scan per requested value of $4 (LATERAL), each already in position
    # order and bounded by the page size, merged by the outer ORDER BY: the cost of a page
    # does not grow with the number of non-matching events.
    return f"""
        SELECT {EVENT_COLUMNS} FROM unnest($4::text[]) AS f(value)
        CROSS JOIN LATERAL (
            SELECT {EVENT_COLUMNS} FROM {s}.events
            WHERE {match} AND {after} AND {GATE} {page}
        ) AS e
        {page}
    """


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement the adapter sends, for one schema."""

    append_from_zero: str
    append_existing: str
    append_one_from_zero: str
    append_one_existing: str
    events_by_id: str
    stream_version: str
    read_stream_forward: str
    read_stream_backward: str
    read_all: str
    read_all_by_type: str
    read_all_by_category: str
    read_all_by_type_and_category: str
    save_snapshot: str
    load_snapshot: str
    save_checkpoint: str
    load_checkpoint: str

    @classmethod
    def for_schema(cls, s: str) -> Statements:
        """Build the statements for the (already quoted) schema ``s``."""
        page = "ORDER BY tx_id, seq LIMIT $3"
        after = "(tx_id, seq) > ($1::xid8, $2::bigint)"
        return cls(
            # $1 stream id, $2/$3 the inclusive range the current version must lie in
            # (ANY = [0, max], NO_STREAM = [0, 0], STREAM_EXISTS = [1, max], an exact version
            # N = [N, N]); then either $4 the number of events and $5.. the event columns as
            # arrays, or (one event) $4.. its columns.
            append_from_zero=_append(s, _head_from_zero(s, "$4::bigint")),
            append_existing=_append(s, _head_existing(s, "$4::bigint")),
            append_one_from_zero=_append_one(s, _head_from_zero(s, "1")),
            append_one_existing=_append_one(s, _head_existing(s, "1")),
            # The cold path after a failed condition or a unique violation: the stream's actual
            # version and whichever of the batch's ids already exist, each with the first and
            # last versions of the batch it was written in. An append is one statement, hence
            # one transaction to one stream: its events are those of (tx_id, stream_id). They
            # are looked up by tx_id alone, a range of the primary key (tx_id, seq), and the
            # stream is a FILTER: as a WHERE it would let the planner scan the whole stream
            # through (stream_id, version) instead.
            events_by_id=f"""
                SELECT {EVENT_COLUMNS}, b.batch_first, b.batch_last
                FROM {s}.events AS e
                CROSS JOIN LATERAL (
                    SELECT min(t.version) FILTER (WHERE t.stream_id = e.stream_id),
                           max(t.version) FILTER (WHERE t.stream_id = e.stream_id)
                    FROM {s}.events AS t WHERE t.tx_id = e.tx_id
                ) AS b(batch_first, batch_last)
                WHERE e.event_id = ANY($1::uuid[])
                ORDER BY e.tx_id, e.seq
            """,
            stream_version=f"""
                SELECT coalesce((SELECT version FROM {s}.streams WHERE stream_id = $1), 0)
            """,
            read_stream_forward=f"""
                SELECT {EVENT_COLUMNS} FROM {s}.events
                WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3
            """,
            read_stream_backward=f"""
                SELECT {EVENT_COLUMNS} FROM {s}.events
                WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3
            """,
            read_all=f"""
                SELECT {EVENT_COLUMNS} FROM {s}.events
                WHERE {after} AND {GATE} {page}
            """,
            # One index range scan per requested value (LATERAL), each already in position
            # order and bounded by the page size, merged by the outer ORDER BY: the cost of a
            # page does not grow with the number of non-matching events.
            read_all_by_type=_filtered(s, "type = f.value", after, page),
            read_all_by_category=_filtered(s, "category = f.value", after, page),
            read_all_by_type_and_category=_filtered(
                s, "type = f.value AND category = ANY($5::text[])", after, page
            ),
            # Keep only the latest snapshot: an older one never replaces a newer one.
            save_snapshot=f"""
                INSERT INTO {s}.snapshots AS s (stream_id, version, type, data)
                VALUES ($1, $2, $3, $4::jsonb)
                ON CONFLICT (stream_id) DO UPDATE
                    SET version = excluded.version, type = excluded.type,
                        data = excluded.data, recorded_at = now()
                    WHERE s.version <= excluded.version
            """,
            load_snapshot=f"""
                SELECT stream_id, version, type, data FROM {s}.snapshots WHERE stream_id = $1
            """,
            save_checkpoint=f"""
                INSERT INTO {s}.checkpoints (name, position) VALUES ($1, $2)
                ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()
            """,
            load_checkpoint=f"SELECT position FROM {s}.checkpoints WHERE name = $1",
        )
