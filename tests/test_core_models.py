"""The value types: positions and their tokens, filters, events, errors."""

from __future__ import annotations

import pickle

import pytest

import eventstore_core as es
from eventstore_core.decision import check_expected_version, expected_range, idempotent_result
from eventstore_core.validation import prepare_batch


def test_position_token_round_trips_and_orders_like_the_position() -> None:
    a, b = es.Position((5, 2)), es.Position((5, 10))
    assert a < b
    assert b > a
    assert a != b
    assert es.Position.parse(str(a)) == a
    assert str(b) == "5:10"
    assert sorted([b, a]) == [a, b]
    assert len({a, es.Position.parse("5:2")}) == 1


@pytest.mark.parametrize("token", ["", "x", "1:", "-1", "1.5", "1: 2"])
def test_malformed_position_tokens_are_invalid(token: str) -> None:
    with pytest.raises(es.InvalidEventError):
        es.Position.parse(token)


def test_event_filter_matches_by_type_and_category() -> None:
    f = es.EventFilter(event_types=["OrderPlaced"], categories=["Order"])
    assert f.matches("Order-42", "OrderPlaced")
    assert not f.matches("Order-42", "OrderShipped")
    assert not f.matches("Invoice-42", "OrderPlaced")
    assert es.EventFilter(categories=["Order"]).matches("Order", "X")


def test_event_filter_rejects_a_bare_string() -> None:
    with pytest.raises(es.InvalidEventError, match="event_types"):
        es.EventFilter(event_types="OrderPlaced")


def test_new_event_is_frozen_with_fresh_ids() -> None:
    a, b = es.NewEvent("T", {}), es.NewEvent("T", {})
    assert a.id != b.id
    with pytest.raises(AttributeError):
        a.type = "U"  # type: ignore[misc]


def test_errors_share_one_base_and_keep_their_fields_through_pickle() -> None:
    error = es.ConcurrencyError("Order-1", es.NO_STREAM, 3)
    assert es.WrongExpectedVersionError is es.ConcurrencyError
    assert isinstance(error, es.EventStoreError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.stream_id, copy.expected, copy.actual) == ("Order-1", es.NO_STREAM, 3)
    assert issubclass(es.InvalidEventError, ValueError)
    unavailable = pickle.loads(pickle.dumps(es.BackendUnavailableError("x", maybe_applied=True)))
    assert unavailable.maybe_applied
    assert "may have been applied" in str(unavailable)


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (es.ANY, 0, True),
        (es.ANY, 5, True),
        (es.NO_STREAM, 0, True),
        (es.NO_STREAM, 1, False),
        (es.STREAM_EXISTS, 0, False),
        (es.STREAM_EXISTS, 2, True),
        (0, 0, True),
        (3, 3, True),
        (3, 4, False),
    ],
)
def test_expected_version_has_one_meaning(
    expected: es.ExpectedVersion, actual: int, ok: bool
) -> None:
    if ok:
        check_expected_version("S-1", expected, actual)
    else:
        with pytest.raises(es.ConcurrencyError):
            check_expected_version("S-1", expected, actual)


def _recorded(stream_id: str, version: int, event: es.NewEvent) -> es.RecordedEvent:
    from datetime import UTC, datetime

    return es.RecordedEvent(
        stream_id,
        version,
        es.Position((version,)),
        event.id,
        event.type,
        {},
        {},
        None,
        None,
        datetime.now(UTC),
    )


def test_idempotent_result_accepts_only_the_same_batch_on_the_same_stream() -> None:
    a, b = es.NewEvent("A", {}), es.NewEvent("B", {})
    batch = prepare_batch([a, b], max_event_bytes=1000, max_append_events=10)
    stored = [_recorded("S-1", 4, a), _recorded("S-1", 5, b)]
    bounds = {a.id: (4, 5), b.id: (4, 5)}
    assert idempotent_result("S-1", batch, stored, batch_bounds=bounds) == es.AppendResult(
        5, es.Position((5,))
    )
    with pytest.raises(es.DuplicateEventIdError):
        idempotent_result("S-2", batch, stored, batch_bounds=bounds)
    with pytest.raises(es.DuplicateEventIdError):
        idempotent_result("S-1", batch, stored[:1], batch_bounds=bounds)  # partial overlap
    with pytest.raises(es.DuplicateEventIdError):
        idempotent_result(  # not contiguous
            "S-1", batch, [stored[0], _recorded("S-1", 7, b)], batch_bounds=bounds
        )


