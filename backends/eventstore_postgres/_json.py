"""JSON as PostgreSQL's ``jsonb`` keeps it: floats that stay floats.

``jsonb`` stores numbers as ``numeric``, which keeps the digits written and nothing else. orjson
writes a float of 1e16 or more in exponent form (``1e17``, ``1.5e17``); ``numeric`` reads that
as the integer 100000000000000000 and gives it back without a decimal point, so the float came
back as an int (the issue measured every integral float from 1e16 to 2**64). A float written
with a fractional part (``100000000000000000.0``) keeps its scale and reads back as the same
float. So before sending, every number in exponent form with a positive exponent is rewritten
in plain decimal notation with ``.0`` — the same value, so it parses to the very same float —
and nothing else changes. Numbers inside strings are left alone.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["jsonb_text"]

#: A cheap test for a candidate: a digit, ``e``, then a digit or ``+`` (orjson writes ``1e17``).
_CANDIDATE = re.compile(rb"\de[+\d]")
#: A JSON string (skipped), or a number in exponent form with a non-negative exponent.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?[eE]\+?\d+)')


def _plain(match: re.Match[bytes]) -> bytes:
    number = match.group(1)
    if number is None:
        return match.group(0)
    # A float at or beyond 1e16 is an integer (floats are above 2**53), so "f" is exact.
    return format(Decimal(number.decode()), "f").encode() + b".0"


def jsonb_text(encoded: bytes) -> bytes:
    """``encoded`` (orjson's output) with exponent-form floats written out in full."""
    if _CANDIDATE.search(encoded) is None:
        return encoded
    return _TOKEN.sub(_plain, encoded)
