"""``dynamodb://TABLE?region=..&endpoint_url=..``: the DynamoDB adapter, on aioboto3.

Install with ``pip install "eventstore-core[dynamodb]"``. Design, costs and the production
table definition: ``docs/backends/dynamodb.md``.
"""

from eventstore_dynamodb.store import DynamoDBEventStore, DynamoDBOptions

__all__ = ["DynamoDBEventStore", "DynamoDBOptions"]
