"""Known shortfalls: what an adapter declares, next to its own conformance run, that it fails.

Modelled on ibis's markers. Each declaration names the tests it covers (an ``fnmatch``
pattern over the test's name, e.g. ``"test_retrying_*"`` or ``"test_x[*NO_STREAM*]"``), one
of three kinds, and a mandatory reason:

- :func:`notimpl` — the adapter could do it and has not yet;
- :func:`notyet` — the backend (server, client library) must change first;
- :func:`never` — the backend cannot, by design.

A covered test still runs, as ``xfail(strict=True)``, optionally only for the exception type
given as ``raises``: if it starts to pass (or fails differently), the run fails, so the list
never goes stale. A declaration that covers no test of the run is reported as stale too.

Declare them by overriding the ``eventstore_shortfalls`` fixture in your ``conftest.py``::

    from eventstore_conformance import notyet

    @pytest.fixture(scope="session")
    def eventstore_shortfalls():
        return [
            notyet(
                "test_a_retry_at_the_current_version_after_later_appends_writes_nothing",
                reason="the server's id cache forgets a batch once the stream moved on",
                raises=AssertionError,
            ),
        ]
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Shortfall", "matching", "never", "notimpl", "notyet"]

Kind = Literal["notimpl", "notyet", "never"]


@dataclass(frozen=True)
class Shortfall:
    """One declared shortfall (build it with :func:`notimpl`, :func:`notyet` or :func:`never`)."""

    kind: Kind
    tests: str
    reason: str
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("notimpl", "notyet", "never"):
            raise ValueError(f"a shortfall's kind is notimpl, notyet or never, not {self.kind!r}")
        if not isinstance(self.tests, str) or not self.tests.strip():
            raise ValueError("a shortfall must name the tests it covers (an fnmatch pattern)")
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise ValueError(f"the shortfall for {self.tests!r} needs a reason")

    def covers(self, name: str, original_name: str) -> bool:
        """Whether this declaration covers the test ``name`` (with parameters) or its function."""
        return fnmatch.fnmatchcase(name, self.tests) or fnmatch.fnmatchcase(
            original_name, self.tests
        )

    def describe(self) -> str:
        """One line: kind, pattern and reason."""
        return f"{self.kind}: {self.tests} — {self.reason}"


def notimpl(
    tests: str,
    *,
    reason: str,
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None,
) -> Shortfall:
    """The adapter does not implement this yet."""
    return Shortfall("notimpl", tests, reason, raises)


def notyet(
    tests: str,
    *,
    reason: str,
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None,
) -> Shortfall:
    """The backend must change before the adapter can do this."""
    return Shortfall("notyet", tests, reason, raises)


def never(
    tests: str,
    *,
    reason: str,
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None,
) -> Shortfall:
    """The backend cannot do this, by design."""
    return Shortfall("never", tests, reason, raises)


def matching(shortfalls: Sequence[Shortfall], name: str, original_name: str) -> list[Shortfall]:
    """The declarations that cover a test."""
    return [s for s in shortfalls if s.covers(name, original_name)]
