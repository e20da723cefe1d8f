"""A durable partition's records: where each one is on disk, and only the newest in memory.

The in-memory log keeps every record's bytes: it is the store. A durable log has
them in its segments, so keeping them in memory too made its memory grow with every
event ever written (docs/performance.md). Here every
record costs 20 bytes in memory (its frame's start and size, its timestamp), and only
the bytes of the newest stay in memory: of records already read, about
``window_bytes``; of records nobody has read yet, up to ``UNREAD_WINDOWS`` times as
much, because readers keeping up (the processors on the commands topic, the projector
on the events topic) read them soon after they are written, and a projector that lags
behind a burst would otherwise read from disk and decode every event again
(docs/performance.md has the figures). Older records, which
only a replay, a recovery or a lagging reader asks for, are read back from their
segment, one ``pread`` per segment a read spans, their checksums checked again.

Decoded objects (:mod:`flowmonkey.log.decoded`) are kept, as in memory, until their
first read, but only while their bytes are in memory and for the newest
``MAX_DECODED`` records.
"""

from __future__ import annotations

import itertools
import os
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowmonkey.errors import LogError
from flowmonkey.log._columns import RecordColumns
from flowmonkey.log._embedded_store import _FRAME, _Corrupt, _decode_record
from flowmonkey.log.base import Headers, OutRecord, Record
from flowmonkey.log.decoded import new_decoded_record, new_record

DEFAULT_WINDOW_BYTES = 1 << 20
# unread records may keep up to this many windows: a reader that lags (the projector
# behind a burst of 10,000 executions) still finds their bytes, and their decoded
# objects, in memory
UNREAD_WINDOWS = 8
MAX_DECODED = 16384
_MAX_OPEN = 8  # read descriptors kept open per partition


