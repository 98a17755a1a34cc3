"""The ``eventstore`` command line, run in-process with Typer's CliRunner.

Most tests run against both ``memory://`` and a temporary SQLite file (set up first: only
``setup`` and ``append`` create a store). A named memory store (``memory://NAME``) lives as
long as something holds it, so the fixture keeps one open reference: successive commands,
each its own ``connect``, then see the same events. The tests that a read creates nothing run
on every backend, PostgreSQL and DynamoDB included.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import eventstore_core as es
from eventstore_core.cli import ExitCode, app
from eventstore_core.cli.errors import describe

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's EVENTSTORE_URL must not redirect the tests to their store.
    monkeypatch.delenv("EVENTSTORE_URL", raising=False)


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL whose events survive from one command to the next."""
    if request.param == "memory":
        name = f"memory://cli-{uuid.uuid4().hex}"
        keep_alive = es.connect(name)
        yield name
        del keep_alive
    else:
        sqlite_url = f"sqlite:///{tmp_path / 'cli.db'}"
        ok("setup", "--url", sqlite_url)  # reads never create the store; setup does
        yield sqlite_url


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.exit_code, result.output)
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


# -- append ----------------------------------------------------------------------------------


def test_append_prints_the_new_version_and_position(url: str) -> None:
    result = ok("append", "Order-1", "OrderPlaced", '{"total": 10}', "--url", url)
    assert result.stdout.strip() == "appended OrderPlaced to Order-1: version 1, position 1"


def test_append_checks_each_expected_version_form(url: str) -> None:
    ok("append", "Order-1", "A", "{}", "--expected-version", "no-stream", "--url", url)
    ok("append", "Order-1", "B", "{}", "--expected-version", "1", "--url", url)
    result = ok("append", "Order-1", "C", "{}", "-e", "exists", "--url", url)
    assert "version 3" in result.stdout
    ok("append", "Order-1", "D", "{}", "-e", "any", "--url", url)


def test_append_json_output_gives_version_position_and_id(url: str) -> None:
    event_id = str(uuid.uuid4())
    result = ok("append", "Order-1", "A", "{}", "--id", event_id, "--json", "--url", url)
    assert json_lines(result) == [
        {"stream_id": "Order-1", "version": 1, "position": "1", "id": event_id}
    ]


def test_append_repeated_with_the_same_id_writes_once(url: str) -> None:
    event_id = str(uuid.uuid4())
    first = ok("append", "Order-1", "A", '{"n": 1}', "--id", event_id, "-e", "0", "--url", url)
    # The retry's expected version (0) no longer holds; an idempotent retry succeeds anyway.
    again = ok("append", "Order-1", "A", '{"n": 1}', "--id", event_id, "-e", "0", "--url", url)
    assert again.stdout == first.stdout
    assert len(json_lines(ok("read", "Order-1", "--json", "--url", url))) == 1


def test_append_reads_the_event_data_from_stdin_given_a_dash(url: str) -> None:
    result = runner.invoke(app, ["append", "Order-1", "A", "-", "--url", url], input='{"x": 1}')
    assert result.exit_code == 0, result.output
    assert json_lines(ok("read", "Order-1", "--json", "--url", url))[0]["data"] == {"x": 1}


# -- read ------------------------------------------------------------------------------------


def _three_events(url: str) -> None:
    for n in (1, 2, 3):
        ok("append", "Order-1", f"E{n}", f'{{"n": {n}}}', "-m", '{"user": "u1"}', "--url", url)


def test_read_prints_one_readable_line_per_event_oldest_first(url: str) -> None:
    _three_events(url)
    lines = ok("read", "Order-1", "--url", url).stdout.splitlines()
    assert len(lines) == 3
    assert "Order-1@1" in lines[0]
    assert "E1" in lines[0]
    assert '{"n":1}' in lines[0]
    assert 'metadata={"user":"u1"}' in lines[0]
    assert "Order-1@3" in lines[2]


