"""The eventstore-core conformance suite, shipped as a pytest plugin.

Run it against any store::

    pytest -p eventstore_conformance --eventstore-url sqlite:///./conformance.db

``-p eventstore_conformance`` imports this package, which is the plugin: its hooks and
fixtures live in :mod:`eventstore_conformance.plugin` and are re-exported here. The tests are
in :mod:`eventstore_conformance.suite`; :func:`requires` marks a test with the capabilities
it needs.
"""

from eventstore_conformance.faults import (
    CommitGate,
    FaultProxy,
    HeldAppend,
    HoldCommit,
    NotApplicable,
    ProxiedStore,
    Restartable,
    eventstore_endpoint,
    eventstore_hold_commit,
    eventstore_proxy,
    eventstore_restartable,
    eventstore_url_through,
    hold_append,
    not_applicable,
)
from eventstore_conformance.harness import StoreContext, requires, store_test
from eventstore_conformance.plugin import (
    STRUCTURAL_CAPABILITIES,
    SUITE_DIR,
    eventstore_capabilities,
    eventstore_requirements,
    eventstore_shortfalls,
    eventstore_url,
    pytest_addoption,
    pytest_collect_file,
    pytest_collection_finish,
    pytest_configure,
    pytest_load_initial_conftests,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
    pytest_unconfigure,
)
from eventstore_conformance.shortfalls import Shortfall, never, notimpl, notyet

__all__ = [
    "STRUCTURAL_CAPABILITIES",
    "SUITE_DIR",
    "CommitGate",
    "FaultProxy",
    "HeldAppend",
    "HoldCommit",
    "NotApplicable",
    "ProxiedStore",
    "Restartable",
    "Shortfall",
    "StoreContext",
    "eventstore_capabilities",
    "eventstore_endpoint",
    "eventstore_hold_commit",
    "eventstore_proxy",
    "eventstore_requirements",
    "eventstore_restartable",
    "eventstore_shortfalls",
    "eventstore_url",
    "eventstore_url_through",
    "hold_append",
    "never",
    "not_applicable",
    "notimpl",
    "notyet",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "pytest_unconfigure",
    "requires",
    "store_test",
]
