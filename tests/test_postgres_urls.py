"""PostgreSQL store URLs in libpq's own forms, and what a wrong one says, on a real server.

Every form here is one libpq documents and ``psql`` accepts: a Unix-socket directory as
``host``, several hosts, ``target_session_attrs``, server settings through ``options``. The
adapter's own options (``schema``...) sit in the same query string and still apply.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

import eventstore_core as es

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _with(url: str, *, netloc: str | None = None, **query: str) -> str:
    """``url`` with another netloc and/or these query parameters."""
    parts = urlsplit(url)
    return urlunsplit(
        (
            parts.scheme,
            parts.netloc if netloc is None else netloc,
            parts.path,
            urlencode(query, quote_via=quote),
            "",
        )
    )


def _userinfo(url: str) -> str:
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[0] + "@" if "@" in netloc else ""


def _schema() -> str:
    return f"u_{uuid.uuid4().hex[:12]}"


async def _round_trip(url: str) -> None:
    """Set up, append and read back through ``url``: the connection really works."""
    async with es.connect(url) as store:
        await store.setup()
        stream = f"Url-{uuid.uuid4().hex[:8]}"
        await store.append(stream, [es.NewEvent("Connected", {"via": url})])
        events = [event async for event in store.read_stream(stream)]
        assert [event.type for event in events] == ["Connected"]


@pytest.fixture(scope="session")
async def server(postgres_url: str) -> dict[str, str]:
    """What the tests need to know of the session's server, asked of the server itself."""
    conn = await asyncpg.connect(postgres_url)
    try:
        info = {
            "socket_dirs": await conn.fetchval("SHOW unix_socket_directories"),
            "port": str(await conn.fetchval("SHOW port")),
            "ssl": await conn.fetchval("SHOW ssl"),
        }
    finally:
        await conn.close()
    return info


# -- the forms ---------------------------------------------------------------------------------


async def test_a_unix_socket_directory_given_as_host_connects(
    postgres_url: str, server: dict[str, str]
) -> None:
    directory = server["socket_dirs"].split(",")[0].strip()
    if not directory or not os.path.isdir(directory):  # noqa: ASYNC240 (a stat, once)
        pytest.skip(f"the server's socket directory {directory!r} is not on this machine")
    # postgresql://user@/db?host=/dir: no host in the authority, the directory in the query.
    url = _with(
        postgres_url,
        netloc=_userinfo(postgres_url),
        host=directory,
        port=server["port"],
        schema=_schema(),
    )
    assert "@/" in url
    await _round_trip(url)


async def test_options_reach_the_server_and_the_adapters_own_options_still_apply(
    postgres_url: str,
) -> None:
    schema = _schema()
    async with es.connect(postgres_url, schema=schema) as store:
        await store.setup()
    # A server setting at connection start that the API can observe: read-only sessions.
    url = _with(postgres_url, options="-c default_transaction_read_only=on", schema=schema)
    async with es.connect(url) as store:
        assert store.options.model_dump()["db_schema"] == schema
        assert await store.stream_version("Order-1") == 0  # reads work, in our schema
        with pytest.raises(es.EventStoreError, match="25006"):  # read_only_sql_transaction
            await store.append("Order-1", [es.NewEvent("Refused", {})])


async def test_target_session_attrs_chooses_the_server(postgres_url: str) -> None:
    await _round_trip(_with(postgres_url, target_session_attrs="read-write", schema=_schema()))
    # The test server is a primary: asking for a standby finds none.
    url = _with(postgres_url, target_session_attrs="standby", schema=_schema())
    with pytest.raises(es.BackendUnavailableError, match="target attribute"):
        async with es.connect(url, connect_timeout=5):
            pass


async def test_libpq_parameters_may_be_given_as_keywords_too(postgres_url: str) -> None:
    async with es.connect(postgres_url, target_session_attrs="primary", schema=_schema()) as s:
        await s.setup()


async def test_a_multi_host_url_goes_on_to_the_next_host(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    host = parts.hostname
    if host is None or parts.port is None:
        pytest.skip("the test server's URL has no host and port")
    # Nothing listens on port 1 of the loopback: the first host refuses at once.
    netloc = f"{_userinfo(postgres_url)}127.0.0.1:1,{host}:{parts.port}"
    url = _with(postgres_url, netloc=netloc, schema=_schema())
    assert store_host(url) == f"127.0.0.1:1,{host}:{parts.port}"
    await _round_trip(url)


def store_host(url: str) -> str | None:
    from eventstore_core.config import parse_url

    return parse_url(url).host


# -- what a wrong URL says ---------------------------------------------------------------------


async def test_a_mistyped_option_is_refused_before_any_connection() -> None:
    with pytest.raises(
        es.ConfigurationError, match=r"unknown option 'shema' \(did you mean 'schema'\?\)"
    ):
        es.connect("postgresql://nobody@127.0.0.1:1/nodb?shema=x")


async def test_a_refused_connection_says_refused_not_lost() -> None:
    with pytest.raises(es.BackendUnavailableError, match="refused the connection") as caught:
        async with es.connect("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=5):
            pass
    assert "lost" not in str(caught.value)


async def test_tls_refused_by_the_server_is_a_configuration_error(
    postgres_url: str, server: dict[str, str]
) -> None:
    if server["ssl"] == "on":
        pytest.skip("this server accepts TLS")
    with pytest.raises(es.ConfigurationError, match="refused TLS"):
        async with es.connect(_with(postgres_url, sslmode="require")):
            pass


async def test_a_missing_database_is_a_configuration_error(postgres_url: str) -> None:
    url = urlunsplit(urlsplit(postgres_url)._replace(path="/no_such_database", query=""))
    with pytest.raises(es.ConfigurationError, match=r"3D000.*no_such_database"):
        async with es.connect(url):
            pass


async def test_a_missing_role_is_a_configuration_error(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    netloc = f"no_such_role@{parts.netloc.rpartition('@')[2]}"
    with pytest.raises(es.ConfigurationError, match=r"28000.*no_such_role"):
        async with es.connect(urlunsplit(parts._replace(netloc=netloc))):
            pass


async def test_reading_a_store_that_is_not_set_up_says_so(postgres_url: str) -> None:
    async with es.connect(postgres_url, schema=_schema()) as store:
        with pytest.raises(es.EventStoreError, match="not set up") as caught:
            await store.stream_version("Order-1")
    assert not isinstance(caught.value, es.BackendUnavailableError)
