"""A pytest plugin: the gallery's URL schemes, as an outside adapter would register them.

Loaded with ``-p eventstore_conformance -p gallery.plugin`` (in that order, so that its
``eventstore_hold_commit`` overrides the suite's default). It adds an entry point per variant
to the registry (the one mechanism ``es.connect`` uses to find a backend), applies the
variant's change to the core when ``--eventstore-url`` names a variant that has one, and
provides the variant's hold-commit hook.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from eventstore_conformance import HoldCommit, NotApplicable

from eventstore_core import registry
from gallery.variants import VARIANTS, Variant


def _register() -> None:
    points = registry._entry_points()  # the registry's own cache of the entry-point group
    for variant in VARIANTS.values():
        points[variant.scheme] = EntryPoint(variant.scheme, variant.entry_point, registry.GROUP)


_register()


def _variant(config: pytest.Config) -> Variant | None:
    url: str | None = config.getoption("eventstore_url", None)
    scheme = (url or "").split("://", 1)[0]
    return next((v for v in VARIANTS.values() if v.scheme == scheme), None)


def pytest_configure(config: pytest.Config) -> None:
    """Apply the variant's change to the core, if it has one."""
    variant = _variant(config)
    if variant is not None and variant.patch is not None:
        variant.patch()


@pytest.fixture
def eventstore_hold_commit(pytestconfig: pytest.Config) -> HoldCommit | NotApplicable | None:
    """The variant's hold-commit hook (the memory variants' appends never await: none)."""
    variant = _variant(pytestconfig)
    if variant is not None and variant.hold is not None:
        return variant.hold
    return NotApplicable("a memory variant without a seam: its appends never await")
