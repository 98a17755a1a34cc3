"""Keeping secrets out of ``repr`` and logs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_secret_name", "redact_url"]

_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth|sig", re.IGNORECASE)
_MASK = "***"


def is_secret_name(name: str) -> bool:
    """Whether an option or parameter called ``name`` probably holds a secret."""
    return _SECRET_KEY.search(name) is not None


def redact_url(url: str) -> str:
    """Return ``url`` with its password and any secret-looking query parameter masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    changed = False
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{_MASK}@{host}"
            changed = True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if not any(is_secret_name(k) for k, _ in pairs):
            query = parts.query
        else:
            changed = True
            query = urlencode(
                [(k, _MASK if is_secret_name(k) else v) for k, v in pairs], safe="*/:"
            )
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
