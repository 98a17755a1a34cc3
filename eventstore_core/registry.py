"""Finding backends through the ``eventstore_core.backends`` entry-point group.

The built-in adapters register exactly as a third-party one would, in ``pyproject.toml``::

    [project.entry-points."eventstore_core.backends"]
    myscheme = "my_package:MyEventStore"

Entry points are loaded lazily, so importing ``eventstore_core`` never imports a driver.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, metadata
from typing import TYPE_CHECKING

from eventstore_core.errors import ConfigurationError

if TYPE_CHECKING:
    from eventstore_core.store import EventStore

__all__ = ["GROUP", "available_schemes", "load_backend"]

GROUP = "eventstore_core.backends"

# Which extra to install for each built-in scheme, for the hint on a missing driver. A hint
# is given only for an extra the installed distribution declares, so that it never tells a
# user to install something that does not exist.
_EXTRAS = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "dynamodb": "dynamodb",
    "kafka": "kafka",
    "kurrentdb": "kurrentdb",
    "esdb": "kurrentdb",
}


@cache
def _declared_extras() -> frozenset[str]:
    try:
        return frozenset(metadata("eventstore-core").get_all("Provides-Extra") or ())
    except PackageNotFoundError:
        return frozenset()


def _extra_for(scheme: str) -> str | None:
    extra = _EXTRAS.get(scheme)
    return extra if extra in _declared_extras() else None


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_schemes() -> list[str]:
    """The URL schemes of every installed backend."""
    return sorted(_entry_points())


def load_backend(scheme: str) -> type[EventStore]:
    """The backend class registered for ``scheme`` (a URL scheme without ``+suffix``)."""
    from eventstore_core.store import EventStore

    entry = _entry_points().get(scheme)
    if entry is None:
        known = available_schemes()
        extra = _extra_for(scheme)
        close = difflib.get_close_matches(scheme, known, n=1)
        if extra:
            hint = f'; install it with: pip install "eventstore-core[{extra}]"'
        elif close:
            hint = f"; did you mean {close[0]}://?"
        else:
            hint = "; a third-party backend must be installed in this same environment"
        raise ConfigurationError(
            f"no backend is registered for URL scheme {scheme!r} "
            f"(installed: {', '.join(f'{k}://' for k in known) or 'none'}){hint}"
        )
    try:
        backend = entry.load()
    except ImportError as error:
        extra = _extra_for(scheme)
        hint = f'; install it with: pip install "eventstore-core[{extra}]"' if extra else ""
        raise ConfigurationError(
            f"the {scheme}:// backend needs a package that is not installed "
            f"({error.name or error}){hint}"
        ) from error
    except AttributeError as error:
        raise ConfigurationError(
            f"entry point {entry.value!r} for scheme {scheme!r} names nothing: {error}"
        ) from error
    if not (isinstance(backend, type) and issubclass(backend, EventStore)):
        raise ConfigurationError(
            f"entry point {entry.value!r} for scheme {scheme!r} is not an EventStore subclass"
        )
    return backend
