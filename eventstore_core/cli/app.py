"""The ``eventstore`` Typer application and its commands.

Each command parses its arguments first (so bad input fails before any connection), then runs
one coroutine with :func:`asyncio.run` inside :func:`reporting_errors`, which turns every
failure into a one-line message and an exit code. ``--url`` and ``--json`` may come before the
command (``eventstore --url URL read S``) or after it; after it wins.

Only ``setup`` and ``append`` may create the store; every other command opens it as it is
(see :mod:`eventstore_core.cli.stores`). A new command goes in a module of its own, as a
function decorated with ``@command(app)`` or as a sub-application added with
``app.add_typer(sub_app, name=...)`` where ``sub_app = typer.Typer(cls=Group)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import orjson
import typer
from rich.console import Console
from rich.text import Text
from typer._click.core import ParameterSource

import eventstore_core as es
from eventstore_core.cli.arguments import parse_event_id, parse_expected_version, parse_json_object
from eventstore_core.cli.errors import ExitCode, reporting_errors
from eventstore_core.cli.help import Command, Group
from eventstore_core.cli.output import (
    capabilities_table,
    event_json,
    event_line,
    snapshot_json,
    snapshot_line,
    store_json,
    store_table,
)
from eventstore_core.cli.stores import Target, opened
from eventstore_core.registry import available_schemes

__all__ = ["app", "command", "main"]

_F = TypeVar("_F", bound=Callable[..., Any])

app = typer.Typer(
    name="eventstore",
    help=(
        "Append, read and follow events in any eventstore-core backend. The store is chosen by "
        f"--url or EVENTSTORE_URL (default: the embedded {es.DEFAULT_URL})."
    ),
    cls=Group,
    no_args_is_help=True,
    # --install-completion / --show-completion, for bash, zsh, fish and PowerShell.
    add_completion=True,
    # Plain help (see cli.help); errors are reported by reporting_errors(), on one line.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(typer_app: typer.Typer, name: str | None = None) -> Callable[[_F], _F]:
    """``@typer_app.command(name)`` with this CLI's help and one-line errors."""
    decorator: Callable[[_F], _F] = typer_app.command(name, cls=Command)
    return decorator


checkpoint_app = typer.Typer(
    cls=Group, no_args_is_help=True, help="Read or move the checkpoint saved under a name."
)
snapshot_app = typer.Typer(cls=Group, no_args_is_help=True, help="Read a stream's snapshot.")
app.add_typer(checkpoint_app, name="checkpoint")
app.add_typer(snapshot_app, name="snapshot")


def _complete_url(incomplete: str) -> list[str]:
    return [f"{scheme}://" for scheme in available_schemes() if scheme.startswith(incomplete)]


def _complete_expected_version(incomplete: str) -> list[str]:
    return [state for state in ("any", "no-stream", "exists") if state.startswith(incomplete)]


_URL_HELP = "Store URL, e.g. memory://NAME or postgresql://user@host/db"

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help=f"{_URL_HELP} (default: as given before the command).",
        autocompletion=_complete_url,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per line, for programs.")
]
StreamArgument = Annotated[
    str, typer.Argument(metavar="STREAM", help="Stream id, e.g. Order-42.", show_default=False)
]
TypesOption = Annotated[
    list[str] | None,
    typer.Option("--type", "-t", metavar="TYPE", help="Only this event type (repeatable)."),
]
CategoriesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        "-c",
        metavar="CATEGORY",
        help="Only streams of this category, e.g. Order for Order-42 (repeatable).",
    ),
]
AfterOption = Annotated[
    str | None,
    typer.Option("--after", metavar="TOKEN", help="Start after this position token."),
]


def _stdout() -> Console:
    # Created per command, not at import: the console must write to the sys.stdout of the
    # moment (a test runner swaps it), and highlighting would colour numbers inside event data.
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _echo_json(value: object) -> None:
    typer.echo(orjson.dumps(value).decode())


# -- global options --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Globals:
    url: str | None = None
    url_explicit: bool = False
    json_output: bool = False


_GLOBALS_KEY = "eventstore_core.cli"


def _globals(ctx: typer.Context) -> _Globals:
    found = ctx.meta.get(_GLOBALS_KEY)
    return found if isinstance(found, _Globals) else _Globals()


def _target(ctx: typer.Context, url: str | None) -> Target:
    if url is not None:
        return Target(url, explicit=True)
    options = _globals(ctx)
    return Target(options.url, explicit=options.url_explicit)


