"""A partition's records, stored column by column.

The embedded log keeps every record in memory. As one object per record, each of them
is tracked by Python's cyclic garbage collector, and every full collection walks them
all: with a few hundred thousand records that walk costs more than the engine's own
work. Columns of bytes, header tuples (shared per event type) and a packed timestamp
array are a handful of tracked objects whatever the record count. ``Record`` objects
are built when read.

Objects handed in beside the bytes (:class:`~flowmonkey.log.decoded.DecodedOutRecord`)
are kept only until a reader takes them: the first read of an offset returns a
:class:`~flowmonkey.log.decoded.DecodedRecord` and forgets the object, later reads
get the plain record. At most ``MAX_DECODED`` wait at a time (a log nobody reads
drops them), so they never grow the collector's work without bound either.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

from flowmonkey.log.base import Headers, Record
from flowmonkey.log.decoded import new_decoded_record, new_record

MAX_DECODED = 50_000


class RecordColumns:
    __slots__ = ("_decoded", "_headers", "_keys", "_stamps", "_values", "partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._keys: list[bytes | None] = []
        self._values: list[bytes] = []
        self._headers: list[Headers] = []
        self._stamps: array[int] = array("q")
        self._decoded: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._values)

    def append(self, key: bytes | None, value: bytes, headers: Headers, timestamp_ms: int,
               decoded: Any = None) -> int:
        """Add one record; returns its offset."""
        offset = len(self._values)
        if decoded is not None:
            kept = self._decoded
            if len(kept) >= MAX_DECODED:
                kept.clear()  # nobody is reading them: decoding is the fallback
            kept[offset] = decoded
        self._keys.append(key)
        self._values.append(value)
        self._headers.append(headers)
        self._stamps.append(timestamp_ms)
        return offset

    def extend(self, records: Iterable[Record]) -> None:
        """Add records whose offsets continue this partition (recovery, durable appends)."""
        for record in records:
            self.append(record.key, record.value, record.headers, record.timestamp_ms,
                        getattr(record, "decoded", None))

    def close(self) -> None:
        """Release what reads hold (nothing, in memory)."""

    def read(self, offset: int, max_records: int) -> list[Record]:
        values = self._values
        stop = min(len(values), offset + max_records)
        if offset >= stop:
            return []
        topic, partition = self.topic, self.partition
        keys, headers, stamps = self._keys, self._headers, self._stamps
        decoded = self._decoded
        out: list[Record] = []
        append = out.append
        for i in range(offset, stop):
            obj = decoded.pop(i, None) if decoded else None
            if obj is None:
                append(new_record(topic, partition, i, keys[i], values[i], headers[i],
                                  stamps[i]))
            else:
                append(new_decoded_record(topic, partition, i, keys[i], values[i],
                                          headers[i], stamps[i], obj))
        return out
