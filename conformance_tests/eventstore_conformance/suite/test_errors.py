"""The error hierarchy, as raised by the store under test."""

from __future__ import annotations

import pytest

import eventstore_core as es
from eventstore_conformance.harness import StoreContext, store_test


@pytest.mark.parametrize(
    "error",
    [
        es.ConcurrencyError,
        es.DuplicateEventIdError,
        es.InvalidEventError,
        es.UnsupportedOperationError,
        es.ConfigurationError,
        es.BackendUnavailableError,
    ],
)
def test_every_error_derives_from_event_store_error(error: type[Exception]) -> None:
    """``except es.EventStoreError`` catches every error of the library."""
    assert issubclass(error, es.EventStoreError)


def test_invalid_event_error_is_a_value_error() -> None:
    """Bad input is also a ``ValueError``, as Python code expects."""
    assert issubclass(es.InvalidEventError, ValueError)


def test_wrong_expected_version_error_is_concurrency_error() -> None:
    """``WrongExpectedVersionError`` is the very same class (the KurrentDB name)."""
    assert es.WrongExpectedVersionError is es.ConcurrencyError


def test_backend_unavailable_error_says_whether_the_write_may_have_applied() -> None:
    """``BackendUnavailableError.maybe_applied`` tells whether a retry is needed to find out."""
    assert es.BackendUnavailableError("lost", maybe_applied=True).maybe_applied is True
    assert es.BackendUnavailableError("lost").maybe_applied is False


@store_test
async def test_concurrency_error_carries_stream_expected_and_actual(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A conflict reports the stream, what was expected and the stream's actual version."""
    stream = ctx.stream()
    await store.append(stream, [es.NewEvent("T", {}), es.NewEvent("T", {})])
    with pytest.raises(es.ConcurrencyError) as info:
        await store.append(stream, [es.NewEvent("T", {})], expected_version=5)
    assert info.value.stream_id == stream
    assert info.value.expected == 5
    assert info.value.actual == 2
    assert isinstance(info.value, es.WrongExpectedVersionError)
