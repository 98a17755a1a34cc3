"""A protocol double of KurrentDB: its gRPC Streams API, in memory, for tests.

It is **not** KurrentDB. It serves what kurrentdbclient and the eventstore-core adapter use —
Streams ``Read`` (streams and ``$all``, both directions, catch-up subscriptions with filters,
checkpoints and caught-up), ``Append``, ``BatchAppend``, ``Delete``, ``Tombstone``, stream
metadata, ``Gossip.Read`` and the multi-stream ``AppendSession`` (25.1+) and
``AppendRecords`` (26.1+) — with the server's own
rules for revisions, positions, idempotency, deletes and the append size limit, each module
naming the part of KurrentDB's source it follows. It has no persistent subscriptions,
projections, users, ACLs or clusters, and keeps nothing on disk.

Run it::

    python -m eventstore_kurrentdb.double --port 2113 [--tls-port 2114 --certfile F --keyfile F]

or in-process::

    async with KurrentDBDouble() as double:
        store = es.connect(double.url)

The client's own test suite is the judge of how faithful it is: see docs/backends/kurrentdb.md.
"""

from eventstore_kurrentdb.double._log import Log
from eventstore_kurrentdb.double._server import (
    BANNER,
    HOST,
    DoubleConfig,
    KurrentDBDouble,
    running_double,
)

__all__ = ["BANNER", "HOST", "DoubleConfig", "KurrentDBDouble", "Log", "running_double"]
