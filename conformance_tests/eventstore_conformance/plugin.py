"""The pytest hooks and fixtures of the conformance suite.

``pytest -p eventstore_conformance --eventstore-url URL`` (with no test paths) collects the
suite's own test modules, so an adapter author needs no file of their own. A project that
runs the suite among its tests re-exports it instead (``from eventstore_conformance.suite
import *``) and overrides the ``eventstore_url`` fixture, for example parametrized over
backends.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import eventstore_core as es
from eventstore_conformance import _ast_race
from eventstore_conformance.faults import hold_summary
from eventstore_conformance.harness import MARKER_NAME
from eventstore_conformance.shortfalls import Shortfall, matching
from eventstore_core.config import parse_url

__all__ = [
    "STRUCTURAL_CAPABILITIES",
    "SUITE_DIR",
    "eventstore_capabilities",
    "eventstore_requirements",
    "eventstore_shortfalls",
    "eventstore_url",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]

#: Declared shortfalls seen applied during the run: description -> tests covered.
_APPLIED_KEY = pytest.StashKey[dict[Shortfall, list[str]]]()

#: The session's exit status, kept for the exit guard (see pytest_unconfigure).
_EXIT_STATUS_KEY = pytest.StashKey[int]()

#: Seconds leftover non-daemon threads get to end after the session before the exit guard
#: stops waiting for them.
EXIT_GRACE = 3.0

#: The directory of the suite's test modules.
SUITE_DIR = Path(__file__).resolve().parent / "suite"

#: Capabilities whose absence makes a test meaningless rather than expected to fail: such
#: tests skip (with the reason) instead of running as strict xfail.
STRUCTURAL_CAPABILITIES = frozenset({"shared_across_processes", "durable"})


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--eventstore-url`` and ``--eventstore-timeout``."""
    group = parser.getgroup("eventstore", "eventstore-core conformance suite")
    group.addoption(
        "--eventstore-url",
        dest="eventstore_url",
        default=None,
        metavar="URL",
        help="run the eventstore-core conformance suite against the store at URL "
        "(for example sqlite:///./conformance.db); with no test paths, the suite is collected",
    )
    group.addoption(
        "--eventstore-timeout",
        dest="eventstore_timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="fail a conformance test that runs longer than this (default: 60); every wait "
        "inside a test is cut to what is left of it, so a short value makes a broken store "
        "fail within seconds",
    )
    group.addoption(
        "--eventstore-no-exit-guard",
        dest="eventstore_exit_guard",
        action="store_false",
        default=True,
        help="wait for threads left running after the session (by default the process exits "
        f"{EXIT_GRACE:.0f}s after the session even if a leaked non-daemon thread would keep "
        "it alive)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """With ``--eventstore-url`` and no test paths, collect the suite's own test modules.

    Runs only when the plugin is loaded with ``-p`` (or ``PYTEST_PLUGINS``), before the
    command line is parsed for good: adding the suite's directory to ``args`` here is what
    ``pytest <dir>`` would do, and takes precedence over the project's ``testpaths``.
    """
    namespace = early_config.known_args_namespace
    if getattr(namespace, "eventstore_url", None) and not namespace.file_or_dir:
        args.append(str(SUITE_DIR))
        namespace.file_or_dir = [str(SUITE_DIR)]


def pytest_configure(config: pytest.Config) -> None:
    """Register the capability marker; make ``ast.parse`` survive a CPython thread race
    (see ``_ast_race``) that can otherwise end a run while a failure is being formatted."""
    _ast_race.install()
    config.addinivalue_line(
        "markers",
        f"{MARKER_NAME}(**capabilities): the conformance test holds only for stores with these "
        "capabilities; others run it as xfail(strict=True), or skip it for structural limits",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect the suite's modules even when the project's ``python_files`` would not."""
    if file_path.parent != SUITE_DIR or file_path.suffix != ".py":
        return None
    if not file_path.name.startswith("test_"):
        return None
    patterns = parent.config.getini("python_files")
    if any(fnmatch.fnmatch(file_path.name, p) for p in patterns if "/" not in p):
        return None  # pytest's own collector takes it
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it whatever the patterns
    module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
    return module


_NO_URL = (
    "the eventstore conformance suite needs a store: pass --eventstore-url URL, for example "
    "--eventstore-url sqlite:///./conformance.db (or override the eventstore_url fixture)"
)


def _check_url(url: str) -> None:
    """Refuse, with one message, a URL the whole suite would fail on for the same reason."""
    try:
        store = es.connect(url)
    except es.EventStoreError as error:
        raise pytest.UsageError(f"--eventstore-url {url}: {error}") from None
    parsed = parse_url(url)
    if parsed.base_scheme == "memory" and not ((parsed.host or "") + parsed.path):
        # Every connect() of an unnamed memory:// gets a new, empty store, and the suite opens
        # several (concurrency and subscription tests): they would fail as if the store lost
        # events.
        raise pytest.UsageError(
            f"--eventstore-url {store.url}: an unnamed memory:// store is private to each "
            "connection, and the suite opens several; name it: --eventstore-url "
            "memory://conformance"
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Check ``--eventstore-url`` once, before any test runs (no I/O: ``connect`` only)."""
    url: str | None = session.config.getoption("eventstore_url", None)
    if url:
        _check_url(url)


def _uses_this_plugins_url_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    definitions: Sequence[Any] = info.name2fixturedefs.get("eventstore_url", ())
    # The last definition is the one that applies (a project's conftest may override it).
    return bool(definitions) and getattr(definitions[-1].func, "__module__", None) == __name__


def pytest_collection_finish(session: pytest.Session) -> None:
    """Without ``--eventstore-url``, fail at once with how to give one.

    Either nothing was collected (``pytest -p eventstore_conformance`` in an empty directory),
    or the suite's tests were, with no store to run on and no fixture of the project's own to
    provide one: both are the same mistake, reported once instead of per test.
    """
    if session.config.getoption("eventstore_url", None):
        return
    if not session.items or any(_uses_this_plugins_url_fixture(i) for i in session.items):
        raise pytest.UsageError(_NO_URL)


@pytest.fixture(scope="session")
def eventstore_url(pytestconfig: pytest.Config) -> str:
    """The URL of the store under test: ``--eventstore-url``.

    Override this fixture (for example parametrized over backends) to run the suite from a
    project's own tests.
    """
    url: str | None = pytestconfig.getoption("eventstore_url", None)
    if not url:
        pytest.fail(_NO_URL, pytrace=False)
    return url


@pytest.fixture(scope="session")
def eventstore_capabilities(eventstore_url: str) -> es.Capabilities:
    """The capabilities the store under test declares (read without any I/O)."""
    return es.connect(eventstore_url).capabilities


@pytest.fixture(scope="session")
def eventstore_shortfalls() -> list[Shortfall]:
    """The known shortfalls of the store under test (none by default).

    Override it in your ``conftest.py`` to declare them (see
    :mod:`eventstore_conformance.shortfalls`); it may depend on ``eventstore_url``.
    """
    return []


@pytest.fixture(autouse=True)
def eventstore_requirements(request: pytest.FixtureRequest) -> None:
    """Apply ``@requires(...)`` and the declared shortfalls: strict xfail, or skip.

    A backend that declares a limit it does not have makes the test pass unexpectedly, which
    strict xfail reports as a failure: declarations are held to what the backend does.
    """
    if "eventstore_url" not in request.fixturenames:
        return
    _apply_shortfalls(request)
    markers = list(request.node.iter_markers(MARKER_NAME))
    if not markers:
        return
    capabilities: es.Capabilities = request.getfixturevalue("eventstore_capabilities")
    required: dict[str, object] = {}
    for marker in markers:
        required.update(marker.kwargs)
    structural = {k: v for k, v in required.items() if k in STRUCTURAL_CAPABILITIES}
    problems = capabilities.shortfalls(structural)
    if problems:
        pytest.skip("not applicable to this store: " + "; ".join(problems))
    problems = capabilities.shortfalls(required)
    if problems:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="the store declares: "
                + "; ".join(problems)
                + " (if this passes, the declaration is stale: declare the capability)",
            )
        )


def _apply_shortfalls(request: pytest.FixtureRequest) -> None:
    declared: list[Shortfall] = list(request.getfixturevalue("eventstore_shortfalls"))
    applied = request.config.stash.setdefault(_APPLIED_KEY, {})
    for shortfall in declared:
        applied.setdefault(shortfall, [])
    node = request.node
    covering = matching(declared, node.name, getattr(node, "originalname", node.name))
    if not covering:
        return
    for shortfall in covering:
        applied[shortfall].append(node.nodeid)
    first = covering[0]
    request.applymarker(
        pytest.mark.xfail(
            strict=True,
            raises=first.raises,
            reason="declared shortfall: " + "; ".join(s.describe() for s in covering),
        )
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the declared shortfalls in use (and stale ones); say what the out-of-order-commit
    test found (or that it did not run for want of a hook)."""
    hold_summary(terminalreporter)
    applied = terminalreporter.config.stash.get(_APPLIED_KEY, {})
    if not applied:
        return
    terminalreporter.section("eventstore conformance: declared shortfalls")
    for shortfall, tests in applied.items():
        status = f"{len(tests)} test(s)" if tests else "STALE: covers no test of this run"
        terminalreporter.write_line(f"{shortfall.describe()} [{status}]")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    """Remember the exit status, for the exit guard."""
    session.config.stash[_EXIT_STATUS_KEY] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The exit guard: a leaked non-daemon thread must not keep the test process alive.

    A store that leaves a driver thread running (a connection never closed) makes the
    interpreter wait for it forever once pytest is done. When such threads are still running
    a moment after the session, they are named on stderr and a daemon watchdog ends the
    process with pytest's exit status if it has not exited ``EXIT_GRACE`` seconds later.
    Every other plugin has unconfigured by then (this hook runs last).
    """
    if not config.getoption("eventstore_exit_guard", True):
        return
    main = threading.main_thread()
    deadline = time.monotonic() + 1.0
    left = []
    for thread in threading.enumerate():
        if thread is main or thread.daemon or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    if not left:
        return
    status = config.stash.get(_EXIT_STATUS_KEY, 1)
    names = ", ".join(sorted(thread.name for thread in left))
    sys.stderr.write(
        f"eventstore conformance: {len(left)} non-daemon thread(s) still running after the "
        f"session ({names}); exiting in {EXIT_GRACE:.0f}s without waiting for them\n"
    )
    sys.stderr.flush()

    def guard() -> None:
        time.sleep(EXIT_GRACE)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    threading.Thread(target=guard, name="eventstore-exit-guard", daemon=True).start()
