"""What an append means: the one definition of ``expected_version`` and of idempotency.

An adapter's ``_append`` only reports what its storage found — the batch was written
(:class:`Written`), or it was refused (:class:`Refused`: the stream's actual version, and the
stored events that share ids with the batch) — and :func:`decide` turns a refusal into the
contract's answer: the original result of an idempotent retry, :class:`DuplicateEventIdError`,
:class:`ConcurrencyError`, or "try again" when the stream has meanwhile reached a version the
expectation allows. Adapters whose storage must decide inside itself (a log replayed by every
instance) call :func:`decide` there too, so the rule stays the same everywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventstore_core.errors import ConcurrencyError, DuplicateEventIdError
from eventstore_core.models import AppendResult, ExpectedVersion, RecordedEvent, StreamState
from eventstore_core.validation import MAX_VERSION, PreparedEvent

__all__ = [
    "MAX_VERSION",
    "Refused",
    "Written",
    "check_expected_version",
    "decide",
    "expected_range",
    "idempotent_result",
]


#: An append that wrote its batch: the stream's new version and the last event's position.
Written = AppendResult


@dataclass(frozen=True, slots=True)
class Refused:
    """An append that wrote nothing: what the storage found instead.

    ``actual`` is the stream's version at the time of the refusal (read only when
    ``existing`` is empty: stored ids decide first). ``existing`` holds the
    stored events whose ids are among the batch's (empty when no id was reused), and
    ``batch_bounds`` the ``(first, last)`` versions of the append that wrote each of them,
    keyed by event id (see :func:`idempotent_result`).
    """

    actual: int
    existing: Sequence[RecordedEvent] = ()
    batch_bounds: Mapping[UUID, tuple[int, int]] = field(default_factory=dict)


def expected_range(expected: ExpectedVersion) -> tuple[int, int]:
    """The inclusive range of current versions that satisfy ``expected``.

    For storage that checks inside itself (a SQL predicate, a condition expression): the
    stream's version must lie in ``lo..hi``. ANY is ``0..MAX_VERSION``, NO_STREAM ``0..0``,
    STREAM_EXISTS ``1..MAX_VERSION`` and an exact version ``n..n``.
    """
    if expected is StreamState.ANY:
        return 0, MAX_VERSION
    if expected is StreamState.NO_STREAM:
        return 0, 0
    if expected is StreamState.STREAM_EXISTS:
        return 1, MAX_VERSION
    assert isinstance(expected, int)
    return expected, expected


def check_expected_version(stream_id: str, expected: ExpectedVersion, actual: int) -> None:
    """Raise :class:`ConcurrencyError` unless a stream at ``actual`` satisfies ``expected``."""
    lo, hi = expected_range(expected)
    if not lo <= actual <= hi:
        raise ConcurrencyError(stream_id, expected, actual)


def idempotent_result(
    stream_id: str,
    events: Sequence[PreparedEvent],
    existing: Sequence[RecordedEvent],
    *,
    batch_bounds: Mapping[UUID, tuple[int, int]],
) -> AppendResult:
    """Decide what appending ``events`` means when some of their ids are already stored.

    ``existing`` holds the stored events whose ids are among ``events``' ids. ``batch_bounds``
    tells, for each of them (keyed by event id), the ``(first, last)`` versions, inclusive, of
    the batch it was written in. An id without bounds counts as not the same batch.

    It is a retry of the same batch, and the original result is returned, only if every id
    was written, to this stream, in this order, with the same types, and that append wrote
    exactly these events. Any other reuse of an id (another stream, a new event, old and new
    ids mixed, part of a written batch) raises :class:`DuplicateEventIdError`.
    """
    by_id = {event.id: event for event in existing}
    found = [by_id.get(event.id) for event in events]
    stored = [event for event in found if event is not None]
    same_batch = (
        len(stored) == len(events)
        and all(
            stored_event.stream_id == stream_id and stored_event.type == new.type
            for stored_event, new in zip(stored, events, strict=True)
        )
        and all(b.version == a.version + 1 for a, b in itertools.pairwise(stored))
        and all(
            batch_bounds.get(event.id) == (stored[0].version, stored[-1].version)
            for event in stored
        )
    )
    if same_batch:
        return AppendResult(version=stored[-1].version, position=stored[-1].position)
    ids = tuple(str(event.id) for event in stored)
    where = sorted({event.stream_id for event in stored})
    raise DuplicateEventIdError(
        f"event id(s) {', '.join(ids)} already written (to stream(s) {', '.join(where)}) "
        f"in another batch; only a retry of the very same batch to {stream_id!r} is idempotent",
        event_ids=ids,
    )


def decide(
    stream_id: str,
    events: Sequence[PreparedEvent],
    expected: ExpectedVersion,
    refused: Refused,
) -> AppendResult | None:
    """The contract's answer to a refused append.

    Ids decide first: a retry of a stored batch returns its original result whatever
    ``expected`` says, and any other reuse raises :class:`DuplicateEventIdError`. Then the
    version: :class:`ConcurrencyError` if ``refused.actual`` does not satisfy ``expected``.
    ``None`` means the stream has meanwhile reached a version the expectation allows (another
    writer moved it): appending again now is as if this call had come later.
    """
    if refused.existing:
        return idempotent_result(
            stream_id, events, refused.existing, batch_bounds=refused.batch_bounds
        )
    check_expected_version(stream_id, expected, refused.actual)
    return None
