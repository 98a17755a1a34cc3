"""Gossip, and the services the double does not implement.

``Gossip.Read`` (src/KurrentDB.Core/Services/Transport/Grpc/Gossip.Read.cs) answers the
cluster's members; a single node reports itself alive as ``Leader`` at the address and port
it was reached on, which is what the client needs for ``+discover`` URLs and for preferring
the leader.

Persistent subscriptions are out of the double's scope. Their ``List`` call answers
``NOT_FOUND`` ("no subscriptions", what a node with none answers and what the client maps to
an empty list) so that clients which list them while cleaning up keep working; every other
persistent-subscription call, like the projections, users and operations services, is
``UNIMPLEMENTED``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
from kurrentdbclient.protos.v1 import (
    gossip_pb2,
    gossip_pb2_grpc,
    persistent_pb2,
    persistent_pb2_grpc,
    shared_pb2,
)

from eventstore_kurrentdb.double._auth import Authenticator


class GossipServicer(gossip_pb2_grpc.GossipServicer):
    """One member: this node, the leader."""

    def __init__(self, host: str, port: int, auth: Authenticator) -> None:
        self._host = host
        self._port = port
        self._auth = auth
        self._instance = uuid.uuid4()

    async def Read(  # noqa: N802 (the gRPC method's name)
        self, request: shared_pb2.Empty, context: grpc.aio.ServicerContext[Any, Any]
    ) -> gossip_pb2.ClusterInfo:
        await self._auth.check(context)
        member = gossip_pb2.MemberInfo(
            instance_id=shared_pb2.UUID(string=str(self._instance)),
            time_stamp=time.time_ns() // 100,
            state=gossip_pb2.MemberInfo.VNodeState.Leader,
            is_alive=True,
            http_end_point=gossip_pb2.EndPoint(address=self._host, port=self._port),
        )
        return gossip_pb2.ClusterInfo(members=[member])


class PersistentSubscriptionsServicer(persistent_pb2_grpc.PersistentSubscriptionsServicer):
    """Answers ``List`` with "none"; everything else is unimplemented."""

    async def List(  # noqa: N802
        self, request: persistent_pb2.ListReq, context: grpc.aio.ServicerContext[Any, Any]
    ) -> persistent_pb2.ListResp:
        await context.abort(grpc.StatusCode.NOT_FOUND, "Subscription group not found")
        raise AssertionError("unreachable")  # pragma: no cover
