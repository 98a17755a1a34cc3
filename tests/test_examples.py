"""The examples run as a user runs them (a new process, a fresh directory) and say what they did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_quickstart(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "EVENTSTORE_URL"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def assert_tour_completed(output: str) -> None:
    lines = [line.strip() for line in output.splitlines()]
    assert any(line.startswith("1. appended OrderPlaced to Order-") for line in lines)
    assert "appended 2 ItemAdded in one atomic batch: version 3" in lines
    assert any(
        line.startswith("3. conflict, as expected:")
        and "expected version 1, but the stream is at version 3" in line
        for line in lines
    )
    assert "the stream is still at version 3" in lines
    assert any("the retry returned version 4 again and wrote nothing" in line for line in lines)
    stages = [line.split()[0] for line in lines if line.startswith(("catch-up", "live"))]
    assert stages == ["catch-up", "catch-up", "catch-up", "live"]
    assert any(line.startswith("live") and "OrderShipped" in line for line in lines)


def test_quickstart_runs_on_the_embedded_default_store_and_can_run_again(
    tmp_path: Path,
) -> None:
    assert_tour_completed(run_quickstart(tmp_path))
    assert (tmp_path / "eventstore.db").exists()
    # A second run against the same file works too: each run uses a new stream.
    assert_tour_completed(run_quickstart(tmp_path))


def test_quickstart_runs_on_a_url_given_as_argument(tmp_path: Path) -> None:
    output = run_quickstart(tmp_path, "memory://")
    assert_tour_completed(output)
    assert "quick start: memory://" in output
    assert not (tmp_path / "eventstore.db").exists()


README = EXAMPLES.parent / "README.md"


def readme_usage_example() -> str:
    """The first Python block of the README's "Usage" section, as a user would copy it."""
    usage = README.read_text().split("\n## Usage\n", 1)[1]
    return usage.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_usage_example_runs_again_and_again_and_ends(tmp_path: Path) -> None:
    script = tmp_path / "usage.py"
    script.write_text(readme_usage_example())
    env = {k: v for k, v in os.environ.items() if k != "EVENTSTORE_URL"}
    outputs = []
    for _ in range(2):
        # The timeout is the proof that it ends: the subscription loop must stop by itself.
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout.splitlines())
    streams = []
    for lines in outputs:
        assert lines[0].startswith("1 ")  # version 1: a new stream each run, NO_STREAM holds
        assert lines[1] == "1 OrderPlaced {'total': 10}"
        assert lines[2] == "0 1"  # the refused append: expected 0, actual 1
        mailer = [line.split() for line in lines[3:]]
        assert mailer, lines
        assert all(words[0] == "mailer:" for words in mailer)
        streams.append([words[1] for words in mailer])
    # The first run's mailer saw its order; the second resumed after its checkpoint and saw
    # only the new one.
    assert len(streams[0]) == 1
    assert len(streams[1]) == 1
    assert streams[0] != streams[1]
    assert (tmp_path / "app.db").exists()
