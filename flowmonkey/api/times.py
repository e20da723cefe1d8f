"""The HTTP API's one format for points in time: ISO-8601, UTC, milliseconds, ``Z``.

The engine's models keep ``datetime`` (and their own JSON form, which stored golden
states and the CLI use); the API's response models (:mod:`flowmonkey.api.schemas`)
declare their points in time as :data:`UtcDateTime`, so every answer writes them
alike, and the OpenAPI schema says ``format: date-time``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema


def iso_utc(when: datetime) -> str:
    """``2026-01-31T12:00:00.123Z``: ISO-8601 in UTC, milliseconds, ``Z`` (a naive
    datetime is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_utc_ms(ms: int) -> str:
    """An epoch-milliseconds point in time (the log's form) as :func:`iso_utc` writes
    it."""
    return iso_utc(datetime.fromtimestamp(ms / 1000, UTC))


UtcDateTime = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time",
                    "description": "ISO-8601, UTC, milliseconds, Z",
                    "examples": ["2026-01-31T12:00:00.123Z"]}, mode="serialization"),
]
"""A point in time: ``datetime`` in Python, an ISO-8601 UTC string with milliseconds
and ``Z`` in the API's JSON."""
