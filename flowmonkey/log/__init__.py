"""The log: an append-only, partitioned record log with two backends."""

from flowmonkey.log.base import (
    Headers,
    Log,
    LogCapabilities,
    OutRecord,
    Position,
    Record,
    TopicSpec,
)
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.kafka_security import KafkaSecurity
from flowmonkey.log.kafka_writer import KafkaWriter

__all__ = [
    "EmbeddedLog",
    "Headers",
    "KafkaLog",
    "KafkaSecurity",
    "KafkaWriter",
    "Log",
    "LogCapabilities",
    "OutRecord",
    "Position",
    "Record",
    "TopicSpec",
]
