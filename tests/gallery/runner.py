"""Run the conformance suite against gallery variants, in parallel subprocesses.

``python -m gallery`` (with ``tests`` on ``PYTHONPATH``) runs every variant and prints the
table; ``tests/test_gallery.py`` runs them in CI and checks each is caught by its test.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from eventstore_conformance import SUITE_DIR

from gallery.variants import VARIANTS, Variant

#: The short per-test timeout the gallery runs with: every wait of the suite is cut to it.
TIMEOUT = 8.0
#: Subprocesses at once (they mostly wait on I/O and timers).
PARALLEL = 3
#: Seconds one variant's run may take in all.
RUN_LIMIT = 240

TESTS_DIR = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one run of the suite against a variant gave."""

    variant: Variant
    returncode: int
    failed: tuple[str, ...]
    """The tests that failed (or errored), by name."""
    seconds: float
    output: str

    @property
    def first_failure(self) -> str | None:
        """The test that caught the bug (with ``-x``, the only one that failed)."""
        return self.failed[0] if self.failed else None


def url_for(variant: Variant, workdir: Path, postgres_url: str | None) -> str | None:
    """The URL of the variant's store (None when its service is unavailable)."""
    if variant.base == "memory":
        return f"{variant.scheme}://gallery"
    if variant.base == "sqlite":
        return f"{variant.scheme}:///{workdir}/store.db"
    if postgres_url is None:
        return None
    parts = urlsplit(postgres_url)
    query = "&".join(
        q for q in (parts.query, f"schema=gallery_{variant.name.replace('-', '_')}") if q
    )
    return urlunsplit((variant.scheme, parts.netloc, parts.path, query, ""))


def run(variant: Variant, url: str, workdir: Path, timeout: float = TIMEOUT) -> Outcome:
    """Run the suite (its selected modules) against ``url``, stopping at the first failure."""
    report = workdir / "report.xml"
    modules = [str(SUITE_DIR / f"{m}.py") for m in variant.modules]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTEST_ADDOPTS", None)
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "ignore",
        "-p", "eventstore_conformance", "-p", "gallery.plugin",
        "--eventstore-url", url, "--eventstore-timeout", str(timeout),
        "-x", "-q", "-rfE", f"--junit-xml={report}", *modules,
        *(["-k", variant.keyword] if variant.keyword else []),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True,
            timeout=RUN_LIMIT, check=False,
        )  # fmt: skip
        returncode, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:
        returncode = -1
        output = f"the run did not end within {RUN_LIMIT}s\n{expired.stdout!r}"
    seconds = time.monotonic() - started
    return Outcome(variant, returncode, _failures(report), seconds, output)


def _failures(report: Path) -> tuple[str, ...]:
    if not report.exists():
        return ()
    failed = []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
    return tuple(failed)


def run_all(
    variants: Iterable[Variant], postgres_url: str | None, root: Path, parallel: int = PARALLEL
) -> dict[str, Outcome | None]:
    """Run every variant (None for those whose service is unavailable), ``parallel`` at once."""
    outcomes: dict[str, Outcome | None] = {}
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = {}
        for variant in variants:
            workdir = root / variant.name
            workdir.mkdir(parents=True, exist_ok=True)
            url = url_for(variant, workdir, postgres_url)
            if url is None:
                outcomes[variant.name] = None
                continue
            futures[variant.name] = pool.submit(run, variant, url, workdir)
        for name, future in futures.items():
            outcomes[name] = future.result()
    return outcomes


def table(outcomes: dict[str, Outcome | None]) -> str:
    """The gallery as a markdown table: bug, the test that caught it, time to fail."""
    lines = ["| bug | caught by | time to fail |", "|---|---|---|"]
    for name, outcome in outcomes.items():
        variant = VARIANTS[name]
        if outcome is None:
            lines.append(f"| {variant.bug} | (not run: no service) | |")
            continue
        caught = outcome.first_failure or ("passes (control)" if not variant.broken else "MISSED")
        lines.append(f"| {variant.bug} | `{caught}` | {outcome.seconds:.1f} s |")
    return "\n".join(lines)


def main() -> None:
    """Run the whole gallery (PostgreSQL variants only with ``GALLERY_POSTGRES_URL``)."""
    with tempfile.TemporaryDirectory() as root:
        outcomes = run_all(VARIANTS.values(), os.environ.get("GALLERY_POSTGRES_URL"), Path(root))
    print(table(outcomes))
