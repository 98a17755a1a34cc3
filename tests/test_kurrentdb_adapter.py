"""The KurrentDB adapter's own rules, and the double's server rules it relies on.

Everything runs against the protocol double, in-process (so that a test can restart it), or
against ``EVENTSTORE_TEST_KURRENTDB_URL`` for the tests that need no restart. The raw
kurrentdbclient is used to look at what the adapter stored, never to stand in for it.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from eventstore_kurrentdb.double import DoubleConfig, KurrentDBDouble
from kurrentdbclient import AsyncKurrentDBClient, NewEvent, StreamState
from kurrentdbclient.exceptions import MaximumAppendSizeExceededError

import eventstore_core as es
from eventstore_core.local.kurrentdb import url_from_environment


@pytest.fixture(scope="module")
async def double() -> AsyncIterator[KurrentDBDouble]:
    """A double of this test module's own, in-process, so that tests can restart it."""
    async with KurrentDBDouble(DoubleConfig(port=0)) as running:
        yield running


@pytest.fixture
def url(double: KurrentDBDouble) -> str:
    """A real server's URL when one is given, else the module's double."""
    return url_from_environment() or double.url


async def _raw(url: str) -> AsyncKurrentDBClient:
    """kurrentdbclient on the same server, to look at what the adapter stored."""
    client = AsyncKurrentDBClient(url)
    await client.connect()
    return client


def _with(url: str, query: str) -> str:
    """``url`` with more query-string options."""
    return url + ("&" if "?" in url else "?") + query


def _stream(prefix: str = "Order") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- mapping -------------------------------------------------------------------------------


async def test_versions_are_one_based_over_the_servers_zero_based_revisions(url: str) -> None:
    stream = _stream()
    async with es.connect(url) as store:
        result = await store.append(
            stream, [es.NewEvent("Placed", {"n": 1}), es.NewEvent("Paid", {"n": 2})]
        )
        assert result.version == 2
        assert [e.version for e in [e async for e in store.read_stream(stream)]] == [1, 2]
        assert await store.stream_version(stream) == 2
    client = await _raw(url)
    try:
        stored = await client.get_stream(stream)
        assert [e.stream_position for e in stored] == [0, 1]
    finally:
        await client.close()


async def test_positions_are_the_events_commit_and_prepare_positions(url: str) -> None:
    stream = _stream()
    async with es.connect(url) as store:
        result = await store.append(stream, [es.NewEvent("Placed", {})], expected_version=es.ANY)
        client = await _raw(url)
        try:
            (raw,) = await client.get_stream(stream)
        finally:
            await client.close()
        assert str(result.position) == f"{raw.commit_position}:{raw.prepare_position}"
        (read,) = [e async for e in store.read_stream(stream)]
        assert read.position == result.position


async def test_an_append_with_any_returns_the_streams_new_version(url: str) -> None:
    stream = _stream()
    async with es.connect(url) as store:
        await store.append(stream, [es.NewEvent("A", {})])
        other = await store.append(_stream(), [es.NewEvent("B", {})])
        result = await store.append(stream, [es.NewEvent("C", {}), es.NewEvent("D", {})])
        assert result.version == 3
        assert result.position > other.position
        # A large batch too: the revision comes in the BatchAppend answer, whatever the size.
        large = await store.append(stream, [es.NewEvent("E", {}) for _ in range(30)])
        exists = await store.append(
            stream, [es.NewEvent("F", {})], expected_version=es.STREAM_EXISTS
        )
        stored = [e async for e in store.read_stream(stream)]
        assert (large.version, large.position) == (stored[-2].version, stored[-2].position)
        assert (exists.version, exists.position) == (34, stored[-1].position)


async def test_a_wrong_expected_version_reports_the_actual_1_based_version(url: str) -> None:
    stream = _stream()
    async with es.connect(url) as store:
        await store.append(stream, [es.NewEvent("A", {})], expected_version=es.NO_STREAM)
        with pytest.raises(es.ConcurrencyError) as caught:
            await store.append(stream, [es.NewEvent("B", {})], expected_version=es.NO_STREAM)
        assert caught.value.actual == 1
        with pytest.raises(es.ConcurrencyError):
            await store.append(stream, [es.NewEvent("B", {})], expected_version=0)
        assert (await store.append(stream, [es.NewEvent("B", {})], expected_version=1)).version == 2