def test_idempotent_result_refuses_part_of_a_written_batch() -> None:
    a, b, c = es.NewEvent("A", {}), es.NewEvent("B", {}), es.NewEvent("C", {})
    stored = [_recorded("S-1", 4, a), _recorded("S-1", 5, b), _recorded("S-1", 6, c)]
    bounds = {event.id: (4, 6) for event in (a, b, c)}

    def retry(*events: es.NewEvent) -> es.AppendResult:
        batch = prepare_batch(events, max_event_bytes=1000, max_append_events=10)
        found = [event for event in stored if event.id in {e.id for e in events}]
        return idempotent_result("S-1", batch, found, batch_bounds=bounds)

    assert retry(a, b, c) == es.AppendResult(6, es.Position((6,)))
    for part in [(a, b), (b, c), (a,), (b,), (c,)]:
        with pytest.raises(es.DuplicateEventIdError):
            retry(*part)
    # The stored batch is the whole truth: the same three events, reported as written in a
    # bigger batch (or with their bounds unknown), are not a retry either.
    bounds = {event.id: (3, 6) for event in (a, b, c)}
    with pytest.raises(es.DuplicateEventIdError):
        retry(a, b, c)
    bounds = {a.id: (4, 6), b.id: (4, 6)}
    with pytest.raises(es.DuplicateEventIdError):
        retry(a, b, c)


def test_recorded_event_fields_are_read_only() -> None:
    event = _recorded("S-1", 1, es.NewEvent("A", {"x": 1}))
    for name in ("stream_id", "version", "position", "id", "type", "data", "recorded_at"):
        with pytest.raises(AttributeError):
            setattr(event, name, None)
        with pytest.raises(AttributeError):
            delattr(event, name)
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]


def test_recorded_event_given_json_bytes_decodes_once_and_equals_the_decoded_form() -> None:
    from datetime import UTC, datetime

    at = datetime.now(UTC)
    new = es.NewEvent("A", {"x": [1, 2]}, {"user": "u1"})
    args = ("S-1", 1, es.Position.of(7, 1), new.id, "A")
    lazy = es.RecordedEvent(*args, b'{"x":[1,2]}', b'{"user":"u1"}', None, None, at)
    eager = es.RecordedEvent(*args, {"x": [1, 2]}, {"user": "u1"}, None, None, at)
    assert lazy == eager
    assert hash(lazy) == hash(eager)
    assert lazy.data == {"x": [1, 2]}
    assert lazy.data is lazy.data  # decoded once, then kept
    assert lazy.metadata == {"user": "u1"}
    copy = pickle.loads(pickle.dumps(lazy))
    assert copy == eager
    assert "data={'x': [1, 2]}" in repr(lazy)


def test_recorded_event_given_position_parts_builds_the_position_when_read() -> None:
    from datetime import UTC, datetime

    at = datetime.now(UTC)
    new = es.NewEvent("A", {})
    from_parts = es.RecordedEvent("S-1", 1, (7, 1), new.id, "A", b"{}", b"{}", None, None, at)
    built = es.RecordedEvent("S-1", 1, es.Position((7, 1)), new.id, "A", {}, {}, None, None, at)
    assert isinstance(from_parts.position, es.Position)
    assert from_parts.position is from_parts.position
    assert str(from_parts.position) == "7:1"
    assert from_parts == built
    assert hash(from_parts) == hash(built)
    assert pickle.loads(pickle.dumps(from_parts)).position == es.Position.parse("7:1")


