"""The log: an append-only, partitioned record log with two backends.

The public names are imported from here (``from flowmonkey.log import KafkaLog``).
They are loaded on first use (PEP 562), so importing this package (or
:mod:`flowmonkey.log.base`) loads neither backend nor ``aiokafka``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "Headers": "base",
    "Log": "base",
    "LogCapabilities": "base",
    "OutRecord": "base",
    "Position": "base",
    "Record": "base",
    "TopicSpec": "base",
    "EmbeddedLog": "embedded",
    "KafkaLog": "kafka",
    "KafkaSecurity": "kafka_security",
    "KafkaWriter": "kafka_writer",
}

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


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
