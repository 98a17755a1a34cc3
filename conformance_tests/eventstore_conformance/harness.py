"""What every conformance test is built on: the ``store_test`` decorator and the context.

Each test is written as ``async def`` but collected as a plain function: :func:`store_test`
wraps it so that it runs in a fresh event loop of its own, with an opened store on which
``setup()`` was done. The suite therefore works whatever the user's pytest-asyncio
configuration (or without pytest-asyncio at all), and no loop outlives a test.

A test receives, by parameter name:

- ``store``: the opened :class:`~eventstore_core.EventStore` under test;
- ``ctx``: a :class:`StoreContext` (unique stream ids, markers, extra connections);
- any other parameter is an ordinary pytest fixture or ``parametrize`` argument.

Isolation: the store may be shared by every test (a real server, several runs), so a test only
ever looks at streams it named itself (:meth:`StoreContext.stream`, unique per call) and reads
the global log after a marker event it appended itself, or filtered by its own category.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import pytest

import eventstore_core as es

__all__ = [
    "CLOSE_TIMEOUT",
    "MARKER_NAME",
    "THREAD_GRACE",
    "StoreContext",
    "budget",
    "collect",
    "extend_deadline",
    "open_fd_count",
    "requires",
    "store_test",
    "thread_count",
    "wait_for",
]

#: The marker that :func:`requires` applies; the plugin evaluates it against capabilities.
MARKER_NAME = "eventstore_requires"

_INJECTED = ("store", "ctx")
_T = TypeVar("_T")

#: Seconds the runner gives the stores of a test to close; a store whose close() hangs fails
#: the test instead of hanging it.
CLOSE_TIMEOUT = 10.0
#: Seconds a thread started during a test may take to end once its stores are closed.
THREAD_GRACE = 2.0

#: When the running test must be over (``time.monotonic()``), set by the runner.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "eventstore_conformance_deadline", default=None
)
#: The running test's timeout, so that :func:`extend_deadline` can move it.
_TIMEOUT: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "eventstore_conformance_timeout", default=None
)


def requires(**capabilities: Any) -> pytest.MarkDecorator:
    """Mark a test as valid only when the store declares ``capabilities``.

    ``@requires(concurrency="multi-writer")``: when ``store.capabilities`` falls short (as
    :meth:`eventstore_core.Capabilities.shortfalls` decides), the test still runs, as
    ``xfail(strict=True)``: a backend that declares less than it delivers fails the suite, so
    declarations never go stale. Structural limits, where running is meaningless
    (``shared_across_processes``, ``durable``), skip instead, with the reason.
    """
    mark: pytest.MarkDecorator = pytest.mark.eventstore_requires(**capabilities)
    return mark


class StoreContext:
    """Per-test helpers: unique names, a marker in the global log, extra connections."""

    def __init__(self, url: str, store: es.EventStore) -> None:
        self.url = url
        self.store = store
        #: A category no other test (or run) uses: ``Conf`` and 16 hex digits, no ``-``.
        self.category = "Conf" + uuid.uuid4().hex[:16]
        self._extra: list[es.EventStore] = []

    @property
    def capabilities(self) -> es.Capabilities:
        """The capabilities of the store under test."""
        return self.store.capabilities

    def stream(self, category: str | None = None) -> str:
        """A stream id nobody else uses, in ``category`` (default: this test's category)."""
        return f"{category or self.category}-{uuid.uuid4().hex}"

    async def connect(self, **options: Any) -> es.EventStore:
        """Open another store on the same URL (``options`` as keyword options to ``connect``).

        It is closed when the test ends. Two stores on one URL see the same events, like two
        processes would, so this is how a test gets a second connection.
        """
        store = es.connect(self.url, **options)
        await store.open()
        self._extra.append(store)
        return store

    async def marker(self, store: es.EventStore | None = None) -> es.Position:
        """Append a marker event to a fresh stream; return its position.

        Reading the global log after it sees only what was committed later, without assuming
        the store was empty.
        """
        result = await (store or self.store).append(
            self.stream("ConfMarker"), [es.NewEvent("ConformanceMarker", {})]
        )
        return result.position

    async def ours(
        self, after: es.Position | str | None, store: es.EventStore | None = None
    ) -> list[es.RecordedEvent]:
        """Every event of this test's category after ``after``, in global order."""
        return await collect(
            (store or self.store).read_all(
                after=after, filter=es.EventFilter(categories=[self.category])
            )
        )

    async def aclose(self) -> None:
        """Close the extra stores (the main store is closed by the runner)."""
        for store in reversed(self._extra):
            await store.close()
        self._extra.clear()


async def collect(events: AsyncIterator[_T]) -> list[_T]:
    """Drain an async iterator into a list."""
    return [event async for event in events]


def extend_deadline(seconds: float) -> None:
    """Give the running test ``seconds`` more than ``--eventstore-timeout``.

    For time the test spends waiting on the harness rather than on the store (a server
    restart: a JVM starting on a loaded machine may take longer than the store's work).
    """
    deadline, timeout = _DEADLINE.get(), _TIMEOUT.get()
    if deadline is not None:
        _DEADLINE.set(deadline + seconds)
    when = None if timeout is None else timeout.when()
    if timeout is not None and when is not None:
        timeout.reschedule(when + seconds)


def budget(seconds: float) -> float:
    """``seconds``, or less when the test's ``--eventstore-timeout`` ends sooner.

    Every wait of the suite goes through this, so that with a short ``--eventstore-timeout`` a
    broken store fails at the wait that names what did not happen, within seconds, rather than
    at the runner's blanket timeout (or after minutes of generous waits).
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return seconds
    # Leave a little of the test's time for its own failure report and for closing.
    return max(0.05, min(seconds, deadline - time.monotonic() - 0.25))


async def wait_for(
    condition: Callable[[], bool], within: float, what: str, interval: float = 0.01
) -> None:
    """Wait until ``condition()`` is true; fail the test naming ``what`` after ``within`` s
    (or sooner, when the test's ``--eventstore-timeout`` ends first)."""
    within = budget(within)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


def open_fd_count() -> int | None:
    """How many file descriptors this process holds (None where that cannot be observed)."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    return None


def thread_count() -> int:
    """How many threads this process runs."""
    return threading.active_count()


def new_events(count: int, type: str = "ConformanceEvent", **data: Any) -> list[es.NewEvent]:
    """``count`` events with distinct ids, each with ``{"n": i, **data}`` as data."""
    return [es.NewEvent(type, {"n": i, **data}) for i in range(count)]


def ids_of(events: Iterable[es.RecordedEvent | es.NewEvent]) -> list[uuid.UUID]:
    """The ids of ``events``, in order."""
    return [event.id for event in events]


def assert_strictly_increasing(positions: Sequence[es.Position], what: str) -> None:
    """Fail unless every position is greater than the one before."""
    for before, after in itertools.pairwise(positions):
        assert before < after, f"{what}: position {after} does not come after {before}"


def store_test(
    body: Callable[..., Awaitable[None]],
) -> Callable[..., None]:
    """Turn ``async def test_...(store, ctx, other_fixtures...)`` into a collected sync test.

    The wrapper asks pytest for ``eventstore_url`` (and ``request``), runs the body in a new
    event loop with a store opened on that URL and ``setup()`` done, and closes everything
    after, within ``--eventstore-timeout`` seconds.
    """
    signature = inspect.signature(body)
    wanted = [name for name in signature.parameters if name in _INJECTED]
    fixtures = [p for name, p in signature.parameters.items() if name not in _INJECTED]
    extra = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name in ("eventstore_url", "request")
        if name not in signature.parameters
    ]
    body_wants_request = "request" in signature.parameters
    body_wants_url = "eventstore_url" in signature.parameters

    @functools.wraps(body)
    def wrapper(**kwargs: Any) -> None:
        url: str = kwargs["eventstore_url"] if body_wants_url else kwargs.pop("eventstore_url")
        request: pytest.FixtureRequest = (
            kwargs["request"] if body_wants_request else kwargs.pop("request")
        )
        timeout = float(request.config.getoption("eventstore_timeout", 60.0) or 60.0)
        threads_before = set(threading.enumerate())
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            runner.run(_run(body, url, wanted, kwargs, timeout))
        _check_no_thread_left(threads_before)

    # The wrapper is a plain function: no pytest-asyncio mode can claim it.
    del wrapper.__wrapped__
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*fixtures, *extra], return_annotation=None
    )
    return wrapper


async def _run(
    body: Callable[..., Awaitable[None]],
    url: str,
    wanted: Sequence[str],
    kwargs: dict[str, Any],
    limit: float,
) -> None:
    store = es.connect(url)
    ctx = StoreContext(url, store)
    _DEADLINE.set(time.monotonic() + limit)
    try:
        async with asyncio.timeout(limit) as deadline:
            _TIMEOUT.set(deadline)
            await store.open()
            await store.setup()
            injected = {"store": store, "ctx": ctx}
            await body(**{name: injected[name] for name in wanted}, **kwargs)
    except TimeoutError:
        if not deadline.expired():
            raise
        pytest.fail(f"the test did not finish within --eventstore-timeout={limit}s")
    finally:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await ctx.aclose()
                await store.close()
        except TimeoutError:
            pytest.fail(f"closing the store took longer than {CLOSE_TIMEOUT}s")


def _check_no_thread_left(before: set[threading.Thread]) -> None:
    """Fail if a thread started during the test outlives its stores (and its event loop).

    A leaked non-daemon thread (a driver connection never closed) would otherwise keep the
    whole test process from exiting; daemon threads are ignored (they cannot).
    """
    deadline = time.monotonic() + THREAD_GRACE
    left: list[threading.Thread] = []
    for thread in threading.enumerate():
        if thread in before or thread.daemon or not thread.is_alive():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    if left:
        names = ", ".join(sorted(thread.name for thread in left))
        pytest.fail(
            f"{len(left)} thread(s) still running after the store closed ({names}): a connection "
            "or worker was not released by close()",
            pytrace=False,
        )
