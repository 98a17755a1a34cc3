"""Everything an adapter may use, in one place: the surface a backend is written against.

A backend package imports from here (and from the public ``eventstore_core``) and from
nothing else of the core::

    from eventstore_core.adapter import EventStore, Capabilities, Refused, Written, ...

It subclasses :class:`EventStore`, declares ``capabilities`` and its ``Options`` (a
:class:`StoreOptions` subclass), and implements the hooks below; the core does everything
else (validation, the meaning of ``expected_version``, idempotency decisions, paging,
subscriptions, background tasks, lifecycle). ``backends/eventstore_memory`` is a complete
example.

| hook | required | what it does |
|---|---|---|
| ``_open()``, ``_close()`` | yes | connections |
| ``_setup()`` | yes | create tables / topics; idempotent, safe concurrently |
| ``_append(stream_id, events, expected)`` | yes | write atomically, or return :class:`Refused` |
| ``_read_stream_page(...)`` | yes | a page of one stream (backwards if declared) |
| ``_read_all_page(after, filter, limit)`` | yes | a page of the global log; never past a hole |
| ``_stream_version(stream_id)`` | yes | the stream's version |
| ``_save_checkpoint``, ``_load_checkpoint`` | yes | named positions |
| ``_save_snapshot``, ``_load_snapshot`` | if ``snapshots`` | latest snapshot per stream |
| ``_watch()`` | no | notice other processes' commits while subscribed |
| ``_background()`` | no | a task from open to close (tailer, LISTEN) |
| ``_push(after, filter)`` | no | server push for subscriptions, with :data:`CAUGHT_UP` |

The hooks' docstrings in :mod:`eventstore_core.store` say what each must guarantee.
"""

from __future__ import annotations

from eventstore_core import serialization
from eventstore_core.clock import UNIX_EPOCH, now_micros
from eventstore_core.config import ParsedUrl, StoreOptions
from eventstore_core.decision import (
    MAX_VERSION,
    Refused,
    Written,
    check_expected_version,
    decide,
    expected_range,
    idempotent_result,
)
from eventstore_core.errors import (
    BackendUnavailableError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventIdError,
    EventStoreError,
    InvalidEventError,
    UnsupportedOperationError,
)
from eventstore_core.models import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Capabilities,
    EventFilter,
    ExpectedVersion,
    PartitionedPosition,
    Position,
    RecordedEvent,
    Snapshot,
    StreamState,
    category_of,
)
from eventstore_core.notify import Notifier, Signal
from eventstore_core.retry import Backoff
from eventstore_core.store import EventStore
from eventstore_core.subscription import CAUGHT_UP, CaughtUp
from eventstore_core.tasks import CounterWatcher
from eventstore_core.validation import MAX_NAME_LENGTH, PreparedEvent

#: What ``_append`` returns.
AppendOutcome = Written | Refused

__all__ = [
    "ANY",
    "CAUGHT_UP",
    "MAX_NAME_LENGTH",
    "MAX_VERSION",
    "NO_STREAM",
    "STREAM_EXISTS",
    "UNIX_EPOCH",
    "AppendOutcome",
    "AppendResult",
    "BackendUnavailableError",
    "Backoff",
    "Capabilities",
    "CaughtUp",
    "ConcurrencyError",
    "ConfigurationError",
    "CounterWatcher",
    "DuplicateEventIdError",
    "EventFilter",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "InvalidEventError",
    "Notifier",
    "ParsedUrl",
    "PartitionedPosition",
    "Position",
    "PreparedEvent",
    "RecordedEvent",
    "Refused",
    "Signal",
    "Snapshot",
    "StoreOptions",
    "StreamState",
    "UnsupportedOperationError",
    "Written",
    "category_of",
    "check_expected_version",
    "decide",
    "expected_range",
    "idempotent_result",
    "now_micros",
    "serialization",
]
