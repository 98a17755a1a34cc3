"""The plugin's guard against CPython's false AST recursion-depth mismatch (``_ast_race``).

The race needs two threads parsing at the same instant, which no test can schedule. A parse
started from a garbage-collector callback in the middle of another parse disturbs the shared
counter the same way, deterministically: that is the stand-in here.
"""

from __future__ import annotations

import ast
import gc
import sys
from collections.abc import Callable

import pytest
from eventstore_conformance import _ast_race

# Enough nodes that the collector runs while the tree is being built.
_SOURCE = "\n".join(f"def f{i}(a):\n    return [j for j in range(a) if j]" for i in range(200))


def _parse_interrupted_once(parse: Callable[[str], ast.Module]) -> tuple[ast.Module, int]:
    """``parse(_SOURCE)`` with the collector running at every allocation, and one parse made
    from inside the first collection, deeper in the stack; returns the tree and how many
    interrupting parses ran (the collector must not run between arming and the parse)."""
    interruptions: list[int] = []

    def interrupt(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not interruptions:
            interruptions.append(1)

            def deeper(n: int) -> ast.Module:
                return deeper(n - 1) if n else ast.parse("y = 1")

            deeper(20)

    threshold = gc.get_threshold()
    gc.callbacks.append(interrupt)
    try:
        gc.set_threshold(1)
        try:
            tree = parse(_SOURCE)
        finally:
            gc.set_threshold(*threshold)
    finally:
        gc.callbacks.remove(interrupt)
    return tree, len(interruptions)


def _unguarded_parse() -> Callable[[str], ast.Module]:
    parse: Callable[[str], ast.Module] = getattr(ast.parse, "__wrapped__", ast.parse)
    return parse


def test_cpython_reports_a_false_mismatch_when_parses_interleave() -> None:
    # Without the guard: proves that the stand-in reproduces the error the guard is for.
    message = ""
    try:
        _parse_interrupted_once(_unguarded_parse())
    except SystemError as error:
        message = str(error)
    if not message:
        pytest.skip(f"Python {sys.version.split()[0]} reports no false mismatch")
    assert "AST constructor recursion depth mismatch" in message


def test_the_installed_parse_retries_a_false_mismatch_and_returns_the_tree() -> None:
    _ast_race.install()
    tree, interruptions = _parse_interrupted_once(ast.parse)
    assert interruptions == 1
    assert len(tree.body) == 200
    assert [node.name for node in tree.body[:2]] == ["f0", "f1"]  # type: ignore[attr-defined]


def test_the_installed_parse_still_raises_a_syntax_error() -> None:
    _ast_race.install()
    with pytest.raises(SyntaxError):
        ast.parse("def (")


def test_installing_twice_wraps_parse_once() -> None:
    _ast_race.install()
    first = ast.parse
    _ast_race.install()
    assert ast.parse is first