def _json(ctx: typer.Context, json_output: bool) -> bool:
    return json_output or _globals(ctx).json_output


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"eventstore-core {es.__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            envvar="EVENTSTORE_URL",
            show_envvar=True,
            help=f"{_URL_HELP} (default: {es.DEFAULT_URL}).",
            autocompletion=_complete_url,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Every command prints JSON, one object per line.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Append, read and follow events in any eventstore-core backend."""
    explicit = url is not None and ctx.get_parameter_source("url") is ParameterSource.COMMANDLINE
    ctx.meta[_GLOBALS_KEY] = _Globals(url=url, url_explicit=explicit, json_output=json_output)


# -- append ----------------------------------------------------------------------------------


@command(app)
def append(
    ctx: typer.Context,
    stream: StreamArgument,
    event_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type.", show_default=False)
    ],
    data: Annotated[
        str,
        typer.Argument(
            metavar="JSON",
            help="Event data, a JSON object (default: {}); - reads standard input.",
            show_default=False,
        ),
    ] = "{}",
    expected_version: Annotated[
        str,
        typer.Option(
            "--expected-version",
            "-e",
            metavar="any|no-stream|exists|N",
            help="Append only if the stream is in this state (N: exactly at version N).",
            autocompletion=_complete_expected_version,
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
    setup: Annotated[
        bool,
        typer.Option(
            "--setup/--no-setup",
            help="Create the store first if missing (the default; idempotent). --no-setup: "
            "fail instead, e.g. with credentials that may not create tables.",
        ),
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Append one event to a stream."""
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        expected = parse_expected_version(expected_version)
        event = es.NewEvent(
            event_type,
            parse_json_object(data, "the event data (JSON)"),
            parse_json_object(metadata, "--metadata") if metadata is not None else {},
            id=parse_event_id(event_id),
        )
        result = asyncio.run(_append(_target(ctx, url), setup, stream, event, expected))
    if as_json:
        _echo_json(
            {
                "stream_id": stream,
                "version": result.version,
                "position": str(result.position),
                "id": str(event.id),
            }
        )
    else:
        _stdout().print(
            f"appended {event.type} to {stream}: version {result.version}, "
            f"position {result.position}",
            markup=False,
            soft_wrap=True,
        )


async def _append(
    target: Target,
    setup: bool,
    stream: str,
    event: es.NewEvent,
    expected: es.ExpectedVersion,
) -> es.AppendResult:
    async with opened(target, setup=setup) as store:
        return await store.append(stream, [event], expected_version=expected)


# -- read and log ----------------------------------------------------------------------------


@command(app)
def read(
    ctx: typer.Context,
    stream: StreamArgument,
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
    json_output: JsonOption = False,
) -> None:
    """Print a stream's events, oldest first.

    A stream that does not exist prints nothing (and says so on stderr).
    """
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        count = asyncio.run(
            _read(_target(ctx, url), stream, from_version, backwards, limit, as_json)
        )
    if count == 0 and not as_json:
        _stderr().print(f"no events read from stream {stream!r}", markup=False, soft_wrap=True)


async def _read(
    target: Target,
    stream: str,
    from_version: int | None,
    backwards: bool,
    limit: int | None,
    json_output: bool,
) -> int:
    count = 0
    async with opened(target) as store:
        # Printed as they arrive: reads are paged, so a long stream never sits in memory.
        async for event in store.read_stream(stream, from_version, backwards, limit):
            _print_event(event, json_output)
            count += 1
    return count