def test_recorded_event_given_microseconds_builds_an_aware_utc_datetime_when_read() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 28, 21, 59, 50, 123456, tzinfo=UTC)
    micros = 1_795_903_190_123_456  # the same instant, in microseconds since the Unix epoch
    new = es.NewEvent("A", {})
    lazy = es.RecordedEvent("S-1", 1, (1,), new.id, "A", b"{}", b"{}", None, None, micros)
    eager = es.RecordedEvent("S-1", 1, es.Position((1,)), new.id, "A", {}, {}, None, None, at)
    assert lazy.recorded_at == at
    assert lazy.recorded_at.tzinfo is UTC
    assert lazy.recorded_at is lazy.recorded_at
    assert lazy == eager


def test_expected_range_agrees_with_check_expected_version() -> None:
    for expected in (es.ANY, es.NO_STREAM, es.STREAM_EXISTS, 0, 1, 7):
        lo, hi = expected_range(expected)
        for actual in (0, 1, 2, 7, 8, 10**6):
            try:
                check_expected_version("s", expected, actual)
                ok = True
            except es.ConcurrencyError:
                ok = False
            assert ok == (lo <= actual <= hi), (expected, actual)


def test_partitioned_positions_of_one_read_are_ordered_and_tokens_round_trip() -> None:
    a = es.PartitionedPosition(0, 4, (5, 2, 0))
    b = es.PartitionedPosition(1, 2, (5, 3, 0))
    c = es.PartitionedPosition(0, 5, (6, 3, 0))
    assert a < b < c
    assert sorted([c, a, b]) == [a, b, c]
    for position in (a, b, c):
        again = es.Position.parse(str(position))
        assert isinstance(again, es.PartitionedPosition)
        assert again == position
        assert again.frontier == position.frontier
        assert pickle.loads(pickle.dumps(position)).frontier == position.frontier
    assert str(b) == "1/2@5.3.0"


def test_partitioned_positions_without_an_order_refuse_to_compare() -> None:
    # Two reads that interleaved partitions differently: neither frontier is ahead of the
    # other in every partition, so "<" would be a guess.
    a = es.PartitionedPosition(0, 9, (10, 0))
    b = es.PartitionedPosition(1, 3, (0, 4))
    with pytest.raises(TypeError, match="no order"):
        _ = a < b
    with pytest.raises(TypeError):
        _ = es.Position((3,)) < a
    assert a != es.Position((0, 9))


def test_the_same_event_read_twice_has_equal_positions_with_different_frontiers() -> None:
    one = es.PartitionedPosition(2, 7, (0, 0, 8))
    two = es.PartitionedPosition(2, 7, (5, 1, 8))
    assert one == two
    assert hash(one) == hash(two)
    assert not one < two
    assert one.next_offset(0) == 0
    assert two.next_offset(0) == 5
    assert two.next_offset(9) == 0  # a partition added later starts at its beginning


@pytest.mark.parametrize(
    "token", ["1/2", "1/2@", "x/2@3", "1/2@3", "1/2@0.2", "3/0@1.1", "1/2@0.3.٣", "/2@0.3"]
)
def test_malformed_partitioned_tokens_are_invalid(token: str) -> None:
    with pytest.raises(es.InvalidEventError):
        es.Position.parse(token)


def test_position_tokens_take_ascii_digits_only() -> None:
    with pytest.raises(es.InvalidEventError):
        es.Position.parse("١٢")


def test_capabilities_rank_unique_event_ids() -> None:
    caps = es.Capabilities(
        concurrency="multi-writer",
        idempotency="window",
        unique_event_ids="stream",
        global_order="total",
        live_subscriptions="push",
        max_event_bytes=1,
        max_append_events=1,
    )
    assert caps.shortfalls({"unique_event_ids": "stream", "idempotency": "window"}) == []
    assert caps.shortfalls({"unique_event_ids": "store"}) == [
        "unique_event_ids is 'stream', 'store' required"
    ]
    assert caps.shortfalls({"snapshots": True}) == []
