"""eventstore-core: one async event store API over many backends.

>>> import eventstore_core as es
>>> async with es.connect("sqlite:///./app.db") as store:      # doctest: +SKIP
...     await store.setup()
...     await store.append("Order-1", [es.NewEvent("OrderPlaced", {"total": 10})])
"""

from eventstore_core.config import DEFAULT_URL, StoreOptions
from eventstore_core.connect import connect
from eventstore_core.errors import (
    BackendUnavailableError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventIdError,
    EventStoreError,
    InvalidEventError,
    UnsupportedOperationError,
    WrongExpectedVersionError,
)
from eventstore_core.models import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    Capabilities,
    EventFilter,
    ExpectedVersion,
    NewEvent,
    PartitionedPosition,
    Position,
    RecordedEvent,
    Snapshot,
    StreamState,
)
from eventstore_core.store import EventStore
from eventstore_core.subscription import Subscription

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "DEFAULT_URL",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "BackendUnavailableError",
    "Capabilities",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventIdError",
    "EventFilter",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "InvalidEventError",
    "NewEvent",
    "PartitionedPosition",
    "Position",
    "RecordedEvent",
    "Snapshot",
    "StoreOptions",
    "StreamState",
    "Subscription",
    "UnsupportedOperationError",
    "WrongExpectedVersionError",
    "connect",
]