def test_read_json_gives_every_field_of_each_event(url: str) -> None:
    _three_events(url)
    events = json_lines(ok("read", "Order-1", "--json", "--url", url))
    assert [e["version"] for e in events] == [1, 2, 3]
    first = events[0]
    assert set(first) == {
        "stream_id",
        "version",
        "position",
        "id",
        "type",
        "data",
        "metadata",
        "correlation_id",
        "causation_id",
        "recorded_at",
    }
    assert (first["type"], first["data"], first["metadata"]) == ("E1", {"n": 1}, {"user": "u1"})


def test_read_honours_from_backwards_and_limit(url: str) -> None:
    _three_events(url)

    def versions(*args: str) -> list[object]:
        return [e["version"] for e in json_lines(ok("read", "Order-1", "--json", *args))]

    assert versions("--from", "2", "--url", url) == [2, 3]
    assert versions("--backwards", "--url", url) == [3, 2, 1]
    assert versions("--backwards", "--from", "2", "--url", url) == [2, 1]
    assert versions("--limit", "2", "--url", url) == [1, 2]


def test_read_shows_event_data_brackets_verbatim(url: str) -> None:
    ok("append", "Order-1", "A", '{"note": "[bold]x[/bold]"}', "--url", url)
    assert "[bold]x[/bold]" in ok("read", "Order-1", "--url", url).stdout


def test_read_of_a_missing_stream_prints_no_events_and_succeeds(url: str) -> None:
    result = ok("read", "Nothing-here", "--url", url)
    assert result.stdout == ""
    assert "no events" in result.stderr


# -- tail ------------------------------------------------------------------------------------


def test_tail_prints_past_events_and_stops_after_max_events(url: str) -> None:
    _three_events(url)
    result = ok("tail", "--max-events", "2", "--json", "--url", url)
    assert [e["version"] for e in json_lines(result)] == [1, 2]
    assert "tail stopped (--max-events 2): 2 events" in result.stderr


def test_tail_timeout_ends_a_tail_that_waits_for_new_events(url: str) -> None:
    _three_events(url)
    result = ok("tail", "--timeout", "2", "--url", url)
    assert len(result.stdout.splitlines()) == 3
    assert "caught up" in result.stderr
    assert "tail stopped (--timeout 2): 3 events, last position 3" in result.stderr


def test_tail_filters_by_event_type_and_by_category(url: str) -> None:
    ok("append", "Order-1", "Placed", "{}", "--url", url)
    ok("append", "Order-1", "Shipped", "{}", "--url", url)
    ok("append", "Invoice-1", "Placed", "{}", "--url", url)

    def seen(count: int, *args: str) -> list[tuple[object, object]]:
        # --max-events ends the tail without a race against the clock; an event the filter
        # should have dropped would show up among the first ones.
        limits = ("--max-events", str(count), "--timeout", "30")
        result = ok("tail", *limits, "--json", "--url", url, *args)
        return [(e["stream_id"], e["type"]) for e in json_lines(result)]

    assert seen(2, "--type", "Placed") == [("Order-1", "Placed"), ("Invoice-1", "Placed")]
    assert seen(2, "--category", "Order") == [("Order-1", "Placed"), ("Order-1", "Shipped")]
    assert seen(1, "-t", "Placed", "-c", "Invoice") == [("Invoice-1", "Placed")]
    assert seen(2, "-t", "Shipped", "-t", "Placed", "-c", "Order") == [
        ("Order-1", "Placed"),
        ("Order-1", "Shipped"),
    ]


def test_tail_after_a_position_token_starts_strictly_after_it(url: str) -> None:
    _three_events(url)
    first = json_lines(ok("tail", "--max-events", "1", "--json", "--url", url))[0]
    after = ("--after", str(first["position"]))
    rest = json_lines(ok("tail", *after, "--max-events", "2", "--json", "--url", url))
    assert [e["version"] for e in rest] == [2, 3]


