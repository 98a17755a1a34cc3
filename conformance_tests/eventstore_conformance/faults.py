"""Optional fault hooks: what an adapter's test harness may give the suite to provoke faults.

The suite can only observe a store from outside. Some faults cannot be provoked from outside
at will — a commit that lands after later ones, for instance — so the suite asks the
adapter's test harness for a *hook*, through a fixture the harness overrides. Where no hook is
provided, the tests that need one skip and the terminal summary says so: nothing passes
silently.

This module is loaded with the plugin (``-p eventstore_conformance``). Each section below is
one hook; sections are independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import eventstore_core as es

__all__ = [
    "HOLD_REPORT_KEY",
    "CommitGate",
    "FaultProxy",
    "HeldAppend",
    "HoldCommit",
    "HoldReport",
    "NotApplicable",
    "ProxiedStore",
    "Restartable",
    "endpoint_from_url",
    "eventstore_endpoint",
    "eventstore_hold_commit",
    "eventstore_proxy",
    "eventstore_restartable",
    "eventstore_url_through",
    "hold_append",
    "hold_summary",
    "not_applicable",
    "report_hold",
]


@dataclasses.dataclass(frozen=True)
class NotApplicable:
    """A hook the store has no use for, with the reason (reported in the summary)."""

    reason: str


def not_applicable(reason: str) -> NotApplicable:
    """Declare that a hook makes no sense for this store, and why."""
    if not reason.strip():
        raise ValueError("not_applicable needs a reason")
    return NotApplicable(reason)


# =============================================================================================
# Held commits: eventstore_hold_commit
# =============================================================================================
#
# A store whose global positions are assigned before commit (a sequence, a reserved counter)
# may commit position 7 after position 8 was committed and read. A reader that moves past 8
# then never sees 7 unless the store prevents it (PostgreSQL's snapshot gate, DynamoDB's
# filled reservations). Racing writers meet that window only by chance; the hook opens it on
# purpose: it holds one append open after its positions are assigned and before it commits,
# while later appends commit, and the suite checks that no reader, pager or subscriber skips
# the held events once they commit (test_out_of_order_commits.py).


@dataclasses.dataclass
class HeldAppend:
    """One append held by a :data:`HoldCommit` hook; ``result`` is set once it committed."""

    stream_id: str
    events: Sequence[es.NewEvent]
    result: es.AppendResult | None = None
    serialised: bool = False
    """True when the store's commits take turns (the hook holds their lock): later appends
    then wait for the held one, and the test does not wait for them to commit first."""


class HoldCommit(Protocol):
    """``hold(store, stream_id, events)``: an async context manager holding one append open.

    On entry it has started ``store.append(stream_id, events)`` *through the store's own write
    path* and returns once that append has its positions assigned and has not committed (the
    hook's business: an adapter seam, a proxied client, a lock held elsewhere); other appends,
    through this store or others, go on normally. On exit it lets the append commit, waits for
    it (failing the test if it does not finish within a few seconds) and sets
    :attr:`HeldAppend.result`. A store whose writers are serialised (a file lock) cannot
    commit out of order: its hook may hold the lock instead, and the test then checks only
    that nothing is lost (the summary says so).
    """

    def __call__(
        self, store: es.EventStore, stream_id: str, events: Sequence[es.NewEvent]
    ) -> AbstractAsyncContextManager[HeldAppend]: ...


@pytest.fixture
def eventstore_hold_commit() -> HoldCommit | NotApplicable | None:
    """The store's hold-commit hook (:class:`HoldCommit`); None by default.

    Override it in the adapter's ``conftest.py`` (or a plugin module loaded with ``-p``) to
    return a hook, or :func:`not_applicable` with the reason when appends can never be open
    while others commit (an in-process store whose appends do not await). With None the
    out-of-order-commit test skips and the terminal summary lists it as not run.
    """
    return None


class CommitGate:
    """The waiting point a hook puts between "positions assigned" and "commit".

    An adapter seam (or a proxied client) awaits :meth:`wait` at that point in the held
    append only; :func:`hold_append` sets :attr:`reached` and :attr:`released`.
    """

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.released = asyncio.Event()
        self.task: asyncio.Task[es.AppendResult] | None = None
        self._used = False

    def is_held(self) -> bool:
        """Whether the current task is the held append, not yet at its gate (a retry inside
        the adapter passes freely: only the first attempt is held)."""
        return self.task is not None and asyncio.current_task() is self.task and not self._used

    async def wait(self) -> None:
        """Called by the held append: report the point reached, wait for the release."""
        self._used = True
        self.reached.set()
        await self.released.wait()


@contextlib.asynccontextmanager
async def hold_append(
    store: es.EventStore,
    stream_id: str,
    events: Sequence[es.NewEvent],
    gate: CommitGate,
    *,
    within: float = 10.0,
    before: Callable[[], Awaitable[None]] | None = None,
    reached: Callable[[], Awaitable[None]] | None = None,
    release: Callable[[], Awaitable[None]] | None = None,
    serialised: bool = False,
) -> AsyncIterator[HeldAppend]:
    """Run ``store.append(stream_id, events)`` in a task, held at ``gate``; yield it held.

    The building block of a :data:`HoldCommit` hook: install the gate (make the adapter await
    ``gate.wait()`` when ``gate.is_held()``), then ``async with hold_append(...)``. By default
    entry waits for the append to reach the gate. A hook that holds something else (a lock)
    passes ``before`` (awaited before the append starts: take the lock), ``reached`` (awaited
    instead of the gate) and ``release`` (awaited on exit, before the append is awaited), and
    says ``serialised=True``. Every wait is bounded by ``within`` seconds.
    """
    held = HeldAppend(stream_id, list(events), serialised=serialised)
    if before is not None:
        async with asyncio.timeout(within):
            await before()
    task = asyncio.ensure_future(store.append(stream_id, events))
    gate.task = task
    try:
        async with asyncio.timeout(within):
            if reached is not None:
                await reached()
            else:
                waiting = asyncio.ensure_future(gate.reached.wait())
                try:
                    await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()
                if not gate.reached.is_set():
                    task.result()  # the append failed: raise its error
                    pytest.fail("the hold-commit hook let the append commit without holding it")
    except TimeoutError:
        task.cancel()
        pytest.fail(f"the hold-commit hook did not hold the append within {within}s")
    try:
        yield held
    finally:
        gate.released.set()
        if release is not None:
            await release()
        try:
            async with asyncio.timeout(within):
                held.result = await task
        except TimeoutError:
            task.cancel()
            pytest.fail(f"the held append did not commit within {within}s of its release")


@dataclasses.dataclass(frozen=True)
class HoldReport:
    """What one run of the out-of-order-commit test found (for the terminal summary)."""

    test: str
    outcome: str


#: Reports of the out-of-order-commit test, in run order.
HOLD_REPORT_KEY = pytest.StashKey[list[HoldReport]]()


def report_hold(config: pytest.Config, test: str, outcome: str) -> None:
    """Record what the out-of-order-commit test found, for the terminal summary."""
    config.stash.setdefault(HOLD_REPORT_KEY, []).append(HoldReport(test, outcome))


def hold_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Write the out-of-order-commit section of the terminal summary."""
    reports = terminalreporter.config.stash.get(HOLD_REPORT_KEY, [])
    if not reports:
        return
    terminalreporter.section("eventstore conformance: out-of-order commits")
    for report in reports:
        terminalreporter.write_line(f"{report.test}: {report.outcome}")


# =============================================================================================
# Lost answers and restarts: eventstore_proxy, eventstore_endpoint, eventstore_url_through,
# eventstore_restartable
# =============================================================================================
#
# Fault injection for the conformance suite: a TCP proxy that loses answers, and restarts.
#
# Server backends are reached over TCP. The suite puts :class:`FaultProxy` between the store and
# its server to lose the answer to a write that the server received (and committed), to refuse
# reconnections, or to cut every connection at once; and it asks the project's harness to
# restart its own server (:func:`eventstore_restartable`). Nothing here knows a backend: the
# fixtures below find the server's endpoint in the store URL and point a copy of the URL at the
# proxy, and a project whose URLs say it differently overrides them.
#
# Fixtures (override them in your ``conftest.py``):
#
# - ``eventstore_endpoint`` — ``(host, port)`` of the server the store talks to, or None for a
#   store with no network endpoint (fault tests then skip). Default: the ``endpoint_url`` query
#   parameter if present, else the URL's own host and port.
# - ``eventstore_url_through`` — a function ``(url, host, port) -> url`` that points ``url`` at
#   another endpoint. Default: rewrite whichever part ``eventstore_endpoint`` read.
# - ``eventstore_proxy`` — a running :class:`FaultProxy` and the URL through it, per test.
# - ``eventstore_restartable`` — a :class:`Restartable` server of the project's own (its URL
#   and a function that restarts it), or None (restart tests skip). Default: None.


class FaultProxy:
    """A TCP proxy to ``(host, port)``, run in a thread of its own, that can misbehave.

    Bytes flow unchanged both ways until told otherwise:

    - :meth:`lose_answer_after` — once the client sends bytes containing one of the markers
      (say, an event id in the form the driver sends it), the next bytes the server sends on
      that connection are dropped and the connection is cut: the request arrived, the answer
      never does. With ``then_refuse``, new connections are refused from then on.
    - :meth:`refuse` — new connections are accepted and closed at once.
    - :meth:`cut_all` — every open connection is closed now (a network blip, a failover).

    Its own thread and event loop keep it independent of the test's loop, which the store
    under test may block or cancel.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.host = "127.0.0.1"
        self.port = 0
        #: Answers dropped so far.
        self.answers_lost = 0
        #: Connections accepted so far (refused ones included).
        self.connections = 0
        self._markers: tuple[bytes, ...] = ()
        self._then_refuse = False
        self._refusing = False
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[object]] = set()

    # -- control (from any thread) ----------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen on a free port of 127.0.0.1 (``self.port``)."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=10)
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def lose_answer_after(self, *markers: bytes, then_refuse: bool = False) -> None:
        """Arm: lose the answer to the next request that contains any of ``markers``."""
        with self._lock:
            self._markers = tuple(m for m in markers if m)
            self._then_refuse = then_refuse

    def refuse(self, refusing: bool = True) -> None:
        """Refuse (or, with False, accept again) new connections."""
        with self._lock:
            self._refusing = refusing

    def cut_all(self) -> None:
        """Close every open connection now."""
        asyncio.run_coroutine_threadsafe(self._cut_all(), self._loop).result(timeout=10)

    # -- the proxy's own loop ----------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut_all()
        # Cut connections end their handlers by themselves. A handler cancelled instead would
        # be logged as an error by asyncio's start_server callback on Python 3.11 (it asks a
        # cancelled task for its exception), with a traceback formatted on this thread.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _cut_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        with self._lock:
            self.connections += 1
            refusing = self._refusing
        if refusing:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        doomed = asyncio.Event()
        upstream = asyncio.ensure_future(self._upstream(client_r, server_w, doomed))
        downstream = asyncio.ensure_future(self._downstream(server_r, client_w, doomed))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upstream, downstream):
                task.cancel()
            for writer in (client_w, server_w):
                writer.transport.abort()
                self._writers.discard(writer)
            # Retrieved: a pump that failed (a reset connection) is no error of the proxy.
            await asyncio.gather(upstream, downstream, return_exceptions=True)

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        tail = b""  # the end of the previous chunk: a marker may straddle two reads
        while chunk := await reader.read(65536):
            with self._lock:
                markers = self._markers
                if markers and any(m in tail + chunk for m in markers):
                    self._markers = ()
                    doomed.set()
            tail = chunk[-64:]
            writer.write(chunk)
            await writer.drain()

    def _lose_answer(self) -> None:
        """Count an answer dropped on its way back (and refuse reconnects if asked to)."""
        with self._lock:
            self.answers_lost += 1
            if self._then_refuse:
                self._refusing = True

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        while chunk := await reader.read(65536):
            if doomed.is_set():
                self._lose_answer()
                return  # the answer is dropped; _handle cuts both sides
            writer.write(chunk)
            await writer.drain()


@dataclass(frozen=True)
class ProxiedStore:
    """A store URL that goes through ``proxy``."""

    url: str
    proxy: FaultProxy


@dataclass(frozen=True)
class Restartable:
    """A server of the project's harness, for restart tests: its store URL and a restart.

    ``restart()`` is called from a worker thread while the test's loop keeps running; it
    returns once the server accepts connections again.
    """

    url: str
    restart: Callable[[], None]


def endpoint_from_url(url: str) -> tuple[str, int] | None:
    """The server a store URL names: its ``endpoint_url`` parameter, or its host and port."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "endpoint_url" in query:
        inner = urlsplit(query["endpoint_url"])
        if inner.hostname and inner.port:
            return inner.hostname, inner.port
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.hostname and port:
        return parts.hostname, port
    return None


def _with_endpoint(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "endpoint_url" for key, _ in pairs):
        rewritten = []
        for key, value in pairs:
            if key == "endpoint_url":
                inner = urlsplit(value)
                value = urlunsplit(inner._replace(netloc=f"{host}:{port}"))
            rewritten.append((key, value))
        return urlunsplit(parts._replace(query=urlencode(rewritten, safe=":/")))
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="session")
def eventstore_endpoint(eventstore_url: str) -> tuple[str, int] | None:
    """``(host, port)`` of the store's server, or None when it has no network endpoint."""
    return endpoint_from_url(eventstore_url)


@pytest.fixture(scope="session")
def eventstore_url_through() -> Callable[[str, str, int], str]:
    """A function that points a store URL at another ``host`` and ``port``."""
    return _with_endpoint


@pytest.fixture
def eventstore_proxy(
    eventstore_url: str,
    eventstore_endpoint: tuple[str, int] | None,
    eventstore_url_through: Callable[[str, str, int], str],
) -> Iterator[ProxiedStore]:
    """A :class:`FaultProxy` in front of the store's server, and the URL through it."""
    if eventstore_endpoint is None:
        pytest.skip("the store has no network endpoint to put a proxy in front of")
    proxy = FaultProxy(*eventstore_endpoint).start()
    try:
        yield ProxiedStore(eventstore_url_through(eventstore_url, proxy.host, proxy.port), proxy)
    finally:
        proxy.stop()


@pytest.fixture
def eventstore_restartable() -> Restartable | None:
    """A server the test may restart (override in the project's ``conftest.py``); None skips."""
    return None