async def test_metadata_and_correlation_ids_round_trip(url: str) -> None:
    stream = _stream()
    event = es.NewEvent(
        "A", {"x": 1}, metadata={"user": "u1"}, correlation_id="c-1", causation_id="z-1"
    )
    for mode in ("server", "strict"):
        async with es.connect(_with(url, f"idempotency={mode}")) as store:
            await store.append(f"{stream}{mode}", [event])
            (read,) = [e async for e in store.read_stream(f"{stream}{mode}")]
            assert dict(read.metadata) == {"user": "u1"}
            assert (read.correlation_id, read.causation_id) == ("c-1", "z-1")


# -- system streams and filters ------------------------------------------------------------


async def test_system_streams_and_the_librarys_own_streams_never_reach_users(url: str) -> None:
    stream = _stream()
    async with es.connect(url) as store:
        start = await _last_position(store)
        await store.append(stream, [es.NewEvent("A", {})])
        await store.save_checkpoint("projector", (await _last_position(store)) or "0:0")
        await store.save_snapshot(es.Snapshot(stream, 1, "State", {"s": 1}))
        async with es.connect(_with(url, "idempotency=strict")) as strict:
            await strict.append(_stream(), [es.NewEvent("A", {})])
        client = await _raw(url)
        try:
            await client.append_to_stream(
                "$system-thing",
                events=[NewEvent(type="A", data=b"{}")],
                current_version=StreamState.ANY,
            )
            # The library's own streams are bounded.
            checkpoints, _ = await client.get_stream_metadata("$es-checkpoint-projector")
            snapshots, _ = await client.get_stream_metadata(f"$es-snapshot-{stream}")
            assert checkpoints["$maxCount"] >= 1
            assert snapshots["$maxCount"] >= 1
        finally:
            await client.close()
        events = [e async for e in store.read_all(after=start)]
        assert events
        assert not [e for e in events if e.stream_id.startswith("$")]
        typed = [
            e async for e in store.read_all(after=start, filter=es.EventFilter(event_types=["A"]))
        ]
        assert {e.stream_id.startswith("$") for e in typed} == {False}


async def _last_position(store: es.EventStore) -> es.Position | None:
    last = None
    async for event in store.read_all():
        last = event.position
    return last


