"""Keeping secrets out of ``repr`` and logs.

A password belongs percent-encoded in a URL, but people paste them raw: in
``postgresql://u:SeC#rEt@host/db`` a standard URL parser ends the authority at the ``#`` and
sees the password ``SeC``, the host ``u`` and a fragment ``rEt@host/db`` — and masking the
parsed "password" would leave ``rEt`` in view. So the password is found here, once, the way
its author meant it: from the first ``:`` of the authority to the *last* ``@`` after the
scheme. That over-masks a URL that has a port, no user, and an ``@`` further on
(``postgresql://host:5432/db?x=a@b`` shows as ``postgresql://host:***@b``), which is the
safe direction to err in. :func:`eventstore_core.config.parse_url` uses the same span to
refuse such URLs with a hint to percent-encode, never echoing them unmasked.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_secret_name", "password_span", "redact_url"]

_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth|sig", re.IGNORECASE)
_MASK = "***"
#: Where a standard parser ends the authority.
_AUTHORITY_END = re.compile(r"[/?#]")


def is_secret_name(name: str) -> bool:
    """Whether an option or parameter called ``name`` probably holds a secret."""
    return _SECRET_KEY.search(name) is not None


def password_span(url: str) -> tuple[int, int] | None:
    """The ``(start, end)`` indexes of the password in ``url``, raw characters and all.

    The user information ends at the last ``@`` after ``scheme://``; the password starts
    after the first ``:`` of the authority (as a standard parser sees it, since a user name
    with an unencoded ``/``, ``?`` or ``#`` is not a case worth guessing). None when the URL
    has no password.
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    at = url.rfind("@", start)
    if at < 0:
        return None
    match = _AUTHORITY_END.search(url, start)
    authority_end = match.start() if match else len(url)
    colon = url.find(":", start, min(at, authority_end))
    if colon < 0:
        return None
    return colon + 1, at


def redact_url(url: str) -> str:
    """Return ``url`` with its password and any secret-looking query parameter masked."""
    span = password_span(url)
    if span is not None:
        url = f"{url[: span[0]]}{_MASK}{url[span[1] :]}"
    try:
        parts = urlsplit(url)
    except ValueError:
        # Even the masked URL does not parse: show only what cannot hold a secret.
        return f"{url.split(':', 1)[0]}://<unparseable url>"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode(
                [(k, _MASK if is_secret_name(k) else v) for k, v in pairs], safe="*/:"
            )
            url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return url
