"""``python -m eventstore_core.cli``: the same as the ``eventstore`` command."""

from eventstore_core.cli.app import main

main()
