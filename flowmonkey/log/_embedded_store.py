"""Files behind a durable :class:`~flowmonkey.log.embedded.EmbeddedLog`.

Layout of a data directory (one process owns it, through an ``flock`` on ``LOCK``)::

    <path>/LOCK                          the owner's lock (holds its pid)
    <path>/_journal.log                  commit journal: one entry per append or commit
    <path>/_offsets/<group>.json         consumer-group offsets as of the last checkpoint
    <path>/<topic>/topic.json            partition count, compacted flag, config
    <path>/<topic>/<p>/<base:020d>.log   record segments, rolled at ``segment_bytes``

Segments and the journal are sequences of frames ``length u32 | crc32 u32 | payload``.
A record's payload is ``offset u64 | timestamp_ms i64 | key length i32 (-1: no key) |
value length u32 | header count u16 | key | value | (name length u16 | value length
u32 | name | value)*``. A journal entry names each partition an append touched with
its new end offset, plus the group offsets committed with it; an append is committed
once its entry is on disk.

Recovery, on open, is in :mod:`flowmonkey.log._embedded_recovery`: committed
records are never cut (damage to them stops the open and names the repair command),
a torn uncommitted tail is moved aside to ``<segment>.torn-<time>``, and a damaged
journal is worth what a missing one is. The journal is then rewritten as one
checkpoint entry, which also happens on close and whenever it grows past
``JOURNAL_COMPACT_BYTES``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import struct
import zlib
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flowmonkey.errors import LogError
from flowmonkey.log._columns import RecordColumns
from flowmonkey.log.base import Headers, OutRecord, Record, TopicSpec

logger = logging.getLogger("flowmonkey.log.embedded")

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
JOURNAL_COMPACT_BYTES = 4 * 1024 * 1024
_JOURNAL = "_journal.log"
_OFFSETS = "_offsets"
_LOCK = "LOCK"

_FRAME = struct.Struct("<II")  # payload length, crc32 of payload
_RECORD_HEAD = struct.Struct("<QqiIH")  # offset, timestamp, key len, value len, header count
_HEADER_HEAD = struct.Struct("<HI")  # name length, value length
_ENTRY_HEAD = struct.Struct("<BQI")  # kind, seq, number of partition ends
_ENTRY_ITEM = struct.Struct("<HIQ")  # topic length, partition, end or offset
_GROUP_LEN = struct.Struct("<i")  # -1: no group
_COUNT = struct.Struct("<I")
APPEND, _CHECKPOINT = 0, 1

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_RESERVED_NAMES = frozenset({".", "..", _OFFSETS, _JOURNAL, _LOCK})
_SEGMENT_NAME = re.compile(r"\d{20}\.log")
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)

Offsets = dict[tuple[str, int], int]
_Item = tuple[str, int, int]  # (topic, partition, offset)


def valid_topic_name(name: str) -> bool:
    """Kafka's rule for topic names, minus the names this directory layout reserves."""
    return bool(_TOPIC_NAME.fullmatch(name)) and name not in _RESERVED_NAMES


# --- state shared by both modes -------------------------------------------------------


@dataclass(slots=True)
class SegmentFiles:
    """A partition's segments on disk; the last base offset is the active segment."""

    directory: Path
    bases: list[int]
    fd: int
    size: int


class PartitionState:
    __slots__ = ("files", "index", "next_offset", "records", "topic", "waiters")

    def __init__(self, topic: str, index: int) -> None:
        self.topic = topic
        self.index = index
        self.records = RecordColumns(topic, index)  # the visible records, by offset
        self.next_offset = 0  # ahead of len(records) only while an append awaits fsync
        # readers blocked in wait_for: plain futures, woken all at once by wake()
        self.waiters: list[asyncio.Future[bool]] = []
        self.files: SegmentFiles | None = None

    def wake(self) -> None:
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)


