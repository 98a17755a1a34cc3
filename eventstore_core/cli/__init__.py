"""The ``eventstore`` command line: append, read, tail, inspect and set up a store.

The console script ``eventstore`` (``[project.scripts]``) points at :data:`app`. The package
keeps one job per module so that new commands (``compare``, ``bench``) slot in beside the
others: ``app`` holds the Typer application and the commands, ``arguments`` turns command-line
strings into API values, ``output`` renders events and capabilities, and ``errors`` maps every
:class:`~eventstore_core.EventStoreError` to a one-line message and an exit code.
"""

from eventstore_core.cli.app import app, main
from eventstore_core.cli.errors import ExitCode

__all__ = ["ExitCode", "app", "main"]
