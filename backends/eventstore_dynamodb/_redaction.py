"""Keeping AWS credentials out of botocore's debug logs.

With DEBUG logging, botocore logs each request it signs: ``botocore.auth`` the canonical
request (with the ``x-amz-security-token`` header line) and the signature, ``botocore.endpoint``
the prepared request's headers (``X-Amz-Security-Token``, ``Authorization``). A session token
is a bearer secret, and a signed request can be replayed for minutes; anyone who turns on
DEBUG to debug this library must not leak them into log files.

:func:`redact_botocore_logs` puts a :class:`logging.Filter` on every logger of botocore,
aiobotocore, boto3 and aioboto3 (a logger's filters see only the records made at that very
logger, not its children's, hence one per logger). It rewrites a record's message with the
secret values masked; it runs only for records that are emitted, so it costs nothing while
DEBUG is off.
"""

from __future__ import annotations

import logging
import re

__all__ = ["redact", "redact_botocore_logs"]

_MASK = "***"
_PREFIXES = ("botocore", "aiobotocore", "boto3", "aioboto3")

_SECRETS = (
    # Header values, in a headers repr ('X-Amz-Security-Token': b'...'), a canonical request
    # line (x-amz-security-token:...) or a query string (X-Amz-Security-Token=...): the whole
    # value, up to its closing quote or the end of the line.
    re.compile(
        r"""(?i)((?:x-amz-security-token|authorization|x-amz-credential|x-amz-signature)"""
        r"""['"]?\s*[:=]\s*b?['"]?)[^'"\r\n&]+"""
    ),
    # botocore.auth's "Signature:\n<hex>", and a Signature=<hex> anywhere else.
    re.compile(r"(?i)(\bsignature\s*[:=]\s*)[0-9a-f]{16,}"),
    # Credentials that botocore might print in a dict or repr of its own.
    re.compile(
        r"""(?i)((?:aws_)?(?:secret_access_key|secret_key|session_token)['"]?\s*[:=]\s*"""
        r"""b?['"]?)[^'"\s,}]+"""
    ),
)
# A cheap test before the substitutions: most debug records hold none of these words.
_HINT = re.compile(r"(?i)token|authorization|signature|credential|secret")


def redact(text: str) -> str:
    """``text`` with every credential, token, signature or Authorization value masked."""
    if not _HINT.search(text):
        return text
    for pattern in _SECRETS:
        text = pattern.sub(lambda match: match.group(1) + _MASK, text)
    return text


class _RedactingFilter(logging.Filter):
    """Masks secrets in the message of every record it sees (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = _RedactingFilter("eventstore_dynamodb.redaction")


def redact_botocore_logs() -> None:
    """Put the redacting filter on every AWS SDK logger that exists now (idempotent)."""
    manager = logging.Logger.manager
    names = [name for name in list(manager.loggerDict) if name.startswith(_PREFIXES)]
    for name in names + list(_PREFIXES):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