class TopicState:
    __slots__ = ("_round_robin", "parts", "spec")

    def __init__(self, spec: TopicSpec) -> None:
        self.spec = spec
        self.parts = [PartitionState(spec.name, i) for i in range(spec.partitions)]
        self._round_robin = 0

    def next_round_robin(self) -> int:
        index = self._round_robin
        self._round_robin = (index + 1) % len(self.parts)
        return index


@dataclass(slots=True, eq=False)
class PendingAppend:
    """One durable append between its write and its publication.

    ``records`` are the appended records as given, by partition; each partition's run
    starts at offset ``first[partition]`` and they all carry ``timestamp_ms``. (No
    ``Record`` is built for them: they go to disk and then into the partition's
    columns, and a tracked object per record alive across an fsync round is what
    makes the garbage collector expensive.)
    """

    seq: int
    records: dict[PartitionState, list[OutRecord]]
    first: dict[PartitionState, int]
    timestamp_ms: int
    group: str | None
    offsets: Offsets
    entry: bytes  # its journal frame, rewritten into a compacted journal if need be
    done: asyncio.Future[None] | None = None
    # where write() put each record, by partition: (segment base, frame start, frame
    # size) per record, flat (an array is no object for the garbage collector to walk)
    places: dict[PartitionState, array[int]] = field(default_factory=dict)


# --- codec ----------------------------------------------------------------------------


class _Corrupt(Exception):
    """A frame passed its CRC but its payload does not parse, or is out of sequence."""


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _frames(buf: bytes) -> Iterator[tuple[int, memoryview]]:
    """Yield ``(frame_start, payload)`` up to the first torn or CRC-failing frame."""
    view = memoryview(buf)
    pos, size = 0, len(buf)
    while pos + _FRAME.size <= size:
        length, crc = _FRAME.unpack_from(buf, pos)
        end = pos + _FRAME.size + length
        if end > size:
            return
        payload = view[pos + _FRAME.size : end]
        if zlib.crc32(payload) != crc:
            return
        yield pos, payload
        pos = end


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        try:
            values = fmt.unpack_from(self.buf, self.pos)
        except struct.error as exc:
            raise _Corrupt(str(exc)) from exc
        self.pos += fmt.size
        return values

    def take(self, length: int) -> bytes:
        end = self.pos + length
        if end > len(self.buf):
            raise _Corrupt("payload shorter than its fields")
        chunk = bytes(self.buf[self.pos : end])
        self.pos = end
        return chunk

    def expect_end(self) -> None:
        if self.pos != len(self.buf):
            raise _Corrupt("payload longer than its fields")


def _encode_headers(headers: Headers) -> bytes:
    chunks: list[bytes] = []
    for name, value in headers:
        raw_name = name.encode()
        chunks += (_HEADER_HEAD.pack(len(raw_name), len(value)), raw_name, value)
    return b"".join(chunks)


# Encoded header blocks by header tuple: the engine's records share a few dozen.
_HEADER_BLOCKS: dict[Headers, bytes] = {}


def _encode_fields(offset: int, timestamp_ms: int, key: bytes | None, value: bytes,
                   headers: Headers) -> bytes:
    block = _HEADER_BLOCKS.get(headers)
    if block is None:
        block = _encode_headers(headers)
        if len(_HEADER_BLOCKS) < 1024:
            _HEADER_BLOCKS[headers] = block
    head = _RECORD_HEAD.pack(offset, timestamp_ms,
                             -1 if key is None else len(key), len(value), len(headers))
    # The CRC is computed piece by piece, so the payload is joined only once, with
    # its frame header.
    crc = zlib.crc32(head)
    if key:
        crc = zlib.crc32(key, crc)
    crc = zlib.crc32(value, crc)
    crc = zlib.crc32(block, crc)
    length = len(head) + (len(key) if key else 0) + len(value) + len(block)
    return b"".join((_FRAME.pack(length, crc), head, key or b"", value, block))


