"""The conformance tests, one rule of docs/api.md per test.

A project runs them among its own tests with a module holding only::

    from eventstore_conformance.suite import *  # noqa: F403

and an ``eventstore_url`` fixture (the plugin's reads ``--eventstore-url``).
"""

from eventstore_conformance.suite.test_append import *  # noqa: F403
from eventstore_conformance.suite.test_bad_input import *  # noqa: F403
from eventstore_conformance.suite.test_concurrency import *  # noqa: F403
from eventstore_conformance.suite.test_connect import *  # noqa: F403
from eventstore_conformance.suite.test_errors import *  # noqa: F403
from eventstore_conformance.suite.test_events import *  # noqa: F403
from eventstore_conformance.suite.test_faults_cancellation import *  # noqa: F403
from eventstore_conformance.suite.test_faults_lost_answer import *  # noqa: F403
from eventstore_conformance.suite.test_faults_restart import *  # noqa: F403
from eventstore_conformance.suite.test_idempotency import *  # noqa: F403
from eventstore_conformance.suite.test_out_of_order_commits import *  # noqa: F403
from eventstore_conformance.suite.test_processes import *  # noqa: F403
from eventstore_conformance.suite.test_read_all import *  # noqa: F403
from eventstore_conformance.suite.test_read_stream import *  # noqa: F403
from eventstore_conformance.suite.test_resources import *  # noqa: F403
from eventstore_conformance.suite.test_snapshots_and_checkpoints import *  # noqa: F403
from eventstore_conformance.suite.test_subscriptions import *  # noqa: F403
from eventstore_conformance.suite.test_validation import *  # noqa: F403

__all__ = sorted(name for name in dict(globals()) if name.startswith("test_"))
