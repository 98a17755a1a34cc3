"""connect(): URL resolution, options, the environment default, requirements and redaction."""

from __future__ import annotations

import pytest

import eventstore_core as es
from eventstore_core.config import parse_url
from eventstore_core.redaction import redact_url
from eventstore_core.registry import available_schemes, load_backend


def test_connect_without_url_or_environment_opens_the_embedded_sqlite_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EVENTSTORE_URL", raising=False)
    store = es.connect()
    assert type(store).__name__ == "SQLiteEventStore"
    assert store.url == es.DEFAULT_URL == "sqlite:///./eventstore.db"
    assert not store.is_open


def test_connect_without_url_reads_eventstore_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTORE_URL", "memory://from-env")
    assert type(es.connect()).__name__ == "MemoryEventStore"


def test_query_string_parameters_are_options_and_keywords_win() -> None:
    store = es.connect("memory://?page_size=7&poll_interval=0.5", page_size=9)
    assert store.options.page_size == 9
    assert store.options.poll_interval == 0.5


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("memory://?page_sise=7", {}, "page_sise"),
        ("memory://", {"page_size": 0}, "page_size"),
        ("memory://?page_size=many", {}, "page_size"),
        ("memory://?page_size=1&page_size=2", {}, "appears twice"),
        ("nowhere", {}, "scheme://"),
        ("", {}, "non-empty"),
    ],
)
def test_bad_options_and_urls_raise_configuration_error_naming_the_problem(
    url: str, options: dict[str, object], needle: str
) -> None:
    with pytest.raises(es.ConfigurationError, match=needle):
        es.connect(url, **options)


def test_unknown_scheme_names_the_installed_schemes() -> None:
    with pytest.raises(es.ConfigurationError, match=r"no backend .*'mongodb'.*memory"):
        es.connect("mongodb://localhost/db")


def test_known_but_missing_backend_gives_the_pip_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventstore_core import registry

    installed = dict(registry._entry_points())
    del installed["dynamodb"]
    monkeypatch.setattr(registry, "_entry_points", lambda: installed)
    with pytest.raises(es.ConfigurationError, match=r'pip install "eventstore-core\[dynamodb\]"'):
        es.connect("dynamodb://events?region=eu-west-1")


def test_a_scheme_without_an_extra_gets_no_install_hint_for_a_missing_extra() -> None:
    # No extra is declared for a scheme no adapter of this distribution serves: the error
    # must not send the user to install something that does not exist.
    with pytest.raises(es.ConfigurationError) as caught:
        es.connect("nosuchstore://localhost/x")
    assert "eventstore-core[" not in str(caught.value)


def test_builtin_backends_register_through_the_entry_point_group() -> None:
    schemes = available_schemes()
    for scheme in ("memory", "sqlite", "postgresql", "postgres", "dynamodb"):
        assert scheme in schemes
    assert issubclass(load_backend("memory"), es.EventStore)


def test_require_raises_unsupported_operation_before_any_io() -> None:
    with pytest.raises(es.UnsupportedOperationError, match="shared_across_processes"):
        es.connect("memory://", require={"shared_across_processes": True})
    with pytest.raises(es.UnsupportedOperationError, match="live_subscriptions is 'poll'"):
        es.connect("sqlite:///./x.db", require={"live_subscriptions": "push"})
    with pytest.raises(es.UnsupportedOperationError, match="unknown capability"):
        es.connect("memory://", require={"speed": "fast"})


def test_require_is_met_by_a_stronger_guarantee() -> None:
    store = es.connect(
        "sqlite:///./x.db",
        require={"concurrency": "multi-writer", "idempotency": "window", "max_event_bytes": 10},
    )
    assert store.capabilities.idempotency == "permanent"


def test_capabilities_are_frozen_and_readable_before_open() -> None:
    store = es.connect("memory://")
    with pytest.raises(AttributeError):
        store.capabilities.concurrency = "single-writer"  # type: ignore[misc]
    assert store.capabilities.global_order == "total"


@pytest.mark.parametrize(
    ("url", "hidden", "kept"),
    [
        ("postgresql://app:s3cret@db.example/app", "s3cret", "app:***@db.example"),
        ("dynamodb://T?aws_secret_access_key=abc123&region=eu-west-1", "abc123", "region=eu"),
        ("kafka://h:9092/t?sasl_password=pw9", "pw9", "h:9092"),
    ],
)
def test_redaction_masks_passwords_and_secret_parameters(url: str, hidden: str, kept: str) -> None:
    redacted = redact_url(url)
    assert hidden not in redacted
    assert kept in redacted


@pytest.mark.parametrize("raw", ["SeC#rEt", "SeC?rEt", "SeC/rEt", "p@ss#w/rd?x", "12#rEt"])
def test_a_password_with_raw_reserved_characters_never_shows(raw: str) -> None:
    """An unencoded '#', '?' or '/' ends a URL's authority for a standard parser; the password
    is still masked whole, in the error that refuses the URL or in the store's repr."""
    url = f"postgresql://app:{raw}@db.example:5432/app"
    pieces = [raw, *raw.replace("#", " ").replace("?", " ").replace("/", " ").split()]
    shown: list[str] = [redact_url(url)]
    try:
        store = es.connect(url)
    except es.ConfigurationError as error:
        shown.append(str(error))
        hinted = "percent-encode" in str(error)
        assert hinted, error  # noqa: PT017 - the message is what this test is about
    else:
        shown += [repr(store), store.url]
    for text in shown:
        for piece in pieces:
            if len(piece) > 2:  # "12" alone could be a port number
                assert piece not in text, f"{piece!r} shows in {text!r}"


def test_a_port_and_an_at_sign_further_on_are_masked_rather_than_risked() -> None:
    assert redact_url("postgresql://host:5432/db?x=a@b") == "postgresql://host:***@b"
    assert redact_url("postgresql://u:pw@h:5432/db?x=a") == "postgresql://u:***@h:5432/db?x=a"
    assert redact_url("sqlite:///./x@y.db") == "sqlite:///./x@y.db"


def test_store_repr_never_shows_the_password() -> None:
    store = es.connect("postgresql://app:s3cret@localhost/app")
    assert "s3cret" not in repr(store)
    assert "s3cret" not in store.url


def test_parse_url_keeps_the_discover_suffix_apart() -> None:
    parsed = parse_url("esdb+discover://admin:changeit@cluster.local:2113?tls=false")
    assert (parsed.scheme, parsed.base_scheme) == ("esdb+discover", "esdb")
    assert parsed.port == 2113
    assert parsed.query == {"tls": "false"}


def test_sqlite_url_without_a_path_is_refused() -> None:
    with pytest.raises(es.ConfigurationError, match="file path"):
        es.connect("sqlite:///:memory:")
    with pytest.raises(es.ConfigurationError, match="not a host"):
        es.connect("sqlite://host/file.db")