def _decode_record(topic: str, partition: int, payload: memoryview) -> Record:
    reader = _Reader(payload)
    offset, timestamp_ms, key_len, value_len, header_count = reader.unpack(_RECORD_HEAD)
    key = None if key_len < 0 else reader.take(key_len)
    value = reader.take(value_len)
    headers = []
    for _ in range(header_count):
        name_len, header_len = reader.unpack(_HEADER_HEAD)
        name = reader.take(name_len).decode(errors="replace")
        headers.append((name, reader.take(header_len)))
    reader.expect_end()
    return Record(topic, partition, offset, key, value, tuple(headers), timestamp_ms)


@dataclass(slots=True)
class _Entry:
    """A decoded journal entry."""

    kind: int
    seq: int
    ends: list[_Item]
    group: str | None
    offsets: list[_Item]


def encode_entry(
    kind: int, seq: int, ends: Sequence[_Item], group: str | None, offsets: Sequence[_Item]
) -> bytes:
    chunks = [_ENTRY_HEAD.pack(kind, seq, len(ends))]
    _pack_items(chunks, ends)
    if group is None:
        chunks.append(_GROUP_LEN.pack(-1))
    else:
        raw_group = group.encode()
        chunks += (_GROUP_LEN.pack(len(raw_group)), raw_group)
    chunks.append(_COUNT.pack(len(offsets)))
    _pack_items(chunks, offsets)
    return _frame(b"".join(chunks))


def _pack_items(chunks: list[bytes], items: Iterable[_Item]) -> None:
    for topic, partition, value in items:
        raw_topic = topic.encode()
        chunks += (_ENTRY_ITEM.pack(len(raw_topic), partition, value), raw_topic)


def _decode_entry(payload: memoryview) -> _Entry:
    reader = _Reader(payload)
    kind, seq, end_count = reader.unpack(_ENTRY_HEAD)
    ends = _unpack_items(reader, end_count)
    (group_len,) = reader.unpack(_GROUP_LEN)
    group = None if group_len < 0 else reader.take(group_len).decode()
    (offset_count,) = reader.unpack(_COUNT)
    offsets = _unpack_items(reader, offset_count)
    reader.expect_end()
    if kind not in (APPEND, _CHECKPOINT):
        raise _Corrupt(f"unknown journal entry kind {kind}")
    return _Entry(kind, seq, ends, group, offsets)


def _unpack_items(reader: _Reader, count: int) -> list[_Item]:
    items = []
    for _ in range(count):
        topic_len, partition, value = reader.unpack(_ENTRY_ITEM)
        items.append((reader.take(topic_len).decode(), partition, value))
    return items


# --- files ----------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_all(fds: Iterable[int]) -> None:
    for fd in fds:
        _datasync(fd)


def _write_file(path: Path, data: bytes, fsync: bool, *, exclusive: bool = True) -> None:
    """Write ``data`` to ``path``, a new file unless ``exclusive`` is false (a side file
    never overwrites another: its name has the time in it, a clash is an error)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, fsync: bool) -> None:
    """Write ``path`` so that a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    _write_file(tmp, data, fsync, exclusive=False)
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)