def test_tail_with_a_name_resumes_after_its_saved_checkpoint(url: str) -> None:
    _three_events(url)
    first = json_lines(ok("tail", "--name", "printer", "--max-events", "1", "--json", "--url", url))
    rest = json_lines(ok("tail", "--name", "printer", "--timeout", "1", "--json", "--url", url))
    assert [e["version"] for e in first] == [1]
    assert [e["version"] for e in rest] == [2, 3]
    # The first tail stopped mid catch-up (--max-events) and the second by --timeout; each
    # saved its progress on the way out, so nothing is left to print.
    assert ok("tail", "--name", "printer", "--timeout", "0.5", "--url", url).stdout == ""


TAIL = (sys.executable, "-m", "eventstore_core.cli", "tail")


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'live.db'}"


def test_tail_prints_events_committed_while_it_runs_and_ctrl_c_exits_cleanly(
    tmp_path: Path,
) -> None:
    url = _sqlite_url(tmp_path)
    ok("append", "Order-1", "Before", "{}", "--url", url)
    tail = subprocess.Popen(
        # --timeout only bounds the test if something goes wrong; Ctrl-C is what ends it.
        [*TAIL, "--name", "live", "--json", "--timeout", "60", "--url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that started pytest in the background may have left SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert tail.stdout is not None
        assert tail.stderr is not None
        assert json.loads(tail.stdout.readline())["type"] == "Before"
        assert "caught up" in tail.stderr.readline()
        ok("append", "Order-1", "During", "{}", "--url", url)
        assert json.loads(tail.stdout.readline())["type"] == "During"
        tail.send_signal(signal.SIGINT)
        stdout, stderr = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "tail stopped (interrupted): 2 events, last position 2" in stderr
    assert stdout == ""
    # The checkpoint was saved before exiting: resuming prints only what came after.
    ok("append", "Order-1", "After", "{}", "--url", url)
    rest = json_lines(ok("tail", "--name", "live", "--max-events", "1", "--json", "--url", url))
    assert [e["type"] for e in rest] == ["After"]


# -- info and setup --------------------------------------------------------------------------


def test_info_shows_backend_url_options_and_capabilities(url: str) -> None:
    result = ok("info", "--url", url)
    backend = url.split(":", 1)[0]
    for text in (backend, "page_size", "concurrency", "multi-writer", "max_append_events"):
        assert text in result.stdout


def test_info_json_gives_the_capabilities_of_the_backend(url: str) -> None:
    (info,) = json_lines(ok("info", "--json", "--url", url))
    assert info["backend"] == url.split(":", 1)[0]
    capabilities = es.connect(url).capabilities
    assert info["capabilities"] == {
        field: getattr(capabilities, field) for field in info["capabilities"]
    }
    assert info["capabilities"]["max_append_events"] == capabilities.max_append_events


def test_info_masks_the_password_of_the_url() -> None:
    result = ok("info", "--json", "--url", "postgresql://app:hunter2@db.example/app")
    assert "hunter2" not in result.stdout
    assert json_lines(result)[0]["url"] == "postgresql://app:***@db.example/app"


def test_info_uses_eventstore_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTORE_URL", "memory://from-env")
    assert json_lines(ok("info", "--json"))[0]["url"] == "memory://from-env"


def test_info_defaults_to_the_embedded_sqlite_store() -> None:
    assert json_lines(ok("info", "--json"))[0]["url"] == es.DEFAULT_URL


def test_setup_creates_the_sqlite_file(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    result = ok("setup", "--url", url)
    assert "store ready" in result.stdout
    assert (tmp_path / "live.db").exists()
    ok("setup", "--url", url)  # idempotent


def test_version_and_help() -> None:
    assert es.__version__ in ok("--version").stdout
    help_text = run().output
    for command in ("append", "read", "log", "tail", "checkpoint", "snapshot", "info", "setup"):
        assert command in help_text


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["append", "S-1", "T", '{"a": '], ExitCode.USAGE, "is not valid JSON"),
        (["append", "S-1", "T", "[1, 2]"], ExitCode.USAGE, "must be a JSON object"),
        (["append", "S-1", "T", "{}", "-m", "nope"], ExitCode.USAGE, "--metadata is not valid"),
        (["append", "S-1", "T", "{}", "-e", "soon"], ExitCode.USAGE, "--expected-version must"),
        (["append", "S-1", "T", "{}", "-e", "-1"], ExitCode.USAGE, "--expected-version must"),
        (["append", "S-1", "T", "{}", "--id", "x"], ExitCode.USAGE, "--id must be a UUID"),
        (["append", "$all", "T", "{}"], ExitCode.USAGE, "reserved"),
        (["append", "S-1", "", "{}"], ExitCode.USAGE, "must not be empty"),
        (["read", "S\x01"], ExitCode.USAGE, "control character"),
        (["read", "S-1", "--from", "0"], ExitCode.USAGE, "from_version"),
        (["read", "S-1", "--limit", "-1"], ExitCode.USAGE, "limit"),
        (["tail", "--after", "not-a-token"], ExitCode.USAGE, "not a position token"),
        (["append", "S-1", "T", "{}", "-e", "no-stream"], ExitCode.CONFLICT, "conflict"),
        (["append", "S-1", "T", "{}", "-e", "7"], ExitCode.CONFLICT, "is at version 1"),
    ],
)
def test_bad_input_gets_a_one_line_message_and_its_exit_code(
    url: str, args: list[str], code: int, fragment: str
) -> None:
    ok("append", "S-1", "T", "{}", "--url", url)
    assert_one_line_error(run(*args, "--url", url), code, fragment)


