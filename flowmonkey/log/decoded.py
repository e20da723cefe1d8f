"""Records that carry the object their bytes encode, for readers in the same process.

The processor builds each event, encodes it, and appends the bytes; without help the
projector then decodes those same bytes back into an equal event. A
:class:`DecodedOutRecord` carries the object beside its bytes, and a log that keeps it
(the embedded log, for records appended in this process) hands it back on a
:class:`DecodedRecord`, so a reader can skip the decoding. The bytes are what the log
stores and what every other reader sees; ``decoded`` must be equal to what decoding
them gives (the codec only attaches objects for which that holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowmonkey.log.base import Headers, OutRecord, Position, Record


@dataclass(frozen=True, slots=True, eq=False)
class DecodedOutRecord(OutRecord):
    """An :class:`OutRecord` plus the object its value encodes (``None``: unknown)."""

    decoded: Any = None


@dataclass(frozen=True, slots=True, eq=False)
class DecodedRecord(Record):
    """A :class:`Record` read back with the object its value encodes.

    It compares and hashes as the plain record it stands for: ``decoded`` is a cache,
    not part of the record.
    """

    decoded: Any = None

    def _fields(self) -> tuple[Any, ...]:
        return (self.topic, self.partition, self.offset, self.key, self.value, self.headers,
                self.timestamp_ms)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._fields() == (other.topic, other.partition, other.offset, other.key,
                                  other.value, other.headers, other.timestamp_ms)

    def __hash__(self) -> int:
        return hash(self._fields())


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(cls, name).__set__ for name in names)


_RECORD_FIELDS = ("topic", "partition", "offset", "key", "value", "headers", "timestamp_ms")
_R0, _R1, _R2, _R3, _R4, _R5, _R6 = _setters(Record, _RECORD_FIELDS)
(_D7,) = _setters(DecodedRecord, ("decoded",))
_O0, _O1, _O2, _O3, _O4 = _setters(OutRecord, ("topic", "value", "key", "headers", "partition"))
(_O5,) = _setters(DecodedOutRecord, ("decoded",))
_new = object.__new__

# Fast constructors for the hot path. A frozen dataclass's __init__ sets each field
# through object.__setattr__ by name; setting the slots through their descriptors
# gives the same object faster, and the engine builds several records per step.
# Every field is set, as __init__ would.


def new_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes,
               headers: Headers, timestamp_ms: int) -> Record:
    record: Record = _new(Record)
    _R0(record, topic), _R1(record, partition), _R2(record, offset), _R3(record, key)
    _R4(record, value), _R5(record, headers), _R6(record, timestamp_ms)
    return record


def new_decoded_record(topic: str, partition: int, offset: int, key: bytes | None,
                       value: bytes, headers: Headers, timestamp_ms: int,
                       decoded: Any) -> DecodedRecord:
    record: DecodedRecord = _new(DecodedRecord)
    _R0(record, topic), _R1(record, partition), _R2(record, offset), _R3(record, key)
    _R4(record, value), _R5(record, headers), _R6(record, timestamp_ms), _D7(record, decoded)
    return record


def new_decoded_out_record(topic: str, value: bytes, key: bytes | None, headers: Headers,
                           partition: int | None, decoded: Any) -> DecodedOutRecord:
    record: DecodedOutRecord = _new(DecodedOutRecord)
    _O0(record, topic), _O1(record, value), _O2(record, key), _O3(record, headers)
    _O4(record, partition), _O5(record, decoded)
    return record


_P0, _P1, _P2 = _setters(Position, ("topic", "partition", "offset"))


def new_position(topic: str, partition: int, offset: int) -> Position:
    position: Position = _new(Position)
    _P0(position, topic), _P1(position, partition), _P2(position, offset)
    return position
