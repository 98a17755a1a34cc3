"""Client-streaming calls: commit a request only once the client has really finished it.

KurrentDB reads a client-streamed request (``Streams.Append``, ``AppendSession``) with
``IAsyncStreamReader.MoveNext``, which throws when the client resets the stream: a request
the client cancelled half-way is never written (src/KurrentDB.Core/Services/Transport/Grpc/
Streams.Append.cs, src/KurrentDB.Api.V2/Modules/Streams/StreamsService.cs). gRPC's Python
server reports a reset request stream as its ordinary end, so a double that wrote on
end-of-stream would commit the first half of a cancelled request: a batch's first events, or
a multi-stream append's first streams without the rest. By then gRPC's core knows that the
call was cancelled, though, and refuses to send anything on it: sending the response headers
first fails (or the handler's cancellation lands while it waits), so nothing is written.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc


async def client_finished(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Return if the client half-closed its request stream; raise ``CancelledError`` if it
    abandoned it (the call is cancelled: nothing may be written for it)."""
    try:
        await context.send_initial_metadata(())
    except asyncio.CancelledError:
        raise
    except Exception as error:  # gRPC's core refused the batch: the call is gone
        raise asyncio.CancelledError("the client abandoned its request stream") from error
