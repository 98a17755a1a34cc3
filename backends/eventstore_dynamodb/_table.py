"""The table's low-level calls: one client, one retry loop, every driver error translated.

Writes, reads and snapshots all go through :class:`Table`, so that what is retried, for how
long (``retry_timeout``, with the core's :class:`~eventstore_core.adapter.Backoff`) and what
``maybe_applied`` says is decided in one place. The one call that does not is the append's
``TransactWriteItems`` (see ``_writes``): its cancellation reasons are the append's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from eventstore_core.adapter import Backoff, EventStoreError
from eventstore_dynamodb import _items as keys
from eventstore_dynamodb._errors import (
    CAUGHT,
    error_code,
    is_retryable,
    may_have_applied,
    translate,
)

__all__ = ["HOLE_WAIT", "Table"]

#: How long a reader waits for a transaction that is committing right now (a hole in the
#: positions or versions, or a guard visible before its events) before it gives up waiting.
#: Commits take milliseconds.
HOLE_WAIT = 0.1


class Table:
    """The store's table and client (``client`` is set while the store is open)."""

    def __init__(self, name: str, retry_timeout: float) -> None:
        self.name = name
        self.retry_timeout = retry_timeout
        #: The aiobotocore DynamoDB client (untyped: requests are built as plain dicts).
        self.client: Any = None

    def _open_client(self) -> Any:
        client = self.client
        if client is None:
            raise EventStoreError(f"the DynamoDB store of table {self.name!r} is closed")
        return client

    async def call(
        self,
        operation: str,
        *,
        write: bool = False,
        ok_codes: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> Any:
        """Call a client method, retrying throttling and lost connections, translating errors.

        An error whose code is in ``ok_codes`` is an expected answer: the call returns None.
        For a ``write``, the error says ``maybe_applied`` when any attempt may have been
        applied (an answer lost, then a retry that could not even connect, included).
        """
        client = self._open_client()
        backoff = Backoff(self.retry_timeout, cap=1.0)
        maybe_applied = False
        while True:
            try:
                return await getattr(client, operation)(**kwargs)
            except CAUGHT as error:
                if error_code(error) in ok_codes:
                    return None
                maybe_applied = maybe_applied or (write and may_have_applied(error))
                if is_retryable(error) and await backoff.wait():
                    continue
                raise translate(error, operation, maybe_applied=maybe_applied) from error

    async def get(self, key: keys.Item) -> keys.Item | None:
        """A strongly consistent read of one item."""
        answer = await self.call("get_item", TableName=self.name, Key=key, ConsistentRead=True)
        item: keys.Item | None = answer.get("Item")
        return item

    async def batch_get(self, wanted: Sequence[keys.Item]) -> list[keys.Item]:
        """Strongly consistent reads of any number of keys (100 per request), in no order."""
        found: list[keys.Item] = []
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self.name: {"Keys": list(wanted[start : start + 100]), "ConsistentRead": True}
            }
            backoff = Backoff(self.retry_timeout, cap=1.0)
            while request:
                answer = await self.call("batch_get_item", RequestItems=request)
                found.extend(answer.get("Responses", {}).get(self.name, []))
                request = answer.get("UnprocessedKeys") or {}
                if request and not await backoff.wait():
                    raise translate(
                        ClientError(
                            {"Error": {"Code": "ThrottlingException", "Message": "unprocessed"}},
                            "BatchGetItem",
                        ),
                        "BatchGetItem",
                    )
        return found

    async def query(self, **kwargs: Any) -> Any:
        """One strongly consistent ``Query`` page."""
        return await self.call("query", TableName=self.name, ConsistentRead=True, **kwargs)

    async def read_counter(self) -> int:
        """The last global position reserved (0 before the first append)."""
        item = await self.get(keys.COUNTER_KEY)
        return int(item["pos"]["N"]) if item and "pos" in item else 0