@command(app, "log")
def log_command(
    ctx: typer.Context,
    after: AfterOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", metavar="N", help="Print at most N events.")
    ] = None,
    event_types: TypesOption = None,
    categories: CategoriesOption = None,
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the global log: every stream's events, in order.

    Prints what is stored and stops (tail follows new events). With --limit, a last line on
    stderr gives the --after token that continues the listing.
    """
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        event_filter = _filter(event_types, categories)
        count, last = asyncio.run(_log(_target(ctx, url), after, event_filter, limit, as_json))
    if as_json:
        return
    if count == 0:
        _stderr().print("no events", style="dim", soft_wrap=True)
    elif limit is not None and count == limit and last is not None:
        _stderr().print(
            f"{_count(count)}; continue with --after {last}", style="dim", soft_wrap=True
        )


async def _log(
    target: Target,
    after: str | None,
    event_filter: es.EventFilter | None,
    limit: int | None,
    json_output: bool,
) -> tuple[int, es.Position | None]:
    count = 0
    last: es.Position | None = None
    async with opened(target) as store:
        async for event in store.read_all(after=after, filter=event_filter, limit=limit):
            _print_event(event, json_output)
            count += 1
            last = event.position
    return count, last


def _filter(event_types: list[str] | None, categories: list[str] | None) -> es.EventFilter | None:
    if not event_types and not categories:
        return None
    return es.EventFilter(event_types=event_types or None, categories=categories or None)


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


@command(app)
def tail(
    ctx: typer.Context,
    after: AfterOption = None,
    event_types: TypesOption = None,
    categories: CategoriesOption = None,
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
    json_output: JsonOption = False,
) -> None:
    """Follow the global log: catch up, then print new events.

    Stops on Ctrl-C (exit code 0), or after --max-events or --timeout.
    """
    state = _TailState()
    as_json = _json(ctx, json_output)
    with reporting_errors(interrupt_code=ExitCode.OK, json_output=as_json):
        try:
            event_filter = _filter(event_types, categories)
            options = _TailOptions(after, event_filter, name, max_events, timeout, as_json)
            asyncio.run(_tail(_target(ctx, url), options, state))
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


async def _tail(target: Target, options: _TailOptions, state: _TailState) -> None:
    name = options.name
    async with opened(target) as store:
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


# -- checkpoints and snapshots ---------------------------------------------------------------

CheckpointName = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="The checkpoint's name, as given to tail --name.", show_default=False
    ),
]


@command(checkpoint_app, "get")
def checkpoint_get(
    ctx: typer.Context, name: CheckpointName, url: UrlOption = None, json_output: JsonOption = False
) -> None:
    """Print the position token saved under NAME (nothing, if none is saved)."""
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        position = asyncio.run(_checkpoint_get(_target(ctx, url), name))
    token = None if position is None else str(position)
    if as_json:
        _echo_json({"name": name, "position": token})
    elif token is None:
        _stderr().print(f"no checkpoint saved under {name!r}", markup=False, soft_wrap=True)
    else:
        typer.echo(token)


async def _checkpoint_get(target: Target, name: str) -> es.Position | None:
    async with opened(target) as store:
        return await store.load_checkpoint(name)


@command(checkpoint_app, "set")
def checkpoint_set(
    ctx: typer.Context,
    name: CheckpointName,
    position: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN",
            help="A position token, as printed by log, read or tail.",
            show_default=False,
        ),
    ],
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Save TOKEN under NAME: a tail --name NAME then resumes after that position."""
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        asyncio.run(_checkpoint_set(_target(ctx, url), name, position))
    if as_json:
        _echo_json({"name": name, "position": position})
    else:
        _stdout().print(f"checkpoint {name!r} set to {position}", markup=False, soft_wrap=True)


async def _checkpoint_set(target: Target, name: str, position: str) -> None:
    async with opened(target) as store:
        await store.save_checkpoint(name, position)


@command(snapshot_app, "get")
def snapshot_get(
    ctx: typer.Context,
    stream: StreamArgument,
    url: UrlOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the latest snapshot saved for STREAM: its version, type and data."""
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        snapshot = asyncio.run(_snapshot_get(_target(ctx, url), stream))
    if as_json:
        typer.echo(snapshot_json(stream, snapshot))
    elif snapshot is None:
        _stderr().print(f"no snapshot of stream {stream!r}", markup=False, soft_wrap=True)
    else:
        _stdout().print(snapshot_line(snapshot), soft_wrap=True)


async def _snapshot_get(target: Target, stream: str) -> es.Snapshot | None:
    async with opened(target) as store:
        return await store.load_snapshot(stream)


# -- info and setup --------------------------------------------------------------------------


@command(app)
def info(ctx: typer.Context, url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Show the backend, options and capabilities.

    The URL is shown with its secrets masked; nothing connects to the store.
    """
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        store = es.connect(_target(ctx, url).url)
        backend = urlsplit(store.url).scheme
    if as_json:
        typer.echo(store_json(store, backend))
        return
    console = _stdout()
    console.print(store_table(store, backend))
    console.print(capabilities_table(store.capabilities))


@command(app, "setup")
def setup_command(
    ctx: typer.Context, url: UrlOption = None, json_output: JsonOption = False
) -> None:
    """Create the store if missing: tables, indexes or topics.

    Idempotent, and safe to run from several processes at once.
    """
    as_json = _json(ctx, json_output)
    with reporting_errors(json_output=as_json):
        store_url = asyncio.run(_setup(_target(ctx, url)))
    if as_json:
        _echo_json({"url": store_url, "ready": True})
    else:
        _stdout().print(f"store ready: {store_url}", markup=False, soft_wrap=True)


async def _setup(target: Target) -> str:
    async with opened(target, setup=True) as store:
        return store.url


# `eventstore compare` lives in its own package; registered here as a sub-application.
from eventstore_core.compare.cli import compare_app  # noqa: E402

app.add_typer(compare_app, name="compare")


def main() -> None:
    """Run the ``eventstore`` command (also as ``python -m eventstore_core.cli``)."""
    # One program name however it is started: help, errors and shell completion say eventstore.
    app(prog_name="eventstore")
