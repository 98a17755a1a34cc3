"""The KurrentDB / EventStoreDB backend of eventstore-core (``kurrentdb://``, ``esdb://`` URLs,
also with ``+discover``), on kurrentdbclient.

Install with ``pip install "eventstore-core[kurrentdb]"``; see docs/backends/kurrentdb.md. The
protocol double used to test it without a server is :mod:`eventstore_kurrentdb.double`; the
store is imported lazily, so that running the double never loads the adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventstore_kurrentdb.store import KurrentDBEventStore, KurrentDBOptions

__all__ = ["KurrentDBEventStore", "KurrentDBOptions"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from eventstore_kurrentdb._requirements import check_client

        check_client()
        from eventstore_kurrentdb import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
