"""The distribution as a user gets it: built, installed in a new virtualenv, run from elsewhere.

One session-scoped build (``uv build``) and one fresh virtualenv with the wheel and its
``[all,conformance]`` extras (uv's cache makes the install take seconds), shared by the tests.
Nothing here imports the project from the source tree: every check runs the installed copy,
from an empty directory, as ``pip install eventstore-core`` would leave it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Every top-level package of the wheel; each ships type hints (PEP 561).
PACKAGES = (
    "eventstore_core",
    "eventstore_memory",
    "eventstore_sqlite",
    "eventstore_postgres",
    "eventstore_dynamodb",
    "eventstore_conformance",
)


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    venv: Path

    def bin(self, name: str) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin") / name


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (bash .ci/run installs it)")
    return uv


def _clean_env() -> dict[str, str]:
    # Nothing of the development environment may leak into the installed copy's runs.
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "EVENTSTORE_URL", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = _run(*args, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The wheel and sdist of this checkout, and a new virtualenv with the wheel installed."""
    uv = _uv()
    base = tmp_path_factory.mktemp("packaging")
    dist = base / "dist"
    _ok(uv, "build", "--quiet", "--out-dir", dist, ROOT, cwd=base)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    venv = base / "venv"
    _ok(uv, "venv", "--quiet", "--python", sys.executable, venv, cwd=base)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    _ok(uv, "pip", "install", "--quiet", "--python", python, f"{wheel}[all,conformance]", cwd=base)
    return Built(wheel=wheel, sdist=sdist, venv=venv)


def test_the_wheel_and_the_sdist_carry_the_license(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = wheel.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        text = wheel.read(metadata).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in text
    with tarfile.open(built.sdist) as sdist:
        license_files = [n for n in sdist.getnames() if n.endswith("/LICENSE")]
        assert license_files
        member = sdist.extractfile(license_files[0])
        assert member is not None
        assert "Apache License" in member.read().decode()
        assert "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()


def test_every_package_of_the_wheel_is_typed(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    assert {f"{package}/py.typed" for package in PACKAGES} <= names


def test_the_metadata_has_project_urls_and_the_readme_links_are_absolute(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        text = wheel.read(metadata).decode()
    urls = [line for line in text.splitlines() if line.startswith("Project-URL: ")]
    assert {line.removeprefix("Project-URL: ").split(",")[0] for line in urls} >= {
        "Homepage",
        "Repository",
        "Documentation",
        "Issues",
    }
    # The README is the PyPI page: a relative link to a file of the repository breaks there.
    readme = text.split("\n\n", 1)[1]
    relative = [
        link
        for link in _markdown_links(readme)
        if not link.startswith(("https://", "http://", "#", "mailto:"))
    ]
    assert relative == []


def _markdown_links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_the_conformance_plugin_passes_from_an_empty_directory(
    built: Built, tmp_path: Path
) -> None:
    """What the README tells an adapter author to run, against the embedded SQLite backend."""
    empty = tmp_path / "empty"
    empty.mkdir()
    url = f"sqlite:///{empty / 'conformance.db'}"
    result = _ok(
        built.bin("python"),
        "-m",
        "pytest",
        "-p",
        "eventstore_conformance",
        "--eventstore-url",
        url,
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=empty,
        timeout=600,
    )
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_the_installed_command_line_sets_up_appends_and_reads(built: Built, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    eventstore = built.bin("eventstore")
    assert "eventstore-core" in _ok(eventstore, "--version", cwd=tmp_path).stdout
    _ok(eventstore, "--url", url, "setup", cwd=tmp_path)
    _ok(eventstore, "--url", url, "append", "Order-1", "Placed", '{"total": 10}', cwd=tmp_path)
    (event,) = [
        json.loads(line)
        for line in _ok(eventstore, "--url", url, "--json", "log", cwd=tmp_path).stdout.splitlines()
    ]
    assert (event["stream_id"], event["data"]) == ("Order-1", {"total": 10})
    (info,) = [
        json.loads(line)
        for line in _ok(
            eventstore, "--json", "info", "--url", "postgresql://u@h/db", cwd=tmp_path
        ).stdout.splitlines()
    ]
    assert info["backend"] == "postgresql"  # the postgres extra is installed and loads
