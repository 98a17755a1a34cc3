"""Basic authentication on the TLS port, as a secure single node with its default admin user.

A real secure node rejects wrong credentials with ``UNAUTHENTICATED``. The double checks the
``authorization`` header when one is sent, and lets calls without one through (a real node
would apply its ACLs to the anonymous user; the double has no ACLs).
"""

from __future__ import annotations

import base64
from typing import Any

import grpc


class Authenticator:
    """Accepts the configured user (``admin:changeit`` by default), or everyone when off."""

    def __init__(self, users: dict[str, str] | None) -> None:
        self._users = users

    async def check(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Abort the call with ``UNAUTHENTICATED`` if it carries wrong credentials."""
        if self._users is None:
            return
        header = dict(context.invocation_metadata() or ()).get("authorization")
        if header is None:
            return
        if isinstance(header, bytes):
            header = header.decode()
        scheme, _, encoded = header.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if scheme.lower() != "basic" or self._users.get(user) != password:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Bad HTTP authentication.")
