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

from flowmonkey.log.base import OutRecord, Record


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
