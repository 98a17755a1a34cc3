"""Settings, URLs and options: everything ``connect`` checks before any I/O."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eventstore_core.errors import ConfigurationError
from eventstore_core.redaction import password_span, redact_url

__all__ = [
    "DEFAULT_URL",
    "ParsedUrl",
    "StoreOptions",
    "configured_url",
    "parse_options",
    "parse_url",
]

#: The embedded default, used when neither a URL nor ``EVENTSTORE_URL`` is given.
DEFAULT_URL = "sqlite:///./eventstore.db"


@functools.cache
def _settings_class() -> type[Any]:
    # pydantic-settings is imported on first use, not with the package: it took about a third
    # of `import eventstore_core` (~100 ms of ~360 ms) and is needed only when connect() gets
    # no URL.
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings):
        """Environment settings: ``EVENTSTORE_URL`` chooses the store when none is given."""

        model_config = SettingsConfigDict(env_prefix="EVENTSTORE_", extra="ignore")

        url: str = DEFAULT_URL

    Settings.__module__ = __name__
    return Settings


def configured_url() -> str:
    """The store URL from the environment (``EVENTSTORE_URL``), else :data:`DEFAULT_URL`."""
    url: str = _settings_class()().url
    return url


def __getattr__(name: str) -> Any:
    # ``Settings`` (the pydantic-settings model) is built on first access; see above.
    if name == "Settings":
        return _settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StoreOptions(BaseModel):
    """Options every backend takes. Backends subclass this to add their own.

    Options come from the URL's query string and from keyword arguments to ``connect``
    (keywords win). Unknown options are an error, so a typo never goes unnoticed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int = Field(default=500, ge=1, le=100_000)
    """How many events one read fetches from storage; bounds a reader's memory."""
    poll_interval: float = Field(default=1.0, gt=0, le=3600)
    """Seconds between a live subscription's fallback polls, when no wake-up arrives."""
    reconnect_timeout: float = Field(default=60.0, ge=0, le=86_400)
    """Seconds a subscription keeps retrying a lost backend before it raises."""
    require: dict[str, Any] = Field(default_factory=dict)
    """Capabilities the store must have (``connect`` fails at once otherwise)."""


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A store URL split into its parts; ``query`` holds the query-string options."""

    url: str
    scheme: str
    base_scheme: str
    """The scheme without a ``+suffix`` (``esdb+discover`` -> ``esdb``)."""
    username: str | None
    password: str | None
    host: str | None
    """The host; for a multi-host URL (``h1:5432,h2:5433``), the whole list as written."""
    port: int | None
    path: str
    query: dict[str, str]

    @property
    def redacted(self) -> str:
        """The URL with secrets masked, safe for logs and ``repr``."""
        return redact_url(self.url)


def parse_url(url: object) -> ParsedUrl:
    """Split a store URL, raising :class:`ConfigurationError` if it is not one."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"a store URL must be a non-empty str, got {url!r}")
    # The parser's own messages may quote the raw authority (the password with it), so none
    # is passed on: each refusal says what is wrong in words of its own.
    span = password_span(url)
    encode_hint = (
        "percent-encode any '/', '?', '#', '@' or ':' in the user name or password "
        "(%2F, %3F, %23, %40, %3A)"
    )
    host: str | None
    try:
        parts = urlsplit(url)
        hostlist = parts.netloc.rpartition("@")[2]
        if "," in hostlist:
            # libpq's multi-host form (postgresql://h1:5432,h2:5433/db) has no single host and
            # port; ``host`` keeps the list as written, for the backend to parse.
            host, port = hostlist, None
        else:
            host, port = parts.hostname, parts.port
    except ValueError:
        why = "the port is not a number" if span is None else "the password looks unencoded"
        raise ConfigurationError(
            f"invalid store URL {redact_url(url)!r}: {why}; {encode_hint}"
        ) from None
    if (
        span is not None
        and "@" in parts.netloc
        and url[span[0] : span[1]] != _raw_password(parts.netloc)
    ):
        # A raw '/', '?' or '#' in the password made the parser end the authority early.
        raise ConfigurationError(
            f"invalid store URL {redact_url(url)!r}: the password looks unencoded; {encode_hint}"
        )
    if not parts.scheme or "://" not in url:
        raise ConfigurationError(
            f"invalid store URL {redact_url(url)!r}: expected scheme://..., "
            "for example sqlite:///./eventstore.db or postgresql://user@host/db"
        )
    scheme = parts.scheme.lower()
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise ConfigurationError(f"option {key!r} appears twice in the URL")
        query[key] = value
    return ParsedUrl(
        url=url,
        scheme=scheme,
        base_scheme=scheme.split("+", 1)[0],
        username=parts.username,
        password=parts.password,
        host=host,
        port=port,
        path=parts.path,
        query=query,
    )


def _raw_password(netloc: str) -> str:
    userinfo = netloc.rpartition("@")[0]
    return userinfo.partition(":")[2]


def parse_options(
    model: type[StoreOptions], query: Mapping[str, str], keywords: Mapping[str, Any]
) -> StoreOptions:
    """Validate query-string and keyword options against a backend's options model."""
    merged: dict[str, Any] = {**query, **keywords}
    try:
        return model.model_validate(merged)
    except ValidationError as error:
        problems = "; ".join(_problem(model, e) for e in error.errors())
        raise ConfigurationError(f"invalid options for {model.__name__}: {problems}") from None


def _option_names(model: type[StoreOptions]) -> list[str]:
    # The names a URL uses: an option's alias (schema), else its field name.
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _problem(model: type[StoreOptions], error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "options"
    if error["type"] != "extra_forbidden":
        return f"{where}: {error['msg']}"
    # A typo: say which option was meant, or list them all.
    names = _option_names(model)
    close = difflib.get_close_matches(where, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known options: {', '.join(names)}"
    return f"unknown option {where!r} ({hint})"
