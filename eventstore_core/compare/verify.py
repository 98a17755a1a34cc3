"""``--verify``: run the conformance suite against a target and count what it found.

The suite runs in a subprocess (``pytest -p eventstore_conformance --eventstore-url URL``),
exactly as an adapter author runs it, with a JUnit XML report to count from: passed, failed,
skipped, and *declared short* (strict xfail: the backend's capabilities say it falls short
there, and the suite holds it to that).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def run_suite(url: str, timeout: float = 900.0, select: str | None = None) -> dict[str, Any]:
    """Counts of the conformance suite against ``url`` (``error`` set if it could not run).

    ``select`` is a pytest ``-k`` expression, to run part of the suite.
    """
    with tempfile.TemporaryDirectory(prefix="eventstore-verify-") as directory:
        report = Path(directory) / "junit.xml"
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
        try:
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "eventstore_conformance",
                    "-p",
                    "no:cacheprovider",
                    "--eventstore-url",
                    url,
                    "-q",
                    f"--junitxml={report}",
                    *(["-k", select] if select else []),
                ],
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"the suite did not finish within {timeout:.0f} s"}
        if not report.exists():
            tail = (completed.stdout + completed.stderr).strip().splitlines()[-3:]
            return {"error": "the suite did not run: " + " / ".join(tail)}
        return parse_junit(report.read_text())


def parse_junit(text: str) -> dict[str, Any]:
    """Passed / failed / skipped / xfailed counts and the failing tests' names."""
    counts: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    failures: list[str] = []
    for case in ET.fromstring(text).iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}".strip(".")
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            failures.append(name)
        elif (skipped := case.find("skipped")) is not None:
            if (skipped.get("type") or "").endswith("xfail"):
                counts["xfailed"] += 1
            else:
                counts["skipped"] += 1
        else:
            counts["passed"] += 1
    counts["failures"] = failures[:20]
    return counts


__all__ = ["parse_junit", "run_suite"]