@pytest.mark.parametrize(
    ("store_url", "fragment"),
    [
        ("nosuch://x", "no backend is registered for URL scheme 'nosuch'"),
        ("not a url", "invalid store URL"),
        ("memory://?page_size=0", "page_size"),
        ("memory://?colour=blue", "colour"),
    ],
)
def test_a_bad_url_is_a_configuration_error(store_url: str, fragment: str) -> None:
    for command in (["info"], ["read", "S-1"], ["append", "S-1", "T"], ["tail"], ["setup"]):
        assert_one_line_error(run(*command, "--url", store_url), ExitCode.CONFIGURATION, fragment)


def test_reusing_an_event_id_in_another_stream_is_a_duplicate(url: str) -> None:
    event_id = str(uuid.uuid4())
    ok("append", "S-1", "T", "{}", "--id", event_id, "--url", url)
    result = run("append", "S-2", "T", "{}", "--id", event_id, "--url", url)
    assert_one_line_error(result, ExitCode.DUPLICATE_EVENT_ID, event_id)


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    # Port 1 on localhost refuses connections at once; no server is needed.
    url = "postgresql://app@127.0.0.1:1/app?reconnect_timeout=0"
    assert_one_line_error(run("read", "S-1", "--url", url), ExitCode.UNAVAILABLE, "unavailable")


def test_an_unexpected_error_is_one_line_and_points_to_the_debug_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(url: str | None = None) -> es.EventStore:
        raise RuntimeError("boom")

    monkeypatch.setattr(es, "connect", broken)
    assert_one_line_error(run("info"), ExitCode.ERROR, "EVENTSTORE_DEBUG=1")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (es.ConcurrencyError("S-1", es.NO_STREAM, 3), ExitCode.CONFLICT),
        (es.DuplicateEventIdError("dup"), ExitCode.DUPLICATE_EVENT_ID),
        (es.InvalidEventError("bad"), ExitCode.USAGE),
        (es.ConfigurationError("conf"), ExitCode.CONFIGURATION),
        (es.UnsupportedOperationError("nope"), ExitCode.UNSUPPORTED),
        (es.BackendUnavailableError("down", maybe_applied=True), ExitCode.UNAVAILABLE),
        (es.EventStoreError("other"), ExitCode.ERROR),
    ],
)
def test_each_error_class_has_its_own_exit_code(error: Exception, code: ExitCode) -> None:
    got, message = describe(error)
    assert got == code
    assert "\n" not in message
    assert str(error).split()[0] in message


def test_exit_codes_are_distinct() -> None:
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


# -- global options, usage errors and help ----------------------------------------------------


