"""Fault injection for the conformance suite: a TCP proxy that loses answers, and restarts.

Server backends are reached over TCP. The suite puts :class:`FaultProxy` between the store and
its server to lose the answer to a write that the server received (and committed), to refuse
reconnections, or to cut every connection at once; and it asks the project's harness to
restart its own server (:func:`eventstore_restartable`). Nothing here knows a backend: the
fixtures below find the server's endpoint in the store URL and point a copy of the URL at the
proxy, and a project whose URLs say it differently overrides them.

Fixtures (override them in your ``conftest.py``):

- ``eventstore_endpoint`` — ``(host, port)`` of the server the store talks to, or None for a
  store with no network endpoint (fault tests then skip). Default: the ``endpoint_url`` query
  parameter if present, else the URL's own host and port.
- ``eventstore_url_through`` — a function ``(url, host, port) -> url`` that points ``url`` at
  another endpoint. Default: rewrite whichever part ``eventstore_endpoint`` read.
- ``eventstore_proxy`` — a running :class:`FaultProxy` and the URL through it, per test.
- ``eventstore_restartable`` — a :class:`Restartable` server of the project's own (its URL
  and a function that restarts it), or None (restart tests skip). Default: None.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

__all__ = [
    "FaultProxy",
    "ProxiedStore",
    "Restartable",
    "eventstore_endpoint",
    "eventstore_proxy",
    "eventstore_restartable",
    "eventstore_url_through",
]


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

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, doomed: asyncio.Event
    ) -> None:
        while chunk := await reader.read(65536):
            if doomed.is_set():
                with self._lock:
                    self.answers_lost += 1
                    if self._then_refuse:
                        self._refusing = True
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


def _endpoint_of(url: str) -> tuple[str, int] | None:
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
    return _endpoint_of(eventstore_url)


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
