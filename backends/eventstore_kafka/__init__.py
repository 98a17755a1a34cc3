"""The Kafka backend: ``kafka://HOST:PORT/TOPIC``, on aiokafka (``pip install "eventstore-core[kafka]"``)."""

from eventstore_kafka.store import KafkaEventStore, KafkaOptions

__all__ = ["KafkaEventStore", "KafkaOptions"]