def test_url_and_json_may_come_before_the_command(url: str) -> None:
    ok("--url", url, "append", "Order-1", "A", "{}")
    (event,) = json_lines(ok("--url", url, "--json", "read", "Order-1"))
    assert event["type"] == "A"
    (info,) = json_lines(ok("--json", "--url", url, "info"))
    assert info["backend"] == url.split(":", 1)[0]


def test_a_url_after_the_command_wins_over_one_before_it(url: str) -> None:
    ok("append", "Order-1", "A", "{}", "--url", url)
    result = ok("--url", "memory://elsewhere", "read", "Order-1", "--json", "--url", url)
    assert len(json_lines(result)) == 1


def test_a_url_on_the_command_line_wins_over_eventstore_url(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_URL", "memory://from-env")
    assert json_lines(ok("--url", url, "--json", "info"))[0]["url"] == url


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["read"], "Missing argument 'STREAM' (see 'eventstore read --help')"),
        (["read", "S-1", "--colour"], "No such option: --colour"),
        (["reed", "S-1"], "No such command 'reed'"),
        (["tail", "--max-events", "0"], "--max-events"),
        (["checkpoint", "set", "printer"], "Missing argument 'TOKEN'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], fragment: str) -> None:
    result = run(*args)
    assert_one_line_error(result, ExitCode.USAGE, fragment)
    assert result.stderr.startswith("error: ")
    assert "╭" not in result.stderr


COMMANDS = (
    [],
    ["append"],
    ["read"],
    ["log"],
    ["tail"],
    ["info"],
    ["setup"],
    ["checkpoint"],
    ["checkpoint", "get"],
    ["checkpoint", "set"],
    ["snapshot"],
    ["snapshot", "get"],
)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "eventstore")
def test_help_names_each_value_by_its_metavar_not_its_type(command: list[str]) -> None:
    text = ok(*command, "--help").stdout
    assert text.startswith("Usage: eventstore")
    for placeholder in ("<str>", "<bool>", "<int>", "<float>", "{", "}"):
        assert placeholder not in text.replace("{}", ""), (placeholder, text)
    assert "╭" not in text


def test_help_usage_lines_name_the_arguments() -> None:
    assert "Usage: eventstore read [OPTIONS] STREAM\n" in ok("read", "--help").stdout
    assert "Usage: eventstore append [OPTIONS] STREAM TYPE [JSON]\n" in ok("append", "-h").stdout
    assert "eventstore checkpoint set [OPTIONS] NAME TOKEN" in ok("checkpoint", "set", "-h").stdout


def test_the_shell_completion_script_is_available() -> None:
    script = ok("--show-completion", "bash").stdout
    assert "_EVENTSTORE_COMPLETE" in script