def _truncate(path: Path, size: int, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _open_segment(directory: Path, base: int, *, fresh: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
    return os.open(directory / f"{base:020d}.log", flags, 0o644)


def _group_file(offsets_dir: Path, group: str) -> Path:
    return offsets_dir / (quote(group, safe="") + ".json")


_SEAL = "crc32"


def seal(document: dict[str, Any]) -> bytes:
    """``document`` as JSON with a CRC of its content: a changed digit in an offset or
    a partition count must not pass for a valid value."""
    return json.dumps({**document, _SEAL: _content_crc(document)}, indent=1).encode()


def unseal(raw: bytes, keys: Collection[str]) -> dict[str, Any]:
    """The document :func:`seal` wrote (files from before the CRC have none); raises
    ValueError if it does not parse, has other keys, or fails its CRC."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    crc = data.pop(_SEAL, None)
    if set(data) - set(keys):
        raise ValueError(f"unexpected keys {sorted(set(data) - set(keys))}")
    if crc is not None and crc != _content_crc(data):
        raise ValueError("its content does not match its crc32")
    return data


def _content_crc(document: Mapping[str, Any]) -> int:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return zlib.crc32(canonical.encode())


def _encode_group(group: str, seq: int, offsets: Offsets) -> bytes:
    by_topic: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        by_topic.setdefault(topic, {})[str(partition)] = offset
    return seal({"group": group, "seq": seq, "offsets": by_topic})


def _decode_group(path: Path) -> tuple[str, int, Offsets]:
    try:
        data = unseal(path.read_bytes(), ("group", "seq", "offsets"))
        group, seq, by_topic = data["group"], data["seq"], data["offsets"]
        offsets = {
            (str(topic), int(partition)): int(offset)
            for topic, partitions in by_topic.items()
            for partition, offset in partitions.items()
        }
        if isinstance(group, str) and isinstance(seq, int):
            return group, seq, offsets
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise LogError(f"consumer-group offsets file {path} is not valid", path=str(path))


class DiskStore:
    """The files behind a durable :class:`EmbeddedLog`: lock, segments, journal."""

    def __init__(self, root: Path, fsync: bool, segment_bytes: int) -> None:
        self.root = root
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.journal_size = 0
        self._lock_fd = -1
        self._journal_fd = -1
        self._dirty: set[int] = set()
        self._retired: list[int] = []  # rolled-over segments, closed between fsync rounds
        self._attached: list[SegmentFiles] = []

    def acquire_lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LogError(
                f"data directory {self.root} is already in use (lock {path} is held by "
                f"pid {holder}); only one process or EmbeddedLog may own it at a time",
                path=str(self.root),
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def partition_dir(self, topic: str, index: int) -> Path:
        return self.root / topic / str(index)

    def attach(self, part: PartitionState, bases: list[int], sizes: list[int]) -> None:
        directory = self.partition_dir(part.topic, part.index)
        if not bases:
            directory.mkdir(parents=True, exist_ok=True)
            fd = _open_segment(directory, 0, fresh=True)
            part.files = SegmentFiles(directory, [0], fd, 0)
            self._attached.append(part.files)
            if self.fsync:
                _fsync_dir(directory)
            return
        if bases[-1] > part.next_offset:
            # never append offset N into a segment named after a later offset: a
            # reader of the names would look for N elsewhere
            base = part.next_offset
            kept = [b for b in bases if b < base]
            fd = _open_segment(directory, base, fresh=False)  # never truncates
            part.files = SegmentFiles(directory, [*kept, base], fd, os.fstat(fd).st_size)
            if self.fsync:
                _fsync_dir(directory)
        else:
            fd = _open_segment(directory, bases[-1], fresh=False)
            part.files = SegmentFiles(directory, list(bases), fd, sizes[-1])
        self._attached.append(part.files)

    def create_topic(self, topic: TopicState) -> None:
        """Create the partitions' first segments, then ``topic.json``, which makes the
        topic exist: a crash in between leaves a directory that open ignores."""
        for part in topic.parts:
            self.attach(part, [], [])
        meta = {
            "partitions": topic.spec.partitions,
            "compacted": topic.spec.compacted,
            "config": dict(topic.spec.config),
        }
        meta_path = self.root / topic.spec.name / "topic.json"
        _atomic_write(meta_path, seal(meta), self.fsync)
        if self.fsync:
            _fsync_dir(self.root)

    def write(self, batch: PendingAppend) -> None:
        """Step 2 of an append, the record frames; without fsync step 3 too, the
        journal entry (with fsync, :meth:`write_entries` writes it once the frames are
        on disk)."""
        timestamp_ms = batch.timestamp_ms
        for part, records in batch.records.items():
            files = part.files
            assert files is not None
            chunk: list[bytes] = []
            pending = 0
            offset = batch.first[part]
            places = batch.places[part] = array("q")
            for record in records:
                frame = _encode_fields(offset, timestamp_ms, record.key, record.value,
                                       record.headers)
                full = files.size + pending + len(frame) > self.segment_bytes
                if full and files.size + pending > 0:
                    self._write_chunk(files, chunk, pending)
                    chunk, pending = [], 0
                    self._roll(files, offset)
                places.extend((files.bases[-1], files.size + pending, len(frame)))
                chunk.append(frame)
                pending += len(frame)
                offset += 1
            self._write_chunk(files, chunk, pending)
        if not self.fsync:
            self.write_entries(batch.entry)

    def write_entries(self, entries: bytes) -> None:
        """Step 3: append journal entries. With fsync, only after their records' frames
        were synced (:func:`sync_all`), so that an entry on disk implies its records
        are: the write-ahead rule recovery relies on when it takes every entry as
        proof. :meth:`commit_round` does both in order."""
        _write_all(self._journal_fd, entries)
        self.journal_size += len(entries)

    def commit_round(self, segment_fds: Iterable[int], entries: bytes) -> None:
        """A group-commit round with fsync: the segments first, then the entries."""
        sync_all(segment_fds)
        self.write_entries(entries)
        _datasync(self._journal_fd)

    def _write_chunk(self, files: SegmentFiles, chunk: list[bytes], size: int) -> None:
        if size:
            _write_all(files.fd, b"".join(chunk))
            files.size += size
            self._dirty.add(files.fd)

    def _roll(self, files: SegmentFiles, base: int) -> None:
        # The old segment is synced now (rolls are rare) so that closing it never has
        # to wait for, or race with, a group-commit round running in a thread.
        if self.fsync:
            _datasync(files.fd)
        self._dirty.discard(files.fd)
        self._retired.append(files.fd)
        files.fd = _open_segment(files.directory, base, fresh=True)
        files.bases.append(base)
        files.size = 0
        if self.fsync:
            _fsync_dir(files.directory)

    def take_dirty(self) -> list[int]:
        dirty = list(self._dirty)
        self._dirty.clear()
        return dirty

    def close_retired(self) -> None:
        while self._retired:
            os.close(self._retired.pop())

    def checkpoint(
        self,
        seq: int,
        topics: Iterable[TopicState],
        groups: Mapping[str, Offsets],
        dirty_groups: Collection[str],
        unsynced_entries: Sequence[bytes] = (),
    ) -> None:
        """Compact the journal to one entry as of ``seq`` (plus entries written but not
        yet synced). Group files are written first: a crash before the journal is
        replaced replays only the entries newer than each file's ``seq``."""
        offsets_dir = self.root / _OFFSETS
        for group in dirty_groups:
            content = _encode_group(group, seq, groups[group])
            _atomic_write(_group_file(offsets_dir, group), content, self.fsync)
        ends = [(p.topic, p.index, len(p.records)) for topic in topics for p in topic.parts]
        journal = encode_entry(_CHECKPOINT, seq, ends, None, ()) + b"".join(unsynced_entries)
        _atomic_write(self.root / _JOURNAL, journal, self.fsync)
        old = self._journal_fd
        self._journal_fd = os.open(self.root / _JOURNAL, os.O_WRONLY | os.O_APPEND)
        self.journal_size = len(journal)
        if old >= 0:
            self._dirty.discard(old)
            os.close(old)

    def close(self) -> None:
        self.close_retired()
        for files in self._attached:
            os.close(files.fd)
        self._attached.clear()
        for fd in (self._journal_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)  # closing the lock's fd releases the flock
        self._journal_fd = self._lock_fd = -1
