"""How the commands present themselves: plain help, and usage errors on one line.

Typer's defaults do not fit a tool whose every failure is one line on standard error: a
usage error is a five-line box, the usage line writes arguments as ``{stream}``, and the help
lists a ``<str>`` or ``<bool>`` type beside each name. :class:`Group` and :class:`Command`
keep Typer's parsing and completion and change only that: help in the style of most Unix
tools (``Usage: eventstore read [OPTIONS] STREAM``, metavars instead of types), and a usage
error as ``error: <what> (see 'eventstore read --help')`` with exit code 2.

Every command of the ``eventstore`` application, sub-applications included, is created with
``cls=Command`` (see :func:`eventstore_core.cli.app.command`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

# Typer (0.29 and later) ships its own copy of click as ``typer._click``: its exceptions and
# classes, not those of an installed click, are what Typer raises and builds commands from.
from typer import _click as click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from eventstore_core.cli.errors import ExitCode, print_error

__all__ = ["Command", "Group"]


def _argument_name(param: TyperArgument) -> str:
    name = param.metavar or (param.name or "").upper()
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


def _usage_pieces(command: click.Command, ctx: click.Context) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    pieces += [
        _argument_name(param)
        for param in command.get_params(ctx)
        if isinstance(param, TyperArgument)
    ]
    return pieces


def _format_parameters(
    command: click.Command, ctx: click.Context, formatter: click.HelpFormatter
) -> None:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            if not param.hidden:
                arguments.append((_argument_name(param).strip("[]"), param.help or ""))
        elif isinstance(param, TyperOption):
            # Typer's record for an option shows its metavar (every option here names one)
            # and no type for a flag, as click does.
            record = param.get_help_record(ctx)
            if record is not None:
                options.append(record)
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


def _usage_hint(error: click.exceptions.UsageError) -> str:
    ctx = error.ctx
    path = ctx.command_path if ctx is not None else "eventstore"
    return f"see '{path} --help'"


def _run_with_one_line_errors(
    main: Any, args: Sequence[str] | None, standalone_mode: bool, **extra: Any
) -> Any:
    """Run a click ``main`` in non-standalone mode; report usage errors on one line."""
    try:
        result = main(args=args, standalone_mode=False, **extra)
    except click.exceptions.NoArgsIsHelpError as error:
        # `eventstore` or `eventstore checkpoint` alone: the help is the useful answer.
        if error.ctx is not None:
            typer.echo(error.ctx.get_help())
        code: int = error.exit_code
    except click.exceptions.UsageError as error:
        message = " ".join(error.format_message().split())
        print_error(f"error: {message.rstrip('.')} ({_usage_hint(error)})")
        code = error.exit_code
    except typer.TyperException as error:
        print_error(f"error: {' '.join(error.format_message().split())}")
        code = error.exit_code
    except typer.Abort:
        print_error("aborted")
        code = ExitCode.ERROR
    else:
        # Non-standalone: a command that ended with typer.Exit(code) returns that code here.
        code = result if isinstance(result, int) else ExitCode.OK
        if not standalone_mode:
            return result
    if not standalone_mode:
        raise SystemExit(code)
    sys.exit(code)


class Command(TyperCommand):
    """A command with click-style help and one-line usage errors."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_parameters(self, ctx, formatter)


class Group(TyperGroup):
    """The application (and each sub-application): click-style help, one-line usage errors."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _format_parameters(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Parse ``args`` and run the command; a usage error is one line on stderr, exit 2."""
        return _run_with_one_line_errors(
            super().main,
            args,
            standalone_mode,
            prog_name=prog_name,
            complete_var=complete_var,
            **extra,
        )
