"""Parse again when CPython reports a false AST recursion-depth mismatch.

CPython (3.11 at least) keeps the AST constructor's recursion counter in state shared by
every thread of the interpreter. When two threads call ``ast.parse`` at the same moment,
one of them may fail with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905, pytest-dev/pytest#10874). The tree was built correctly; only the
final check of the counter went wrong.

A conformance run has such threads: pytest parses test sources to format every failure,
strict xfails included, while fault proxies format the tracebacks they log and moto's S3
server (tansu's storage in this project's tests) compiles werkzeug routing rules with
``ast.parse``. One of those collisions ended a CI run with ``INTERNALERROR`` while pytest
was formatting an expected failure. :func:`install` wraps ``ast.parse`` so that this one
error, and nothing else, is retried.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

__all__ = ["install"]

_MISMATCH = "AST constructor recursion depth mismatch"
_ATTEMPTS = 5


def install() -> None:
    """Make ``ast.parse`` retry a false recursion-depth mismatch (idempotent)."""
    if getattr(ast.parse, "_retries_depth_mismatch", False):
        return
    parse = ast.parse

    @functools.wraps(parse)
    def parse_retrying(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(_ATTEMPTS):
            try:
                return parse(*args, **kwargs)
            except SystemError as error:
                # The race is over as soon as the other thread's parse ends.
                if _MISMATCH not in str(error) or attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    parse_retrying._retries_depth_mismatch = True  # type: ignore[attr-defined]
    ast.parse = parse_retrying
