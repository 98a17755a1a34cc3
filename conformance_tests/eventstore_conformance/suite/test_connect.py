"""Opening a store: ``connect`` does no I/O and checks everything; lifecycle; capabilities."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest

import eventstore_core as es
from eventstore_conformance.harness import (
    StoreContext,
    collect,
    open_fd_count,
    store_test,
    thread_count,
)


def _with_query(url: str, extra: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def test_connect_does_no_io(eventstore_url: str) -> None:
    """``connect`` is synchronous, opens nothing and starts no thread (no loop is running)."""
    fds, threads = open_fd_count(), thread_count()
    store = es.connect(eventstore_url)
    assert isinstance(store, es.EventStore)
    assert not store.is_open
    # At most as many: a driver thread of an earlier test may end, or close a socket of its
    # own, meanwhile (grpc's poller was seen closing one); connect() itself must add none.
    assert thread_count() <= threads, "connect() started a thread"
    assert (open_fd_count() or 0) <= (fds or 0), "connect() opened a file or socket"


def test_connect_rejects_an_unknown_keyword_option(eventstore_url: str) -> None:
    """A typo in an option is a ``ConfigurationError``, not silently ignored."""
    with pytest.raises(es.ConfigurationError):
        es.connect(eventstore_url, no_such_option_xyz=1)


def test_connect_rejects_an_unknown_query_string_option(eventstore_url: str) -> None:
    """Query-string parameters are options and are checked like keyword options."""
    with pytest.raises(es.ConfigurationError):
        es.connect(_with_query(eventstore_url, "no_such_option_xyz=1"))


def test_connect_rejects_an_invalid_option_value(eventstore_url: str) -> None:
    """Option values are validated at ``connect`` (a page size must be positive)."""
    with pytest.raises(es.ConfigurationError):
        es.connect(eventstore_url, page_size=0)


def test_keyword_options_win_over_the_query_string(eventstore_url: str) -> None:
    """``connect(url?page_size=7, page_size=9)`` uses 9."""
    store = es.connect(_with_query(eventstore_url, "page_size=7"), page_size=9)
    assert store.options.page_size == 9


def test_an_unknown_scheme_raises_configuration_error_with_an_install_hint() -> None:
    """An unregistered scheme names the problem and how to install a backend."""
    with pytest.raises(es.ConfigurationError) as info:
        es.connect("no-such-scheme-xyz://somewhere/db")
    assert "install" in str(info.value).lower()


def test_a_known_scheme_whose_backend_is_missing_names_its_extra() -> None:
    """A built-in scheme whose driver is missing hints ``pip install "eventstore-core[x]"``."""
    from eventstore_core.registry import load_backend

    extras = {
        "postgresql": "postgres",
        "dynamodb": "dynamodb",
        "kafka": "kafka",
        "kurrentdb": "kurrentdb",
        "esdb": "kurrentdb",
    }
    checked = 0
    for scheme, extra in extras.items():
        try:
            load_backend(scheme)
        except es.ConfigurationError as error:
            checked += 1
            hint = f'pip install "eventstore-core[{extra}]"'
            if _declares_extra(extra):
                assert hint in str(error), f"{scheme}: {error}"  # noqa: PT017
            else:  # an adapter this version does not ship: no hint to a missing extra
                assert "eventstore-core[" not in str(error), f"{scheme}: {error}"  # noqa: PT017
    if not checked:
        pytest.skip("every built-in backend is installed here: no missing one to check")


def _declares_extra(extra: str) -> bool:
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        return extra in (metadata("eventstore-core").get_all("Provides-Extra") or ())
    except PackageNotFoundError:
        return False


def test_require_an_unmet_capability_raises_at_connect(eventstore_url: str) -> None:
    """``require=`` fails at once with ``UnsupportedOperationError``, before any I/O."""
    caps = es.connect(eventstore_url).capabilities
    with pytest.raises(es.UnsupportedOperationError):
        es.connect(eventstore_url, require={"max_event_bytes": caps.max_event_bytes + 1})


def test_require_a_met_capability_connects(eventstore_url: str) -> None:
    """Requiring exactly what the store declares is accepted."""
    caps = es.connect(eventstore_url).capabilities
    store = es.connect(
        eventstore_url,
        require={
            "concurrency": caps.concurrency,
            "idempotency": caps.idempotency,
            "global_order": caps.global_order,
            "live_subscriptions": caps.live_subscriptions,
            "max_event_bytes": caps.max_event_bytes,
        },
    )
    assert not store.is_open


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1] or "localhost"
    user = (parts.username or "user") if "@" in parts.netloc else "user"
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, ""))


def test_repr_and_url_redact_the_password(eventstore_url: str) -> None:
    """A password in the URL never shows in ``repr(store)``, ``store.url`` or an error."""
    secret = "pw" + uuid.uuid4().hex
    url = _with_password(eventstore_url, secret)
    try:
        store = es.connect(url)
    except es.ConfigurationError as error:
        assert secret not in str(error)  # noqa: PT017
        return
    assert secret not in repr(store)
    assert secret not in str(store.url)


def test_capabilities_are_a_frozen_dataclass_readable_before_open(eventstore_url: str) -> None:
    """``store.capabilities`` is an ``es.Capabilities`` with sensible values, before open."""
    store = es.connect(eventstore_url)
    caps = store.capabilities
    assert isinstance(caps, es.Capabilities)
    assert dataclasses.is_dataclass(caps)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.concurrency = "multi-writer"  # type: ignore[misc]
    assert caps.concurrency in ("multi-writer", "single-writer")
    assert caps.idempotency in ("permanent", "window", "none")
    assert caps.global_order in ("total", "partitioned")
    assert caps.live_subscriptions in ("push", "poll")
    assert isinstance(caps.max_event_bytes, int)
    assert caps.max_event_bytes > 0
    assert isinstance(caps.max_append_events, int)
    assert caps.max_append_events >= 1


def _operations(
    store: es.EventStore, position: es.Position
) -> dict[str, Callable[[], Awaitable[object]]]:
    # ``position`` is one the store under test made: a valid argument, whatever its shape.

    async def drain(events: Callable[[], AsyncIterator[es.RecordedEvent]]) -> object:
        return await collect(events())

    async def subscribe() -> object:
        async with store.subscribe() as subscription:
            return await anext(subscription)

    return {
        "append": lambda: store.append("Conf-closed", [es.NewEvent("T", {})]),
        "read_stream": lambda: drain(lambda: store.read_stream("Conf-closed")),
        "read_all": lambda: drain(lambda: store.read_all(limit=1)),
        "stream_version": lambda: store.stream_version("Conf-closed"),
        "subscribe": subscribe,
        "save_checkpoint": lambda: store.save_checkpoint("conf-closed", position),
        "load_checkpoint": lambda: store.load_checkpoint("conf-closed"),
        "save_snapshot": lambda: store.save_snapshot(es.Snapshot("Conf-closed", 1, "S", {})),
        "load_snapshot": lambda: store.load_snapshot("Conf-closed"),
    }


@store_test
async def test_operations_before_open_raise_a_clear_error(ctx: StoreContext) -> None:
    """Every operation on a store that was never opened raises an ``EventStoreError``."""
    unopened = es.connect(ctx.url)
    for name, operation in _operations(unopened, await ctx.marker()).items():
        with pytest.raises(es.EventStoreError, match="open") as info:
            await operation()
        assert not isinstance(info.value, es.InvalidEventError), name


@store_test
async def test_operations_after_close_raise_a_clear_error(ctx: StoreContext) -> None:
    """A closed store refuses every operation with an ``EventStoreError``."""
    other = await ctx.connect()
    await other.close()
    assert not other.is_open
    for name, operation in _operations(other, await ctx.marker()).items():
        with pytest.raises(es.EventStoreError) as info:
            await operation()
        assert not isinstance(info.value, es.InvalidEventError), name


@store_test
async def test_setup_is_idempotent(store: es.EventStore, ctx: StoreContext) -> None:
    """``setup()`` again, on an already set-up store, succeeds and keeps the events."""
    stream = ctx.stream()
    await store.append(stream, [es.NewEvent("T", {})])
    await store.setup()
    await store.setup()
    assert await store.stream_version(stream) == 1


@store_test
async def test_setup_is_safe_to_run_concurrently(ctx: StoreContext) -> None:
    """Several connections running ``setup()`` at once all succeed."""
    import asyncio

    stores = [await ctx.connect() for _ in range(3)]
    await asyncio.gather(*(s.setup() for s in stores))


@store_test
async def test_open_and_close_are_idempotent(ctx: StoreContext) -> None:
    """Opening an open store and closing a closed one are no-ops."""
    store = es.connect(ctx.url)
    await store.open()
    await store.open()
    assert store.is_open
    await store.close()
    await store.close()
    assert not store.is_open


@store_test
async def test_async_with_opens_and_closes(ctx: StoreContext) -> None:
    """``async with es.connect(url) as store`` yields the opened store and closes it after."""
    async with es.connect(ctx.url) as store:
        assert store.is_open
        stream = ctx.stream()
        await store.append(stream, [es.NewEvent("T", {})])
    assert not store.is_open
    assert await ctx.store.stream_version(stream) == 1
