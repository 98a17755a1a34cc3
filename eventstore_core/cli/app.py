"""The ``eventstore`` Typer application and its commands.

Each command parses its arguments first (so bad input fails before any connection), then runs
one coroutine with :func:`asyncio.run` inside :func:`reporting_errors`, which turns every
failure into a one-line message and an exit code. A new command (``compare``) goes in a module
of its own whose function is decorated with ``@app.command()``; importing that module from
``eventstore_core/cli/__init__.py`` registers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import orjson
import typer
from rich.console import Console
from rich.text import Text

import eventstore_core as es
from eventstore_core.cli.arguments import parse_event_id, parse_expected_version, parse_json_object
from eventstore_core.cli.errors import ExitCode, reporting_errors
from eventstore_core.cli.output import (
    capabilities_table,
    event_json,
    event_line,
    store_json,
    store_table,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="eventstore",
    help=(
        "Append, read and follow events in any eventstore-core backend. The store is chosen by "
        f"--url or EVENTSTORE_URL (default: the embedded {es.DEFAULT_URL})."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Errors are reported by reporting_errors(); a traceback would only hide the message.
    pretty_exceptions_enable=False,
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="EVENTSTORE_URL",
        show_envvar=True,
        help=f"Store URL, e.g. memory:// or postgresql://user@host/db (default: {es.DEFAULT_URL}).",
    ),
]
SetupOption = Annotated[
    bool,
    typer.Option(
        "--setup/--no-setup",
        help="Create the store's tables first if missing (idempotent). Use --no-setup with "
        "credentials that may not create tables.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per line, for programs.")
]


def _stdout() -> Console:
    # Created per command, not at import: the console must write to the sys.stdout of the
    # moment (a test runner swaps it), and highlighting would colour numbers inside event data.
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


@asynccontextmanager
async def _opened(url: str | None, setup: bool) -> AsyncIterator[es.EventStore]:
    async with es.connect(url) as store:
        if setup:
            await store.setup()
        yield store


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"eventstore-core {es.__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Append, read and follow events in any eventstore-core backend."""


# -- append ----------------------------------------------------------------------------------


@app.command()
def append(
    stream: Annotated[str, typer.Argument(help="Stream id, e.g. Order-42.")],
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="Event type.")],
    data: Annotated[
        str,
        typer.Argument(metavar="JSON", help="Event data, a JSON object; - reads standard input."),
    ] = "{}",
    expected_version: Annotated[
        str,
        typer.Option(
            "--expected-version",
            "-e",
            metavar="any|no-stream|exists|N",
            help="Append only if the stream is in this state (N: exactly at version N).",
        ),
    ] = "any",
    metadata: Annotated[
        str | None, typer.Option("--metadata", "-m", metavar="JSON", help="Metadata object.")
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            metavar="UUID",
            help="Event id (default: random). Repeating an append with the same id is a no-op.",
        ),
    ] = None,
    url: UrlOption = None,
    setup: SetupOption = True,
    json_output: JsonOption = False,
) -> None:
    """Append one event to a stream."""
    with reporting_errors():
        expected = parse_expected_version(expected_version)
        event = es.NewEvent(
            event_type,
            parse_json_object(data, "the event data (JSON)"),
            parse_json_object(metadata, "--metadata") if metadata is not None else {},
            id=parse_event_id(event_id),
        )
        result = asyncio.run(_append(url, setup, stream, event, expected))
    if json_output:
        typer.echo(
            orjson.dumps(
                {
                    "stream_id": stream,
                    "version": result.version,
                    "position": str(result.position),
                    "id": str(event.id),
                }
            ).decode()
        )
    else:
        _stdout().print(
            f"appended {event.type} to {stream}: version {result.version}, "
            f"position {result.position}",
            markup=False,
            soft_wrap=True,
        )


