"""Hostile input: one verdict, before anything is sent, the same on every backend.

Two kinds of test. The first names each case that once slipped through on some backend
(NaN stored as null, floats read back as ints, NUL characters refused only by the server,
64-bit overflows, lone surrogates, position tokens of another store's shape). The second is
property-based (hypothesis): arbitrary names, ids, data, numbers, tokens, filters and
snapshots are given to the store under test *and* to a fresh ``memory://`` store, whose
verdict is the core's validation alone; the two must agree (both accept, or both raise the
same error class), a refusal must be an ``EventStoreError`` and write nothing, and what is
accepted must read back exactly, types included.

Examples are derandomized (the same on every run and machine) and kept small, so the run
stays short on a server backend; ``EVENTSTORE_HYPOTHESIS_EXAMPLES`` raises the count.
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventstore_core as es
from eventstore_conformance.harness import StoreContext, collect, store_test
from eventstore_core import serialization

_T = TypeVar("_T")

#: Examples per property and backend (derandomized: the same examples on every run).
EXAMPLES = int(os.environ.get("EVENTSTORE_HYPOTHESIS_EXAMPLES", "100"))

_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- deterministic cases ----------------------------------------------------------------------

#: Floats that JSON carries but some storage once changed (PostgreSQL's jsonb turned the
#: integral ones of 1e16 and beyond into integers).
EXACT_FLOATS = [
    0.1,
    -0.5,
    1e16,
    1e17,
    1.5e17,
    123456789012345680.0,
    2.0**53 + 2,
    2.0**63,
    2.0**64,
    1e300,
    -1e17,
    1.7976931348623157e308,
    5e-324,
    1e-7,
    3.0,
]


def _same(a: object, b: object) -> bool:
    """Equal, and of the same JSON types all the way down (1.0 is not 1, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


async def _refused(
    call: Callable[[], Awaitable[object]], field: str | None = None
) -> es.InvalidEventError:
    with pytest.raises(es.InvalidEventError) as info:
        await call()
    if field is not None:
        assert info.value.field is not None
        assert field in info.value.field, info.value
    return info.value


async def _refused_call(
    field: str, function: Callable[..., Awaitable[object]], *args: Any, **kwargs: Any
) -> es.InvalidEventError:
    """Call ``function(*args, **kwargs)`` and await it: expect a refusal naming ``field``."""
    return await _refused(lambda: function(*args, **kwargs), field)


async def _drain(method: Callable[..., AsyncIterator[Any]], *args: Any, **kwargs: Any) -> object:
    """Call a reading method (which checks its arguments at the call) and drain it."""
    return await collect(method(*args, **kwargs))


@store_test
async def test_floats_read_back_exactly_as_floats(store: es.EventStore, ctx: StoreContext) -> None:
    """Every finite float reads back equal and still a float, in data, metadata, snapshots."""
    data = {f"f{i}": value for i, value in enumerate(EXACT_FLOATS)}
    data["nested"] = [{"x": v} for v in EXACT_FLOATS]  # type: ignore[assignment]
    stream = ctx.stream()
    await store.append(stream, [es.NewEvent("Floats", data, metadata={"m": 1e17})])
    [event] = await collect(store.read_stream(stream))
    assert _same(dict(event.data), data), event.data
    assert _same(dict(event.metadata), {"m": 1e17}), event.metadata
    if store.capabilities.snapshots:
        await store.save_snapshot(es.Snapshot(stream, 1, "State", data))
        snapshot = await store.load_snapshot(stream)
        assert snapshot is not None
        assert _same(dict(snapshot.data), data), snapshot.data


@store_test
async def test_nan_and_infinities_are_refused(store: es.EventStore, ctx: StoreContext) -> None:
    """NaN and ±inf are not JSON: refused at the call, never stored as null."""
    stream = ctx.stream()
    for value in (math.nan, math.inf, -math.inf):
        await _refused_call("data", store.append, stream, [es.NewEvent("T", {"x": value})])
        events = [es.NewEvent("T", {}, metadata={"a": [1, value]})]
        await _refused_call("metadata", store.append, stream, events)
        if store.capabilities.snapshots:
            snapshot = es.Snapshot(stream, 1, "S", {"x": {"y": value}})
            await _refused_call("snapshot.data", store.save_snapshot, snapshot)
    assert await store.stream_version(stream) == 0
    # A None that was meant is still fine.
    await store.append(stream, [es.NewEvent("T", {"x": None})])


@store_test
async def test_nul_characters_are_refused_on_every_backend(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """U+0000 in data, metadata, keys, snapshots or ids is refused at the call, everywhere.

    (PostgreSQL's jsonb cannot hold it, so the one verdict is a refusal.) The text ``\\u0000``
    — a backslash and five characters — is ordinary text and round-trips.
    """
    stream = ctx.stream()
    cases: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: store.append(stream, [es.NewEvent("T", {"x": "a\x00b"})]), "data"),
        (lambda: store.append(stream, [es.NewEvent("T", {"k\x00": 1})]), "data"),
        (lambda: store.append(stream, [es.NewEvent("T", {}, metadata={"m": ["\x00"]})]), "meta"),
        (lambda: store.append(stream, [es.NewEvent("T", {}, correlation_id="c\x00")]), "corr"),
        (lambda: store.append(stream, [es.NewEvent("T", {}, causation_id="\x00")]), "causation"),
        (lambda: store.append(stream, [es.NewEvent("T\x00", {})]), "type"),
        (lambda: store.append(stream + "\x00", [es.NewEvent("T", {})]), "stream_id"),
    ]
    if store.capabilities.snapshots:
        cases.append(
            (lambda: store.save_snapshot(es.Snapshot(stream, 1, "S", {"x": "\x00"})), "snapshot")
        )
    for call, field in cases:
        await _refused(call, field)
    assert await store.stream_version(stream) == 0
    text = {"x": "\\u0000", "y": "\\\\u0000", "\\u0000": "\\"}
    await store.append(stream, [es.NewEvent("T", text)])
    [event] = await collect(store.read_stream(stream))
    assert dict(event.data) == text


