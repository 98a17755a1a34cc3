"""Developer sessions: one per backend, plus lint and types.

    uv run nox                  # every session below
    uv run nox -s postgres      # one backend
    uv run nox -l               # list them

Sessions run in the project's own environment through ``uv run`` (the locked dependencies of
``uv sync``), so nox creates no virtualenvs of its own and a session tests exactly
what CI tests. Services (PostgreSQL, DynamoDB Local) are started by the test harness itself,
without Docker; see eventstore_core/local/.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "types", "memory", "sqlite", "postgres", "dynamodb", "kafka"]


def _sync(session: nox.Session) -> None:
    session.run("uv", "sync", "--locked", external=True)


def _backend_tests(session: nox.Session, backend: str) -> None:
    """The conformance suite on ``backend``, plus every other test named after it.

    ``--backends`` (tests/conftest.py) limits the conformance suite to the backend; ``-k``
    adds the backend's own tests (tests/test_<backend>_adapter.py, the CLI tests' [backend]
    cases) and leaves out the other backends'. Extra arguments go to pytest:
    ``uv run nox -s postgres -- -x``.
    """
    _sync(session)
    session.run(
        "uv", "run", "pytest", "--backends", backend, "-k", backend, *session.posargs,
        external=True,
    )  # fmt: skip


@nox.session(python=False)
def memory(session: nox.Session) -> None:
    """The conformance suite and the memory:// tests."""
    _backend_tests(session, "memory")


@nox.session(python=False)
def sqlite(session: nox.Session) -> None:
    """The conformance suite and the SQLite tests."""
    _backend_tests(session, "sqlite")


@nox.session(python=False)
def postgres(session: nox.Session) -> None:
    """The conformance suite and the PostgreSQL tests (embedded server, no Docker needed)."""
    _backend_tests(session, "postgres")


@nox.session(python=False)
def dynamodb(session: nox.Session) -> None:
    """The conformance suite and the DynamoDB tests (DynamoDB Local via npm + Java)."""
    _backend_tests(session, "dynamodb")


@nox.session(python=False)
def kafka(session: nox.Session) -> None:
    """The conformance suite on 1 and 3 partitions and the Kafka tests (tansu, no Docker)."""
    _sync(session)
    session.run(
        "uv", "run", "pytest", "--backends", "kafka,kafka3", "-k", "kafka", *session.posargs,
        external=True,
    )  # fmt: skip


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting (check only; ``uv run ruff format .`` fixes)."""
    _sync(session)
    session.run("uv", "run", "ruff", "check", ".", external=True)
    session.run("uv", "run", "ruff", "format", "--check", ".", external=True)


@nox.session(python=False)
def types(session: nox.Session) -> None:
    """mypy --strict on the packages listed under [tool.mypy] in pyproject.toml."""
    _sync(session)
    session.run("uv", "run", "mypy", external=True)


@nox.session(name="all", python=False)
def all_tests(session: nox.Session) -> None:
    """The whole test suite, exactly as README.md and .ci/run run it."""
    _sync(session)
    session.run("uv", "run", "--all-extras", "pytest", *session.posargs, external=True)