async def _append(
    url: str | None,
    setup: bool,
    stream: str,
    event: es.NewEvent,
    expected: es.ExpectedVersion,
) -> es.AppendResult:
    async with _opened(url, setup) as store:
        return await store.append(stream, [event], expected_version=expected)


# -- read ------------------------------------------------------------------------------------


@app.command()
def read(
    stream: Annotated[str, typer.Argument(help="Stream id, e.g. Order-42.")],
    from_version: Annotated[
        int | None,
        typer.Option(
            "--from",
            metavar="VERSION",
            help="First version to read (default: 1, or the last with --backwards).",
        ),
    ] = None,
    backwards: Annotated[bool, typer.Option("--backwards", "-b", help="Newest first.")] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", metavar="N", help="Read at most N events.")
    ] = None,
    url: UrlOption = None,
    setup: SetupOption = True,
    json_output: JsonOption = False,
) -> None:
    """Print a stream's events, oldest first (a stream that does not exist prints nothing)."""
    with reporting_errors():
        count = asyncio.run(_read(url, setup, stream, from_version, backwards, limit, json_output))
    if count == 0 and not json_output:
        _stderr().print(f"no events read from stream {stream!r}", markup=False, soft_wrap=True)


async def _read(
    url: str | None,
    setup: bool,
    stream: str,
    from_version: int | None,
    backwards: bool,
    limit: int | None,
    json_output: bool,
) -> int:
    console = _stdout()
    count = 0
    async with _opened(url, setup) as store:
        # Printed as they arrive: reads are paged, so a long stream never sits in memory.
        async for event in store.read_stream(stream, from_version, backwards, limit):
            if json_output:
                typer.echo(event_json(event))
            else:
                console.print(event_line(event), soft_wrap=True)
            count += 1
    return count


# -- tail ------------------------------------------------------------------------------------

# With --name, the checkpoint is saved at least this often during catch-up, and after every
# event once live: a restart re-delivers at most this many events (delivery is at-least-once).
_CHECKPOINT_EVERY = 100


@dataclass
class _TailState:
    started: bool = False
    delivered: int = 0
    last: es.Position | None = None
    reason: str = "interrupted"


@app.command()
def tail(
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="TOKEN", help="Start after this position token."),
    ] = None,
    event_types: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", metavar="TYPE", help="Only this event type (repeatable)."),
    ] = None,
    categories: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            "-c",
            metavar="CATEGORY",
            help="Only streams of this category, e.g. Order for Order-42 (repeatable).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Resume after the checkpoint saved under NAME, and save progress there.",
        ),
    ] = None,
    max_events: Annotated[
        int | None,
        typer.Option("--max-events", metavar="N", min=1, help="Stop after N events."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", metavar="SECONDS", min=0, help="Stop after SECONDS."),
    ] = None,
    url: UrlOption = None,
    setup: SetupOption = True,
    json_output: JsonOption = False,
) -> None:
    """Follow every event of the store: catch up, then print new events as they commit.

    Stops on Ctrl-C (exit code 0), or after --max-events or --timeout.
    """
    state = _TailState()
    with reporting_errors(interrupt_code=ExitCode.OK):
        try:
            event_filter = (
                es.EventFilter(event_types=event_types or None, categories=categories or None)
                if event_types or categories
                else None
            )
            options = _TailOptions(after, event_filter, name, max_events, timeout, json_output)
            asyncio.run(_tail(url, setup, options, state))
        finally:
            if state.started:
                where = f", last position {state.last}" if state.last is not None else ""
                _stderr().print(
                    Text(f"tail stopped ({state.reason}): {_count(state.delivered)}{where}", "dim"),
                    soft_wrap=True,
                )


@dataclass(frozen=True)
class _TailOptions:
    after: str | None
    filter: es.EventFilter | None
    name: str | None
    max_events: int | None
    timeout: float | None
    json_output: bool


