"""The Kafka backend: ``kafka://HOST:PORT/TOPIC`` on aiokafka (the ``kafka`` extra)."""

from eventstore_kafka.store import KafkaEventStore, KafkaOptions

__all__ = ["KafkaEventStore", "KafkaOptions"]