async def test_category_filters_are_one_grouped_regex_on_the_server(url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {
        "order": f"Order{tag}-1",
        "bare": f"Order{tag}",
        "orders": f"Order{tag}s-1",
        "invoice": f"Invoice{tag}-1",
        "other": f"Other{tag}-1",
    }
    async with es.connect(url) as store:
        start = await _last_position(store)
        for name in names.values():
            await store.append(name, [es.NewEvent("Placed", {}), es.NewEvent("Paid", {})])
        got = [
            e.stream_id
            async for e in store.read_all(
                after=start, filter=es.EventFilter(categories=[f"Order{tag}", f"Invoice{tag}"])
            )
        ]
        assert sorted(set(got)) == sorted([names["order"], names["bare"], names["invoice"]])
        paid = [
            (e.stream_id, e.type)
            async for e in store.read_all(
                after=start,
                filter=es.EventFilter(categories=[f"Order{tag}"], event_types=["Paid"]),
            )
        ]
        assert sorted(paid) == sorted([(names["order"], "Paid"), (names["bare"], "Paid")])


async def test_a_filtered_page_that_drops_events_client_side_still_reads_on(url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    async with es.connect(_with(url, "page_size=3")) as store:
        start = await _last_position(store)
        for i in range(5):
            await store.append(
                f"C{tag}-{i}",
                [es.NewEvent("Noise", {}) for _ in range(3)] + [es.NewEvent("Hit", {})],
            )
        hits = [
            e
            async for e in store.read_all(
                after=start, filter=es.EventFilter(categories=[f"C{tag}"], event_types=["Hit"])
            )
        ]
        assert len(hits) == 5


# -- URLs, options, errors -----------------------------------------------------------------


async def test_library_options_are_removed_from_the_url_the_client_sees(url: str) -> None:
    async with es.connect(_with(url, "page_size=7&idempotency=strict&timeout=5")) as store:
        assert store.options.page_size == 7
        assert store.capabilities.idempotency == "permanent"
        await store.append(_stream(), [es.NewEvent("A", {})])


def test_credentials_in_the_url_are_redacted() -> None:
    store = es.connect("kurrentdb://admin:changeit@127.0.0.1:2113?tls=false")
    assert "changeit" not in repr(store)
    assert "changeit" not in store.url


def test_a_url_the_client_refuses_fails_in_connect_without_showing_the_password() -> None:
    with pytest.raises(es.ConfigurationError) as caught:
        es.connect("kurrentdb://admin:s3cret@127.0.0.1:2113?nodePreference=nowhere")
    assert "nowhere" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(es.ConfigurationError, match="Username and password are required"):
        es.connect("kurrentdb://127.0.0.1:2113")  # TLS (the default) needs credentials


def test_all_four_schemes_are_registered() -> None:
    for scheme in ("kurrentdb", "kurrentdb+discover", "esdb", "esdb+discover"):
        store = es.connect(f"{scheme}://127.0.0.1:2113?tls=false")
        assert type(store).__name__ == "KurrentDBEventStore"


def test_capabilities_of_both_modes_are_declared_honestly() -> None:
    default = es.connect("kurrentdb://127.0.0.1:2113?tls=false").capabilities
    strict = es.connect("kurrentdb://127.0.0.1:2113?tls=false&idempotency=strict").capabilities
    assert (default.idempotency, default.unique_event_ids) == ("window", "none")
    assert (strict.idempotency, strict.unique_event_ids) == ("permanent", "store")
    assert default.live_subscriptions == strict.live_subscriptions == "push"


def test_only_esdbclient_installed_raises_configuration_error(tmp_path: object) -> None:
    # A fresh interpreter in which kurrentdbclient cannot be found and an esdbclient exists.
    code = textwrap.dedent(
        """
        import importlib.abc, sys, types, pathlib
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "kurrentdbclient" or name.startswith("kurrentdbclient."):
                    raise ModuleNotFoundError(name=name)
                return None
        sys.meta_path.insert(0, Hide())
        root = pathlib.Path(sys.argv[1])
        (root / "esdbclient").mkdir()
        (root / "esdbclient" / "__init__.py").write_text("")
        sys.path.insert(0, str(root))
        import eventstore_core as es
        try:
            es.connect("esdb://127.0.0.1:2113?tls=false")
        except es.ConfigurationError as error:
            print("ConfigurationError:", error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert "ConfigurationError:" in done.stdout, done.stderr
    assert "esdbclient" in done.stdout
    assert "eventstore-core[kurrentdb]" in done.stdout


async def test_an_unreachable_server_is_backend_unavailable_and_maybe_applied() -> None:
    async with KurrentDBDouble(DoubleConfig(port=0)) as gone:
        url = gone.url
    async with es.connect(url + "&timeout=2") as store:
        with pytest.raises(es.BackendUnavailableError) as caught:
            await store.append(_stream(), [es.NewEvent("A", {})])
        assert caught.value.maybe_applied
        with pytest.raises(es.BackendUnavailableError) as read:
            await store.stream_version(_stream())
        assert not read.value.maybe_applied


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_with_credentials_is_the_default_and_wrong_credentials_are_refused(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    secure = KurrentDBDouble(DoubleConfig(port=None, tls_port=0, certfile=cert, keyfile=key))
    async with secure:
        base = f"localhost:{secure.tls_port}?tlsCaFile={cert}"
        async with es.connect(f"kurrentdb://admin:changeit@{base}") as store:
            result = await store.append(_stream(), [es.NewEvent("A", {})])
            assert result.version == 1
        async with es.connect(f"kurrentdb://admin:wrong@{base}") as store:
            with pytest.raises(es.EventStoreError) as caught:
                await store.append(_stream(), [es.NewEvent("A", {})])
            assert "wrong" not in str(caught.value)


# -- idempotency ---------------------------------------------------------------------------


async def test_default_mode_retries_are_idempotent_only_within_the_servers_id_cache() -> None:
    # A cache that holds a handful of ids: the retry after it forgot them writes duplicates,
    # exactly what a real server does once its 8 MiB cache has moved on (or after a restart).
    small = KurrentDBDouble(DoubleConfig(port=0, id_cache_bytes=300))
    async with small, es.connect(small.url) as store:
        stream = _stream()
        batch = [es.NewEvent("A", {}), es.NewEvent("B", {})]
        first = await store.append(stream, batch)
        assert await store.append(stream, batch) == first  # still cached
        for _ in range(10):
            await store.append(_stream(), [es.NewEvent("Filler", {})])
        await store.append(stream, batch)  # forgotten: written again
        assert await store.stream_version(stream) == 4


async def test_strict_mode_is_idempotent_after_the_cache_is_lost_and_unique_store_wide(
    double: KurrentDBDouble,
) -> None:
    async with es.connect(_with(double.url, "idempotency=strict")) as store:
        stream = _stream()
        batch = [es.NewEvent("A", {}), es.NewEvent("B", {})]
        first = await store.append(stream, batch)
        double.log.forget_cache()  # what a restart does to the server's idempotency
        assert await store.append(stream, batch) == first
        assert await store.append(stream, batch, expected_version=2) == first
        assert await store.stream_version(stream) == 2
        with pytest.raises(es.DuplicateEventIdError):
            await store.append(_stream(), batch)  # the same ids, another stream
        with pytest.raises(es.DuplicateEventIdError):
            await store.append(stream, [batch[0]])  # part of a written batch
        with pytest.raises(es.DuplicateEventIdError):
            await store.append(stream, [es.NewEvent("C", {}, id=batch[1].id)])
        assert await store.stream_version(stream) == 2


async def test_strict_mode_on_a_server_without_append_records_uses_the_append_session() -> None:
    # KurrentDB 25.1/25.x has AppendSession but not AppendRecords (26.1): same guarantees.
    older = KurrentDBDouble(DoubleConfig(port=0, append_records=False))
    async with older, es.connect(_with(older.url, "idempotency=strict")) as store:
        stream = _stream()
        batch = [es.NewEvent("A", {}), es.NewEvent("B", {})]
        first = await store.append(stream, batch)
        older.log.forget_cache()
        assert await store.append(stream, batch) == first
        with pytest.raises(es.DuplicateEventIdError):
            await store.append(_stream(), batch)
        assert await store.stream_version(stream) == 2


@pytest.mark.parametrize("append_records", [True, False], ids=["AppendRecords", "AppendSession"])
async def test_a_strict_append_leaves_no_payload_to_the_cyclic_garbage_collector(
    append_records: bool,
) -> None:
    # Payload held by a reference cycle lives on until a collection happens to run: memory
    # that grows and falls with the collector's timing (13 MB per 8 MB appended, once).
    server = KurrentDBDouble(DoubleConfig(port=0, append_records=append_records))
    async with server, es.connect(_with(server.url, "idempotency=strict")) as store:
        await store.append(_stream(), [es.NewEvent("Warm", {})])
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(3):
                await store.append(_stream(), [es.NewEvent("A", {"p": "x" * 1000})])
            gc.collect()
            kept = [type(o).__qualname__ for o in gc.garbage if type(o).__name__ in _PAYLOAD]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert not kept, f"appends left payload in reference cycles: {kept}"


_PAYLOAD = {"AppendRequest", "AppendRecord", "AppendRecordsRequest", "NewEvent", "NewEvents"}


@pytest.mark.parametrize("mode", ["server", "strict"])
async def test_a_cancelled_append_is_cancelled_never_sent_again_nor_a_raw_error(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller cancels an append whose request the server holds: the call ends cancelled,
    at once, and is never sent again. (kurrentdbclient's multi_append_to_stream turned the
    cancellation into CancelledByClientError, which its retrygrpc answered by sending the
    append again 0.5 s later, or into RuntimeError('coroutine raised StopIteration').)"""
    from eventstore_kurrentdb.double import _multi, _streams

    received = asyncio.Event()
    gate = asyncio.Event()
    sent = 0

    def holding(original: Callable[..., Any]) -> Callable[..., Any]:
        async def held(context: Any) -> None:
            nonlocal sent
            sent += 1
            received.set()
            await gate.wait()
            # The server learns of the cancel before it would write (client and server share
            # this event loop: the client's cancel can be done before its RST_STREAM is in).
            cancelled = asyncio.Event()
            context.add_done_callback(lambda _: cancelled.set())
            await asyncio.wait_for(cancelled.wait(), 5)
            await original(context)

        return held

    batch_append = _streams.StreamsServicer.BatchAppend

    async def held_batch_append(
        servicer: Any, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        # BatchAppend is bidirectional: hold once the request is in, before it is written.
        nonlocal sent
        first = await anext(aiter(requests))
        sent += 1
        received.set()
        await gate.wait()

        async def again() -> AsyncIterator[Any]:
            yield first
            async for request in requests:
                yield request

        async for response in batch_append(servicer, again(), context):
            yield response

    monkeypatch.setattr(_multi, "client_finished", holding(_multi.client_finished))
    # The servicer's methods are bound when a server starts: a double of the test's own.
    monkeypatch.setattr(_streams.StreamsServicer, "BatchAppend", held_batch_append)
    server = KurrentDBDouble(DoubleConfig(port=0))
    async with server, es.connect(_with(server.url, f"idempotency={mode}")) as store:
        stream = _stream()
        task = asyncio.create_task(store.append(stream, [es.NewEvent("A", {})]))
        await asyncio.wait_for(received.wait(), 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        gate.set()
        assert task in done
        assert task.cancelled()
        monkeypatch.undo()
        # A client-streamed request (strict mode's) cut off by the cancel is never written.
        # BatchAppend's one message was whole when it reached the server, which writes it as
        # KurrentDB does, the cancel notwithstanding: all of it or none, never re-sent.
        assert await store.stream_version(stream) in ((0,) if mode == "strict" else (0, 1))
        assert sent == 1


# -- subscriptions -------------------------------------------------------------------------


async def test_a_live_subscription_resumes_after_the_server_restarts(
    double: KurrentDBDouble,
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with es.connect(double.url) as store:
        start = await _last_position(store)
        await store.append(f"R{tag}-1", [es.NewEvent("A", {"i": 0})])
        got: list[int] = []
        async with store.subscribe(
            after=start, filter=es.EventFilter(categories=[f"R{tag}"])
        ) as subscription:

            async def consume() -> None:
                async for event in subscription:
                    got.append(event.data["i"])
                    if len(got) == 4:
                        return

            task = asyncio.create_task(consume())
            await asyncio.wait_for(_until(lambda: subscription.is_live), 10)
            await store.append(f"R{tag}-1", [es.NewEvent("A", {"i": 1})])
            await asyncio.wait_for(_until(lambda: len(got) == 2), 10)
            await double.restart(downtime=0.5)
            # Writers see the restart too: retry the same events until the server answers.
            await _append_retrying(store, f"R{tag}-2", [es.NewEvent("A", {"i": 2})])
            await _append_retrying(store, f"R{tag}-1", [es.NewEvent("A", {"i": 3})])
            await asyncio.wait_for(task, 30)
        assert got == [0, 1, 2, 3]


def _reconnect_right_after(client: AsyncKurrentDBClient, method: str) -> None:
    """Make the client's next ``method`` call reconnect the client before the response it
    made has run a step: what another call's ``UNAVAILABLE`` does at that moment."""
    original = getattr(client, method)

    async def call(*args: Any, **kwargs: Any) -> Any:
        setattr(client, method, original)
        response = await original(*args, **kwargs)
        await client.reconnect()
        return response

    setattr(client, method, call)


@pytest.mark.parametrize("method", ["read_stream", "read_all"])
async def test_a_read_cut_by_a_reconnect_ends_instead_of_waiting_for_good(
    url: str, method: str
) -> None:
    # kurrentdbclient's reconnect cancels the reading task of every open response; one
    # cancelled before its first step left its reader waiting forever (an append's read-back
    # hung through a server restart). Now the read ends: with the events, or unavailable.
    stream = _stream()
    async with es.connect(url) as store:
        await store.append(stream, [es.NewEvent("A", {"i": 0})])
        client = store.client  # type: ignore[attr-defined]
        _reconnect_right_after(client, method)
        async with asyncio.timeout(10):
            try:
                if method == "read_stream":
                    events = await es_collect(store.read_stream(stream))
                else:
                    events = [e async for e in store.read_all() if e.stream_id == stream]
            except es.BackendUnavailableError:
                events = None
        assert events is None or [e.data for e in events] == [{"i": 0}]
        assert getattr(client, method).__name__ == method  # the patched call was made
        # And the store goes on working over the new connection.
        assert [e.data for e in await es_collect(store.read_stream(stream))] == [{"i": 0}]


async def test_an_append_whose_read_back_is_cut_by_a_reconnect_is_maybe_applied_not_stuck(
    url: str,
) -> None:
    # Strict mode reads an append with ANY back (its new version): a reconnect at that moment.
    stream = _stream()
    async with es.connect(_with(url, "idempotency=strict")) as store:
        await store.append(stream, [es.NewEvent("A", {"i": 0})])
        client = store.client  # type: ignore[attr-defined]
        _reconnect_right_after(client, "read_all")
        async with asyncio.timeout(10):
            with pytest.raises(es.BackendUnavailableError) as raised:
                await store.append(stream, [es.NewEvent("A", {"i": 1})])
        assert raised.value.maybe_applied
        assert [e.data for e in await es_collect(store.read_stream(stream))] == [{"i": 0}, {"i": 1}]


async def es_collect(events: AsyncIterator[es.RecordedEvent]) -> list[es.RecordedEvent]:
    return [event async for event in events]


async def _append_retrying(store: es.EventStore, stream: str, events: list[es.NewEvent]) -> None:
    for _ in range(100):
        try:
            await store.append(stream, events)
            return
        except es.BackendUnavailableError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back")


async def _until(condition: Callable[[], bool]) -> None:
    # Nothing signals these conditions (is_live, a list's length): poll them.
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


# -- the double's own rules ----------------------------------------------------------------


async def test_the_double_refuses_an_append_over_its_max_append_size() -> None:
    async with KurrentDBDouble(DoubleConfig(port=0)) as running:
        client = await _raw(running.url)
        try:
            with pytest.raises(MaximumAppendSizeExceededError):
                await client.append_to_stream(
                    _stream(),
                    events=[NewEvent(type="Big", data=b"x" * (1024 * 1024))],
                    current_version=StreamState.ANY,
                )
        finally:
            await client.close()


async def test_a_server_refusing_an_append_as_too_large_is_invalid_input_on_every_path() -> None:
    # A server configured below the declared limit: Append (ANY, small batch), BatchAppend
    # (a known version) and the multi-stream appends (strict mode) all refuse it, and each
    # refusal is InvalidEventError, not an outage (nor a retried gRPC error).
    async with KurrentDBDouble(DoubleConfig(port=0, max_append_size=2000)) as small:
        big = [es.NewEvent("Big", {"x": "y" * 3000})]
        async with es.connect(small.url) as store:
            with pytest.raises(es.InvalidEventError):
                await store.append(_stream(), big)
            with pytest.raises(es.InvalidEventError):
                await store.append(_stream(), big, expected_version=es.NO_STREAM)
        async with es.connect(_with(small.url, "idempotency=strict")) as strict:
            with pytest.raises(es.InvalidEventError):
                await strict.append(_stream(), big)


async def test_the_double_writes_a_retry_sent_with_the_streams_new_revision(url: str) -> None:
    # IndexWriter.CheckCommit: an exact revision equal to the current one is not checked.
    client = await _raw(url)
    stream = _stream()
    try:
        event = NewEvent(type="A", data=b"{}")
        await client.append_to_stream(stream, events=[event], current_version=StreamState.NO_STREAM)
        await client.append_to_stream(stream, events=[event], current_version=StreamState.NO_STREAM)
        assert len(await client.get_stream(stream)) == 1  # NO_STREAM: the index is read
        await client.append_to_stream(stream, events=[event], current_version=0)
        assert len(await client.get_stream(stream)) == 2  # revision 0 == current: written
        other = _stream()
        await client.append_to_stream(other, events=[event], current_version=StreamState.ANY)
        assert len(await client.get_stream(other)) == 1  # another stream: written
    finally:
        await client.close()