async def _tail(url: str | None, setup: bool, options: _TailOptions, state: _TailState) -> None:
    name = options.name
    async with _opened(url, setup) as store:
        subscription = store.subscribe(after=options.after, filter=options.filter, name=name)
        deadline = asyncio.timeout(options.timeout)
        unsaved = 0
        try:
            async with (
                subscription,
                deadline,
                aclosing(_announcing_live(subscription)) as events,
            ):
                state.started = True
                try:
                    async for event in events:
                        _print_event(event, options.json_output)
                        state.delivered += 1
                        state.last = event.position
                        unsaved += 1
                        if name is not None and (
                            subscription.is_live or unsaved >= _CHECKPOINT_EVERY
                        ):
                            await store.save_checkpoint(name, event.position)
                            unsaved = 0
                        if options.max_events is not None and state.delivered >= options.max_events:
                            state.reason = f"--max-events {options.max_events}"
                            return
                    state.reason = "the subscription ended"
                finally:
                    # Also on Ctrl-C and --timeout (both cancel this task): keep the progress of
                    # what was printed, so a restart with the same --name does not repeat it.
                    if name is not None and unsaved and state.last is not None:
                        await store.save_checkpoint(name, state.last)
        except TimeoutError:
            if not deadline.expired():
                state.reason = "error"
                raise  # a backend's timeout, not --timeout
            state.reason = f"--timeout {options.timeout:g}"
        except Exception:
            # Not a cancellation (Ctrl-C), which is a BaseException and keeps "interrupted".
            state.reason = "error"
            raise


async def _announcing_live(
    subscription: es.Subscription,
) -> AsyncGenerator[es.RecordedEvent, None]:
    """Yield the subscription's events; say once on stderr when it has caught up.

    Until then, each next event is awaited with a short grace period: if none comes and the
    subscription is live, it is now waiting for new commits, which is worth telling the user.
    """
    next_event = asyncio.ensure_future(anext(subscription))
    try:
        # Catching up: each read is a task, so that it can be watched with a grace period.
        while True:
            done, _ = await asyncio.wait({next_event}, timeout=0.2)
            if not done and subscription.is_live:
                _stderr().print(
                    Text("caught up; waiting for new events (Ctrl-C to stop)", "dim"),
                    soft_wrap=True,
                )
                break
            yield await next_event
            next_event = asyncio.ensure_future(anext(subscription))
        # Live: finish the pending read, then await the subscription directly.
        yield await next_event
        while True:
            yield await anext(subscription)
    except StopAsyncIteration:
        return
    finally:
        # Cancelled by Ctrl-C or --timeout while waiting: never leave a read running.
        next_event.cancel()


def _count(events: int) -> str:
    return f"{events} event" if events == 1 else f"{events} events"


def _print_event(event: es.RecordedEvent, json_output: bool) -> None:
    if json_output:
        typer.echo(event_json(event))
    else:
        _stdout().print(event_line(event), soft_wrap=True)


# -- info and setup --------------------------------------------------------------------------


@app.command()
def info(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Show the backend, the URL (secrets masked), options and capabilities; no connection."""
    with reporting_errors():
        store = es.connect(url)
        backend = urlsplit(store.url).scheme
    if json_output:
        typer.echo(store_json(store, backend))
        return
    console = _stdout()
    console.print(store_table(store, backend))
    console.print(capabilities_table(store.capabilities))


@app.command("setup")
def setup_command(url: UrlOption = None) -> None:
    """Create the store's tables, indexes or topics if missing (idempotent)."""
    with reporting_errors():
        store_url = asyncio.run(_setup(url))
    _stdout().print(f"store ready: {store_url}", markup=False, soft_wrap=True)


async def _setup(url: str | None) -> str:
    async with _opened(url, setup=True) as store:
        return store.url


# `eventstore compare` lives in its own package; registered here as a sub-application.
from eventstore_core.compare.cli import compare_app  # noqa: E402

app.add_typer(compare_app, name="compare")


def main() -> None:
    """Run the ``eventstore`` command (the console script's entry point)."""
    app()
