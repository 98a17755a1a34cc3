"""Refuse clearly when the client library is missing, or when only its predecessor is there."""

from __future__ import annotations

import importlib.util

from eventstore_core.adapter import ConfigurationError


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_client() -> None:
    """Raise :class:`ConfigurationError` unless kurrentdbclient can be imported."""
    if _installed("kurrentdbclient"):
        return
    if _installed("esdbclient"):
        raise ConfigurationError(
            "the kurrentdb/esdb backend runs on kurrentdbclient, but only esdbclient is "
            "installed. kurrentdbclient is esdbclient's maintained successor and also serves "
            "EventStoreDB 23.10 and 24.10; the two cannot share an environment (they pin "
            "incompatible grpcio versions and define the same protobuf symbols). Replace it: "
            'pip uninstall esdbclient && pip install "eventstore-core[kurrentdb]"'
        )
    raise ConfigurationError(
        "the kurrentdb/esdb backend needs kurrentdbclient, which is not installed. "
        'Install it with: pip install "eventstore-core[kurrentdb]"'
    )