class DiskColumns(RecordColumns):
    """The records of one partition of a durable log (same reads as RecordColumns)."""

    __slots__ = ("_bases", "_directory", "_fds", "_first", "_kept", "_read_to", "_sizes",
                 "_starts", "_window")

    def __init__(self, topic: str, partition: int, directory: Path,
                 window_bytes: int | None = None) -> None:
        super().__init__(topic, partition)
        self._directory = directory
        self._window = DEFAULT_WINDOW_BYTES if window_bytes is None else window_bytes
        # base offsets (file names) of the segments holding records, in order
        self._bases: list[int] = []
        self._starts: array[int] = array("q")  # frame start, by offset
        self._sizes: array[int] = array("L")  # frame size, by offset
        self._first = 0  # offset of the first record whose bytes are in memory
        self._read_to = 0  # the highest offset read so far, plus one
        self._kept = 0  # bytes of the values in memory
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def first_in_memory(self) -> int:
        return self._first

    def append(self, key: bytes | None, value: bytes, headers: Headers, timestamp_ms: int,
               decoded: Any = None, place: tuple[int, int, int] | None = None) -> int:
        """Add one record written at ``place`` (segment base, frame start, frame size)."""
        if place is None:
            raise LogError(f"{self.topic}/{self.partition}: a durable record needs its place")
        offset = len(self._stamps)
        base, start, size = place
        if not self._bases or self._bases[-1] != base:
            self._bases.append(base)
        self._starts.append(start)
        self._sizes.append(size)
        self._stamps.append(timestamp_ms)
        self._keys.append(key)
        self._values.append(value)
        self._headers.append(headers)
        self._kept += len(value)
        if decoded is not None:
            kept = self._decoded
            if len(kept) >= MAX_DECODED:
                self._decoded = kept = dict(itertools.islice(kept.items(), len(kept) // 2,
                                                             None))
            kept[offset] = decoded
        if self._kept > self._window:
            self._trim()
        return offset

    def place(self, base: int, start: int, size: int, timestamp_ms: int) -> None:
        """Add a record found on disk (recovery), without its bytes: call
        :meth:`fill_window` once all are placed."""
        if not self._bases or self._bases[-1] != base:
            self._bases.append(base)
        self._starts.append(start)
        self._sizes.append(size)
        self._stamps.append(timestamp_ms)
        self._first = len(self._stamps)

    def fill_window(self) -> None:
        """Read the newest records' bytes back, about half a window of them, as
        appends leave it after a trim (their header tuples shared, as appends share
        them)."""
        count = len(self._stamps)
        first, total = count, 0
        sizes = self._sizes
        while first > 0 and (first == count or total + sizes[first - 1] <= self._window // 2):
            first -= 1
            total += sizes[first]
        records: list[Record] = []
        offset = first
        while offset < count:
            offset = self._read_disk(offset, count, records)
        shared: dict[Headers, Headers] = {}
        self._keys = [r.key for r in records]
        self._values = [r.value for r in records]
        self._headers = [shared.setdefault(r.headers, r.headers) for r in records]
        self._kept = sum(len(v) for v in self._values)
        self._first = first

    def publish(self, records: Sequence[OutRecord], timestamp_ms: int,
                places: array[int]) -> None:
        """Add an append's records of this partition, written at ``places``."""
        for n, out in enumerate(records):
            at = 3 * n
            self.append(out.key, out.value, out.headers, timestamp_ms,
                        getattr(out, "decoded", None), (places[at], places[at + 1],
                                                        places[at + 2]))

    def _trim(self) -> None:
        """Forget the oldest bytes: those already read, down to half the window, or
        any, down to half of what unread records may keep. Trimming in halves keeps
        the cost per record constant; the newest record always stays."""
        window = self._window
        if self._kept > UNREAD_WINDOWS * window:
            self._drop(UNREAD_WINDOWS * window // 2, len(self._values) - 1)
        if self._kept > window and self._read_to > self._first:
            self._drop(window // 2, min(self._read_to - self._first, len(self._values) - 1))

    def _drop(self, target: int, most: int) -> None:
        """Drop the oldest in-memory records, at most ``most``, until ``target`` bytes
        are left."""
        values = self._values
        kept = self._kept
        drop = 0
        while kept > target and drop < most:
            kept -= len(values[drop])
            drop += 1
        if not drop:
            return
        del values[:drop]
        del self._keys[:drop]
        del self._headers[:drop]
        self._first += drop
        self._kept = kept
        first = self._first
        if self._decoded and next(iter(self._decoded)) < first:
            self._decoded = {o: d for o, d in self._decoded.items() if o >= first}

    def read(self, offset: int, max_records: int) -> list[Record]:
        stop = min(len(self._stamps), offset + max_records)
        if offset >= stop:
            return []
        out: list[Record] = []
        first = self._first
        while offset < min(stop, first):
            offset = self._read_disk(offset, min(stop, first), out)
        if offset < stop:
            self._read_memory(offset, stop, out)
        if stop > self._read_to:
            self._read_to = stop
            if self._kept > self._window:
                self._trim()
        return out

    def _read_memory(self, offset: int, stop: int, out: list[Record]) -> None:
        topic, partition, first = self.topic, self.partition, self._first
        keys, values, headers, stamps = self._keys, self._values, self._headers, self._stamps
        decoded = self._decoded
        append = out.append
        for i in range(offset, stop):
            j = i - first
            obj = decoded.pop(i, None) if decoded else None
            if obj is None:
                append(new_record(topic, partition, i, keys[j], values[j], headers[j],
                                  stamps[i]))
            else:
                append(new_decoded_record(topic, partition, i, keys[j], values[j],
                                          headers[j], stamps[i], obj))

    def _read_disk(self, offset: int, stop: int, out: list[Record]) -> int:
        """Read ``[offset, stop)`` as far as its first segment holds it; returns the
        offset after the last record read."""
        bases = self._bases
        number = bisect_right(bases, offset) - 1
        if number + 1 < len(bases):
            stop = min(stop, bases[number + 1])
        starts, sizes = self._starts, self._sizes
        begin = starts[offset]
        end = starts[stop - 1] + sizes[stop - 1]
        base = bases[number]
        data = os.pread(self._fd(base), end - begin, begin)
        view = memoryview(data)
        head = _FRAME.size
        for i in range(offset, stop):
            at = starts[i] - begin
            size = sizes[i]
            if at + size > len(data):
                raise self._damaged(base, i, "the segment is shorter than when it was written")
            length, crc = _FRAME.unpack_from(data, at)
            payload = view[at + head:at + size]
            if length != size - head or zlib.crc32(payload) != crc:
                raise self._damaged(base, i, "its frame does not match its checksum")
            try:
                record = _decode_record(self.topic, self.partition, payload)
            except _Corrupt as exc:
                raise self._damaged(base, i, str(exc)) from exc
            if record.offset != i:
                raise self._damaged(base, i, f"the frame holds offset {record.offset}")
            out.append(record)
        return stop

    def _fd(self, base: int) -> int:
        fd = self._fds.get(base)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN:
                self.close()
            path = self._directory / f"{base:020d}.log"
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise LogError(f"cannot read {path}: {exc}", topic=self.topic,
                               partition=self.partition, path=str(path)) from exc
            self._fds[base] = fd
        return fd

    def _damaged(self, base: int, offset: int, why: str) -> LogError:
        path = self._directory / f"{base:020d}.log"
        return LogError(f"{self.topic}/{self.partition} offset {offset} in {path} changed on "
                        f"disk since it was written ({why}); `flowmonkey log check` tells "
                        "what is damaged", topic=self.topic, partition=self.partition,
                        path=str(path))

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