def test_completion_offers_commands_expected_versions_and_url_schemes() -> None:
    def complete(words: str, index: int) -> list[str]:
        env = {
            **{k: v for k, v in os.environ.items() if k != "EVENTSTORE_URL"},
            "_EVENTSTORE_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(index),
        }
        done = subprocess.run(
            [sys.executable, "-m", "eventstore_core.cli"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout.split()

    assert complete("eventstore ch", 1) == ["checkpoint"]
    assert complete("eventstore append S T {} -e no", 6) == ["no-stream"]
    assert "postgresql://" in complete("eventstore --url p", 2)


# -- reads never create anything --------------------------------------------------------------

READS = (
    ["read", "Order-1"],
    ["log"],
    ["tail", "--timeout", "1"],
    ["checkpoint", "get", "printer"],
    ["checkpoint", "set", "printer", "1"],
    ["snapshot", "get", "Order-1"],
    ["append", "Order-1", "A", "--no-setup"],
)


@pytest.mark.parametrize("command", READS, ids=lambda c: " ".join(c[:2]))
def test_a_read_on_a_missing_sqlite_file_creates_nothing_and_says_how_to_set_up(
    tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "mistyped.db"
    result = run(*command, "--url", f"sqlite:///{path}")
    assert_one_line_error(result, ExitCode.NOT_SET_UP, f"eventstore setup --url 'sqlite:///{path}'")
    assert not path.exists()
    assert "await" not in result.stderr  # no Python hint on the command line


def test_a_read_on_a_sqlite_file_without_tables_says_it_is_not_set_up(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    result = run("read", "Order-1", "--url", f"sqlite:///{path}")
    assert_one_line_error(result, ExitCode.NOT_SET_UP, "is not set up")
    ok("setup", "--url", f"sqlite:///{path}")
    ok("read", "Order-1", "--url", f"sqlite:///{path}")


def test_the_hint_omits_the_url_when_it_came_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTSTORE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    result = run("log")
    assert_one_line_error(result, ExitCode.NOT_SET_UP, "create the store with: eventstore setup")
    assert "--url" not in result.stderr


def test_not_set_up_errors_are_json_with_json(tmp_path: Path) -> None:
    result = run("--json", "log", "--url", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == ExitCode.NOT_SET_UP
    (error,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert error["error"] == "not set up"
    assert error["exit_code"] == ExitCode.NOT_SET_UP


def test_appending_in_a_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "app.db"
    for command in (["append", "Order-1", "A"], ["setup"]):
        result = run(*command, "--url", f"sqlite:///{path}")
        assert_one_line_error(result, ExitCode.CONFIGURATION, "does not exist")
    assert not path.parent.exists()


def test_reads_on_a_postgres_schema_that_is_not_set_up_create_nothing(postgres_url: str) -> None:
    schema = f"cli_{uuid.uuid4().hex[:10]}"
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    for command in (["read", "Order-1"], ["log"], ["append", "Order-1", "A", "--no-setup"]):
        assert_one_line_error(run(*command, "--url", url), ExitCode.NOT_SET_UP, "is not set up")
    ok("setup", "--url", url)
    ok("read", "Order-1", "--url", url)


def test_reads_on_a_dynamodb_table_that_does_not_exist_create_nothing(dynamodb_url: str) -> None:
    from eventstore_core.local.dynamodb import with_table

    url = with_table(dynamodb_url, f"cli_{uuid.uuid4().hex[:10]}")
    for command in (["read", "Order-1"], ["log"], ["snapshot", "get", "Order-1"]):
        assert_one_line_error(run(*command, "--url", url), ExitCode.NOT_SET_UP, "is not set up")
    # Still nothing there: an append that may not create the table is refused too.
    result = run("append", "Order-1", "A", "--no-setup", "--url", url)
    assert_one_line_error(result, ExitCode.NOT_SET_UP, "eventstore setup --url")


# -- log -------------------------------------------------------------------------------------


def test_log_prints_every_stream_in_global_order_and_stops(url: str) -> None:
    ok("append", "Order-1", "Placed", "{}", "--url", url)
    ok("append", "Invoice-1", "Sent", "{}", "--url", url)
    ok("append", "Order-1", "Paid", "{}", "--url", url)
    events = json_lines(ok("log", "--json", "--url", url))
    assert [(e["stream_id"], e["type"]) for e in events] == [
        ("Order-1", "Placed"),
        ("Invoice-1", "Sent"),
        ("Order-1", "Paid"),
    ]
    assert len(ok("log", "--url", url).stdout.splitlines()) == 3


def test_log_filters_by_type_and_category(url: str) -> None:
    ok("append", "Order-1", "Placed", "{}", "--url", url)
    ok("append", "Invoice-1", "Placed", "{}", "--url", url)
    ok("append", "Order-1", "Paid", "{}", "--url", url)

    def seen(*args: str) -> list[tuple[object, object]]:
        return [(e["stream_id"], e["type"]) for e in json_lines(ok("log", "--json", *args))]

    assert seen("--type", "Placed", "--url", url) == [
        ("Order-1", "Placed"),
        ("Invoice-1", "Placed"),
    ]
    assert seen("-c", "Order", "--url", url) == [("Order-1", "Placed"), ("Order-1", "Paid")]
    assert seen("-c", "Invoice", "-t", "Paid", "--url", url) == []


def test_log_pages_with_limit_and_after(url: str) -> None:
    _three_events(url)
    first = ok("log", "--limit", "2", "--url", url)
    assert len(first.stdout.splitlines()) == 2
    token = first.stderr.strip().rsplit("--after ", 1)[1]
    rest = json_lines(ok("log", "--json", "--after", token, "--url", url))
    assert [e["version"] for e in rest] == [3]


def test_log_of_an_empty_store_prints_nothing(url: str) -> None:
    result = ok("log", "--url", url)
    assert result.stdout == ""
    assert "no events" in result.stderr


# -- checkpoints and snapshots ---------------------------------------------------------------


def test_checkpoint_set_then_get_and_tail_resumes_after_it(url: str) -> None:
    _three_events(url)
    second = json_lines(ok("log", "--json", "--url", url))[1]["position"]
    assert (
        "checkpoint 'printer' set to"
        in ok("checkpoint", "set", "printer", second, "--url", url).stdout
    )
    assert ok("checkpoint", "get", "printer", "--url", url).stdout.strip() == second
    assert json_lines(ok("checkpoint", "get", "printer", "--json", "--url", url)) == [
        {"name": "printer", "position": second}
    ]
    rest = json_lines(ok("tail", "--name", "printer", "--timeout", "1", "--json", "--url", url))
    assert [e["version"] for e in rest] == [3]


def test_checkpoint_get_of_an_unknown_name_prints_nothing(url: str) -> None:
    result = ok("checkpoint", "get", "nobody", "--url", url)
    assert result.stdout == ""
    assert "no checkpoint saved under 'nobody'" in result.stderr
    assert json_lines(ok("--json", "checkpoint", "get", "nobody", "--url", url)) == [
        {"name": "nobody", "position": None}
    ]


def test_checkpoint_set_refuses_what_is_not_a_position_token(url: str) -> None:
    result = run("checkpoint", "set", "printer", "soon", "--url", url)
    assert_one_line_error(result, ExitCode.USAGE, "not a position token")


def test_snapshot_get_prints_the_latest_snapshot(url: str) -> None:
    async def save() -> None:
        async with es.connect(url) as store:
            await store.save_snapshot(es.Snapshot("Order-1", 2, "OrderState", {"total": 10}))

    asyncio.run(save())
    assert ok("snapshot", "get", "Order-1", "--url", url).stdout.strip() == (
        'Order-1@2  OrderState  {"total":10}'
    )
    assert json_lines(ok("snapshot", "get", "Order-1", "--json", "--url", url)) == [
        {"stream_id": "Order-1", "version": 2, "type": "OrderState", "data": {"total": 10}}
    ]


def test_snapshot_get_of_a_stream_without_one_prints_nothing(url: str) -> None:
    result = ok("snapshot", "get", "Order-9", "--url", url)
    assert result.stdout == ""
    assert "no snapshot of stream 'Order-9'" in result.stderr
    assert json_lines(ok("snapshot", "get", "Order-9", "--json", "--url", url)) == [
        {"stream_id": "Order-9", "version": None, "type": None, "data": None}
    ]


# -- info names options as the URL does, setup --json ------------------------------------------


def test_info_names_each_option_as_the_url_does() -> None:
    url = "postgresql://app:pw@db.example/app?schema=billing&target_session_attrs=primary"
    (info,) = json_lines(ok("info", "--json", "--url", url))
    assert info["options"]["schema"] == "billing"
    assert "db_schema" not in info["options"]
    assert info["options"]["target_session_attrs"] == "primary"
    assert "db_schema" not in ok("info", "--url", url).stdout


def test_info_masks_a_password_given_as_a_query_parameter() -> None:
    (info,) = json_lines(ok("info", "--json", "--url", "postgresql://app@db/app?password=hunter2"))
    assert "hunter2" not in json.dumps(info)


def test_setup_json_says_the_store_is_ready(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    assert json_lines(ok("setup", "--json", "--url", url)) == [{"url": url, "ready": True}]
