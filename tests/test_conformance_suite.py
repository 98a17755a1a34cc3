"""The conformance suite against every backend of the project (see ``conftest.py``)."""

from eventstore_conformance.suite import *  # noqa: F403