@store_test
async def test_lone_surrogates_are_refused_everywhere(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A lone surrogate cannot be encoded as UTF-8: refused at the call wherever it appears."""
    stream = ctx.stream()
    bad = "x\ud800"
    calls: list[tuple[Callable[[], Awaitable[object]], str]] = [
        (lambda: store.append(stream, [es.NewEvent("T", {}, correlation_id=bad)]), "correlation"),
        (lambda: store.append(stream, [es.NewEvent("T", {}, causation_id=bad)]), "causation"),
        (lambda: store.append(stream, [es.NewEvent("T", {"x": bad})]), "data"),
        (lambda: store.append(stream, [es.NewEvent("T", {bad: 1})]), "data"),
        (lambda: store.append(stream, [es.NewEvent(bad, {})]), "type"),
        (lambda: store.stream_version(bad), "stream_id"),
        (lambda: collect(store.read_all(filter=es.EventFilter(event_types=[bad]))), "filter"),
        (lambda: collect(store.read_all(filter=es.EventFilter(categories=[bad]))), "filter"),
        (lambda: store.save_checkpoint(bad, "1"), "name"),
        (lambda: store.load_checkpoint(bad), "name"),
    ]
    for call, field in calls:
        await _refused(call, field)
    assert await store.stream_version(stream) == 0


@store_test
async def test_correlation_and_causation_ids_are_checked_like_names(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Empty, too long, with a control character or not a str: refused, nothing written."""
    stream = ctx.stream()
    for bad in ("", "x" * 256, "a\nb", "\x1b", 42, b"id"):
        for key in ("correlation_id", "causation_id"):
            event = es.NewEvent("T", {}, **{key: bad})  # type: ignore[arg-type]
            await _refused_call(key, store.append, stream, [event])
    assert await store.stream_version(stream) == 0
    await store.append(stream, [es.NewEvent("T", {}, correlation_id="$c-1", causation_id="é")])


@store_test
async def test_numbers_beyond_64_bits_are_refused_at_the_call(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """Versions above 2**62 and position parts above 2**63 - 1 are refused, on every backend."""
    stream = ctx.stream()
    await store.append(stream, [es.NewEvent("T", {})])
    for big in (2**62 + 1, 2**63, 2**64, 10**30):
        events = [es.NewEvent("T", {})]
        await _refused_call("expected_version", store.append, stream, events, big)
        await _refused_call("from", _drain, store.read_stream, stream, from_version=big)
        await _refused_call(
            "from", _drain, store.read_stream, stream, from_version=big, backwards=True
        )
        if store.capabilities.snapshots:
            await _refused_call("version", store.save_snapshot, es.Snapshot(stream, big, "S", {}))
    assert await store.stream_version(stream) == 1
    # The largest legal version is a plain mismatch, not an overflow.
    with pytest.raises(es.ConcurrencyError):
        await store.append(stream, [es.NewEvent("T", {})], expected_version=2**62)
    real = await ctx.marker()
    huge = str(2**63)
    tokens = ["9" * 40, huge, "1" * 5000]
    if isinstance(real, es.PartitionedPosition):
        tokens.append(f"0/{huge}@{2**63 + 1}")
    else:
        tokens.append(":".join([huge] * len(real.parts)))
    for token in tokens:
        await _refused_call("after", _drain, store.read_all, after=token)
        await _refused_call("position", store.save_checkpoint, "conf-big", token)
    assert await store.load_checkpoint("conf-big") is None


def _other_shapes(real: es.Position) -> list[str]:
    """Tokens that parse as positions but not of ``real``'s store."""
    if isinstance(real, es.PartitionedPosition):
        return ["1", "1:2", str(real.offset)]
    n = len(real.parts)
    return [
        ":".join(["1"] * (n + 1)),
        ":".join(["1"] * (n + 2)),
        *([":".join(["1"] * (n - 1))] if n > 1 else []),
        "0/0@1",
        "1/4@0.5",
    ]


@store_test
async def test_position_tokens_of_another_shape_are_refused_at_the_call(
    store: es.EventStore, ctx: StoreContext
) -> None:
    """A token shaped like another store's positions (``"1:2:3"`` on a one-part store), or
    with non-ASCII digits, is refused by ``read_all``, ``subscribe`` and ``save_checkpoint``,
    and leaves the saved checkpoint as it was."""
    real = await ctx.marker()
    name = "conf-shape-" + uuid.uuid4().hex
    await store.save_checkpoint(name, real)
    bad = [
        *_other_shapes(real),
        "\u0661",
        "1:\u0662",
        "\uff11",
        "",
        ":",
        "1:",
        "-1",
        " 1",
        "1 ",
        "0x1",
    ]
    for token in bad:
        await _refused_call("after", _drain, store.read_all, after=token, limit=1)
        with pytest.raises(es.InvalidEventError):
            store.subscribe(after=token)
        await _refused_call("position", store.save_checkpoint, name, token)
    assert await store.load_checkpoint(name) == real
    # The store's own token is fine, as a string and as a Position.
    await collect(store.read_all(after=str(real), limit=1))
    await store.save_checkpoint(name, str(real))
    async with store.subscribe(name=name) as subscription:
        assert subscription.position == real


# -- properties ----------------------------------------------------------------------------------


class _Session:
    """The store under test and a fresh ``memory://`` reference, on one event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = asyncio.Runner()
        self.store = es.connect(url)
        self.reference = es.connect("memory://")
        self.category = "ConfBad" + uuid.uuid4().hex[:12]
        self.examples = 0

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return self.runner.run(asyncio.wait_for(coroutine, 60))

    def run_example(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run one hypothesis example (counted, for reports)."""
        self.examples += 1
        self.run(coroutine)

    def stream(self) -> str:
        return f"{self.category}-{uuid.uuid4().hex}"

    async def _open(self) -> None:
        await self.store.open()
        await self.store.setup()
        await self.reference.open()

    async def _close(self) -> None:
        await self.store.close()
        await self.reference.close()


@contextmanager
def _session(url: str) -> Iterator[_Session]:
    session = _Session(url)
    try:
        session.run(session._open())
        yield session
    finally:
        try:
            session.run(session._close())
        finally:
            session.runner.close()


async def _verdict(call: Callable[[], Awaitable[_T]]) -> tuple[type[BaseException] | None, Any]:
    """``(None, result)``, or ``(error class, error)``; fails on anything not ours."""
    try:
        return None, await call()
    except es.EventStoreError as error:
        return type(error), error
    except Exception as error:  # the point of the test: nothing raw may escape
        pytest.fail(f"a raw {type(error).__name__} escaped: {error!r}")


def _agree(got: tuple[type[BaseException] | None, Any], ref: tuple[Any, Any], what: str) -> None:
    assert got[0] is ref[0], (
        f"{what}: the store under test says {got[0].__name__ if got[0] else 'ok'} "
        f"({got[1]!r}), the core's validation says {ref[0].__name__ if ref[0] else 'ok'} "
        f"({ref[1]!r})"
    )


#: Characters that once tripped some backend, mixed into every generated text.
_NASTY = st.sampled_from(["\x00", "\ud800", "\udfff", "\x1b", "\n", "$", ":", "-", "é", "\\"])
_CHARS = st.one_of(st.characters(codec=None), _NASTY)
_TEXT = st.text(_CHARS, max_size=12)
_NAMES = st.one_of(
    _TEXT,
    st.text(_CHARS, min_size=250, max_size=260),
    st.sampled_from(["", "$x", "Ok-1", "Ok"]),
    st.integers(),
    st.none(),
    st.binary(max_size=4),
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**62]),
    st.floats(),
    st.sampled_from(EXACT_FLOATS),
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(_TEXT, children, max_size=3),
    ),
    max_leaves=8,
)
_DATA = st.one_of(
    st.dictionaries(_TEXT, _JSON, max_size=4),
    st.dictionaries(st.one_of(st.integers(), st.none()), _JSON, min_size=1, max_size=2),
    st.sampled_from([[], "x", None, 3]),
)
_IDS = st.one_of(st.none(), _NAMES)
_EVENTS = st.builds(
    es.NewEvent,
    type=st.one_of(st.just("ConfBadEvent"), _NAMES),
    data=_DATA,
    metadata=_DATA,
    correlation_id=_IDS,
    causation_id=_IDS,
)
_VERSIONS = st.one_of(
    st.integers(min_value=-3, max_value=5),
    st.sampled_from([2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**64, 10**20]),
    st.floats(allow_nan=False, max_value=10),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


def _normalised(value: object) -> object:
    """What a JSON round trip of an accepted value gives (tuples become lists, and so on)."""
    return serialization.loads(serialization.dumps({"v": value}))["v"]


def test_any_batch_gets_the_core_verdict_and_reads_back_exactly(
    eventstore_url: str, request: pytest.FixtureRequest
) -> None:
    """Arbitrary events: the verdict of the core's validation, nothing written on refusal,
    and an accepted batch reads back with the same data, metadata and ids, types included."""
    with _session(eventstore_url) as s:

        @_SETTINGS
        @given(events=st.lists(_EVENTS, min_size=0, max_size=3), expected=_VERSIONS)
        def check(events: list[es.NewEvent], expected: Any) -> None:
            s.run_example(_check_batch(s, events, expected))

        check()
        request.node.user_properties.append(("hypothesis_examples", s.examples))


async def _check_batch(s: _Session, events: list[es.NewEvent], expected: Any) -> None:
    stream, ref_stream = s.stream(), s.stream()
    got = await _verdict(lambda: s.store.append(stream, events, expected_version=expected))
    ref = await _verdict(lambda: s.reference.append(ref_stream, events, expected_version=expected))
    _agree(got, ref, "append")
    stored = await collect(s.store.read_stream(stream))
    if got[0] is not None:
        assert stored == [], f"a refused append ({got[0].__name__}) wrote {len(stored)} events"
        return
    assert [e.id for e in stored] == [e.id for e in events]
    for new, old in zip(events, stored, strict=True):
        assert _same(dict(old.data), _normalised(dict(new.data))), (old.data, new.data)
        assert _same(dict(old.metadata), _normalised(dict(new.metadata)))
        assert (old.type, old.correlation_id, old.causation_id) == (
            new.type,
            new.correlation_id,
            new.causation_id,
        )


def test_any_read_argument_gets_the_core_verdict(
    eventstore_url: str, request: pytest.FixtureRequest
) -> None:
    """Arbitrary ``from_version``, ``limit``, ``backwards`` and stream ids: the same verdict as
    the core's validation, and never a raw driver error."""
    with _session(eventstore_url) as s:

        @_SETTINGS
        @given(
            stream=st.one_of(st.just(None), _NAMES),
            from_version=_VERSIONS,
            limit=_VERSIONS,
            backwards=st.booleans(),
        )
        def check(stream: Any, from_version: Any, limit: Any, backwards: bool) -> None:
            if backwards and not s.store.capabilities.backwards_reads:
                backwards = False
            s.run_example(_check_read(s, stream, from_version, limit, backwards))

        check()
        request.node.user_properties.append(("hypothesis_examples", s.examples))


async def _check_read(s: _Session, stream: Any, from_version: Any, limit: Any, back: bool) -> None:
    if stream is None:
        stream = s.stream()
        await s.store.append(stream, [es.NewEvent("T", {}), es.NewEvent("T", {})])
        await s.reference.append(stream, [es.NewEvent("T", {}), es.NewEvent("T", {})])

    def reader(store: es.EventStore) -> Callable[[], Awaitable[list[es.RecordedEvent]]]:
        return lambda: collect(
            store.read_stream(stream, from_version=from_version, backwards=back, limit=limit)
        )

    got = await _verdict(reader(s.store))
    ref = await _verdict(reader(s.reference))
    _agree(got, ref, "read_stream")
    if got[0] is None:
        assert [e.version for e in got[1]] == [e.version for e in ref[1]]
    version_got = await _verdict(lambda: s.store.stream_version(stream))
    _agree(version_got, await _verdict(lambda: s.reference.stream_version(stream)), "version")


_TOKENS = st.one_of(
    st.text(st.sampled_from("0123456789:/@. -x\u0661\u0662\uff11"), max_size=10),
    st.lists(st.integers(min_value=0, max_value=2**65), min_size=1, max_size=3).map(
        lambda parts: ":".join(map(str, parts))
    ),
    st.integers(min_value=0, max_value=2**65).map(str),
    st.builds(
        lambda p, o, f: f"{p}/{o}@{'.'.join(map(str, f))}",
        st.integers(0, 3),
        st.integers(0, 9),
        st.lists(st.integers(0, 10), min_size=1, max_size=4),
    ),
    st.none(),
    st.integers(),
)


def _shape(position: es.Position) -> tuple[type, int]:
    return type(position), (
        0 if isinstance(position, es.PartitionedPosition) else len(position.parts)
    )


def test_any_position_token_is_refused_unless_it_has_the_store_shape(
    eventstore_url: str, request: pytest.FixtureRequest
) -> None:
    """``read_all``, ``subscribe`` and ``save_checkpoint`` take a token only when it has the
    shape of the store's own positions (type, number of parts, 64-bit parts); a refusal is an
    ``InvalidEventError`` and leaves the checkpoint as it was."""
    with _session(eventstore_url) as s:
        real = s.run(s.store.append(s.stream(), [es.NewEvent("T", {})])).position
        name = "conf-token-" + uuid.uuid4().hex
        s.run(s.store.save_checkpoint(name, real))

        @_SETTINGS
        @given(token=_TOKENS)
        def check(token: Any) -> None:
            s.run_example(_check_token(s, token, real, name))

        check()
        request.node.user_properties.append(("hypothesis_examples", s.examples))


async def _check_token(s: _Session, token: Any, real: es.Position, name: str) -> None:
    try:
        parsed = es.Position.parse(token)
        fits = _shape(parsed) == _shape(real) and all(
            p < 2**63 for p in (*parsed.parts, *getattr(parsed, "frontier", ()))
        )
    except es.InvalidEventError:
        parsed, fits = None, False
    if token is None:
        fits = True  # "from the beginning": valid for read_all and subscribe
    read = await _verdict(lambda: collect(s.store.read_all(after=token, limit=1)))
    # A token of the right shape that this store never made may be refused too (a server
    # that checks positions), but only as bad input: never as an outage or a raw error.
    allowed = (None, es.InvalidEventError) if fits and token is not None else (None,)
    assert read[0] in (allowed if fits else (es.InvalidEventError,)), (token, read)
    subscribed = await _verdict(_subscribe_call(s.store, token))
    assert subscribed[0] is (None if fits else es.InvalidEventError), (token, subscribed)
    saved = await _verdict(lambda: s.store.save_checkpoint(name, token))
    if token is None:
        assert saved[0] is es.InvalidEventError
    else:
        assert saved[0] is (None if fits else es.InvalidEventError), (token, saved)
    loaded = await s.store.load_checkpoint(name)
    assert loaded == (parsed if fits and parsed is not None else real)
    await s.store.save_checkpoint(name, real)


def _subscribe_call(store: es.EventStore, token: Any) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        subscription = store.subscribe(after=token)
        await subscription.close()

    return call


_FILTER_ENTRIES = st.one_of(st.none(), st.lists(st.one_of(_TEXT, _NAMES), max_size=3), _TEXT)


def test_any_filter_gets_the_core_verdict(
    eventstore_url: str, request: pytest.FixtureRequest
) -> None:
    """Arbitrary event types and categories in an ``EventFilter``: the core's verdict, and an
    accepted filter reads (nothing of ours matches a random filter but our own type)."""
    with _session(eventstore_url) as s:
        stream = s.stream()
        marker = s.run(s.store.append(stream, [es.NewEvent("T", {})])).position

        @_SETTINGS
        @given(types=_FILTER_ENTRIES, categories=_FILTER_ENTRIES)
        def check(types: Any, categories: Any) -> None:
            s.run_example(_check_filter(s, types, categories, marker))

        check()
        request.node.user_properties.append(("hypothesis_examples", s.examples))


async def _check_filter(s: _Session, types: Any, categories: Any, marker: es.Position) -> None:
    async def read(store: es.EventStore, after: es.Position | None) -> list[es.RecordedEvent]:
        event_filter = es.EventFilter(event_types=types, categories=categories)
        return await collect(store.read_all(after=after, filter=event_filter, limit=5))

    got = await _verdict(lambda: read(s.store, marker))
    ref = await _verdict(lambda: read(s.reference, None))
    _agree(got, ref, "read_all(filter=...)")


def test_any_snapshot_gets_the_core_verdict_and_reads_back_exactly(
    eventstore_url: str, request: pytest.FixtureRequest
) -> None:
    """Arbitrary snapshots: the core's verdict, nothing saved on refusal, exact read-back."""
    with _session(eventstore_url) as s:
        if not s.store.capabilities.snapshots:
            pytest.skip("the store declares no snapshots")

        @_SETTINGS
        @given(stream=st.one_of(st.none(), _NAMES), version=_VERSIONS, type=_NAMES, data=_DATA)
        def check(stream: Any, version: Any, type: Any, data: Any) -> None:
            s.run_example(_check_snapshot(s, stream, version, type, data))

        check()
        request.node.user_properties.append(("hypothesis_examples", s.examples))


async def _check_snapshot(s: _Session, stream: Any, version: Any, kind: Any, data: Any) -> None:
    target = s.stream() if stream is None else stream
    snapshot = es.Snapshot(target, version, kind, data)
    got = await _verdict(lambda: s.store.save_snapshot(snapshot))
    ref = await _verdict(lambda: s.reference.save_snapshot(snapshot))
    _agree(got, ref, "save_snapshot")
    if stream is not None:
        return  # a name shared between examples: its latest snapshot depends on the order
    loaded = await s.store.load_snapshot(target)
    if got[0] is not None:
        assert loaded is None, "a refused snapshot was saved"
        return
    assert loaded is not None
    assert (loaded.version, loaded.type) == (version, kind)
    assert _same(dict(loaded.data), _normalised(dict(data)))
