"""The embedded log: FlowMonkey's default backend, in memory (``path=None``) or on disk.

One process owns a data directory. ``start()`` takes an exclusive ``flock`` on
``<path>/LOCK`` and a second owner (another process, or another ``EmbeddedLog`` in
this one) is refused with a :class:`~flowmonkey.errors.LogError`. Layout::

    <path>/LOCK                          the owner's lock (holds its pid)
    <path>/_journal.log                  commit journal: one entry per append or commit
    <path>/_offsets/<group>.json         consumer-group offsets as of the last checkpoint
    <path>/<topic>/topic.json            partition count, compacted flag, config
    <path>/<topic>/<p>/<base:020d>.log   record segments, rolled at ``segment_bytes``

Segment files and the journal are sequences of frames ``length u32 | crc32 u32 |
payload``. An append may touch several partitions (several files) and carry a
group's offsets, so no single file write can make it atomic; the journal entry is
the commit point instead. An append runs in this order:

1. Route and validate every record and offset. Nothing has changed if this raises.
2. Assign offsets and write the record frames to their segments (page cache).
3. Write one journal entry naming each touched partition's new end offset and the
   group's offsets. A failure in 2 or 3 leaves the log refusing writes until it is
   reopened; recovery then drops the frames that have no complete entry.
4. fsync every file written (one ``fdatasync`` per file, shared by all appends
   queued meanwhile: group commit). If this fails the outcome is indeterminate, as
   with a Kafka timeout: reopening finds the append either whole or absent.
5. Publish: records and offsets become visible together and waiters wake.

On open, segments are scanned up to their first torn or corrupt frame (the rest is
truncated with a warning), then journal entries are replayed in order while every
partition they name has its records on disk. Records past the last replayed end of
their partition belong to an append that never committed and are truncated away.
The journal is then rewritten as one checkpoint entry (group offsets go to their
JSON files first), which also happens on close and when the journal grows large.

Every record is also kept in memory, so reads never touch the disk. Only one append
at a time writes (the caller is a single event loop), so offsets are never racing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import struct
import time
import zlib
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from flowmonkey.errors import LogError
from flowmonkey.events.partitioner import partition_for
from flowmonkey.log.base import OutRecord, Position, Record, TopicSpec

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_JOURNAL_COMPACT_BYTES = 4 * 1024 * 1024
_JOURNAL = "_journal.log"
_OFFSETS = "_offsets"
_LOCK = "LOCK"

_FRAME = struct.Struct("<II")  # payload length, crc32 of payload
_RECORD_HEAD = struct.Struct("<QqiIH")  # offset, timestamp_ms, key length (-1: None), value length, headers
_HEADER_HEAD = struct.Struct("<HI")  # name length, value length
_ENTRY_HEAD = struct.Struct("<BQI")  # kind, seq, number of partition ends
_ENTRY_ITEM = struct.Struct("<HIQ")  # topic length, partition, end or offset
_GROUP_LEN = struct.Struct("<i")  # -1: no group
_COUNT = struct.Struct("<I")
_APPEND, _CHECKPOINT = 0, 1

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_RESERVED_NAMES = frozenset({".", "..", _OFFSETS, _JOURNAL, _LOCK})
_SEGMENT_NAME = re.compile(r"\d{20}\.log")
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)

Offsets = dict[tuple[str, int], int]
_Item = tuple[str, int, int]  # (topic, partition, offset)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# --- state shared by both modes -------------------------------------------------------


@dataclass(slots=True)
class _SegmentFiles:
    """A partition's segments on disk; the last base offset is the active segment."""

    directory: Path
    bases: list[int]
    fd: int
    size: int


class _Partition:
    __slots__ = ("files", "index", "next_offset", "records", "topic", "waiter")

    def __init__(self, topic: str, index: int) -> None:
        self.topic = topic
        self.index = index
        self.records: list[Record] = []  # visible records; list index == offset
        self.next_offset = 0  # ahead of len(records) only while an append awaits fsync
        self.waiter: asyncio.Event | None = None
        self.files: _SegmentFiles | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()


class _Topic:
    __slots__ = ("_round_robin", "parts", "spec")

    def __init__(self, spec: TopicSpec) -> None:
        self.spec = spec
        self.parts = [_Partition(spec.name, i) for i in range(spec.partitions)]
        self._round_robin = 0

    def next_round_robin(self) -> int:
        index = self._round_robin
        self._round_robin = (index + 1) % len(self.parts)
        return index


@dataclass(slots=True, eq=False)
class _Batch:
    """One durable append between its write and its publication."""

    seq: int
    records: dict[_Partition, list[Record]]
    group: str | None
    offsets: Offsets
    entry: bytes  # its journal frame, rewritten into a compacted journal if need be
    done: asyncio.Future[None] | None = None


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


def _encode_record(record: Record) -> bytes:
    key = record.key
    chunks = [
        _RECORD_HEAD.pack(
            record.offset,
            record.timestamp_ms,
            -1 if key is None else len(key),
            len(record.value),
            len(record.headers),
        )
    ]
    if key:
        chunks.append(key)
    chunks.append(record.value)
    for name, value in record.headers:
        raw_name = name.encode()
        chunks += (_HEADER_HEAD.pack(len(raw_name), len(value)), raw_name, value)
    return _frame(b"".join(chunks))


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


def _encode_entry(
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
    if kind not in (_APPEND, _CHECKPOINT):
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


def _sync_all(fds: Iterable[int]) -> None:
    for fd in fds:
        _datasync(fd)


def _atomic_write(path: Path, data: bytes, fsync: bool) -> None:
    """Write ``path`` so that a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
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


def _encode_group(group: str, seq: int, offsets: Offsets) -> bytes:
    by_topic: dict[str, dict[str, int]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        by_topic.setdefault(topic, {})[str(partition)] = offset
    return json.dumps({"group": group, "seq": seq, "offsets": by_topic}, indent=1).encode()


def _decode_group(path: Path) -> tuple[str, int, Offsets]:
    try:
        data = json.loads(path.read_bytes())
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


def _load_topic_specs(root: Path) -> list[TopicSpec]:
    specs = []
    for directory in sorted(root.iterdir()):
        meta = directory / "topic.json"
        if directory.name in _RESERVED_NAMES or not directory.is_dir():
            continue
        if not meta.exists():
            logger.warning("ignoring %s: it has no topic.json (an interrupted create)", directory)
            continue
        try:
            data = json.loads(meta.read_bytes())
            spec = TopicSpec(
                name=directory.name,
                partitions=int(data["partitions"]),
                compacted=bool(data["compacted"]),
                config={str(k): str(v) for k, v in data.get("config", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LogError(f"topic metadata {meta} is not valid: {exc}", path=str(meta)) from exc
        specs.append(spec)
    return specs


@dataclass(slots=True)
class _ScannedPartition:
    """What recovery found on disk for one partition."""

    records: list[Record] = field(default_factory=list)
    bases: list[int] = field(default_factory=list)
    frame_starts: list[array[int]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


def _scan_partition(directory: Path, topic: str, index: int, fsync: bool) -> _ScannedPartition:
    scanned = _ScannedPartition()
    if not directory.is_dir():
        return scanned
    paths = sorted(p for p in directory.iterdir() if _SEGMENT_NAME.fullmatch(p.name))
    for position, path in enumerate(paths):
        base = int(path.name[:20])
        if base != len(scanned.records):
            _drop_segments(paths[position:], f"they do not continue at offset {len(scanned.records)}")
            break
        buf = path.read_bytes()
        starts: array[int] = array("q")
        valid = 0
        with contextlib.suppress(_Corrupt):
            for start, payload in _frames(buf):
                record = _decode_record(topic, index, payload)
                if record.offset != base + len(starts):
                    raise _Corrupt(f"offset {record.offset} where {base + len(starts)} was due")
                scanned.records.append(record)
                starts.append(start)
                valid = start + _FRAME.size + len(payload)
        scanned.bases.append(base)
        scanned.frame_starts.append(starts)
        scanned.sizes.append(valid)
        if valid < len(buf):
            logger.warning(
                "%s: dropped %d bytes of torn or corrupt data after offset %d",
                path,
                len(buf) - valid,
                len(scanned.records) - 1,
            )
            _truncate(path, valid, fsync)
            _drop_segments(paths[position + 1 :], "they follow a corrupt segment")
            break
    return scanned


def _drop_segments(paths: Sequence[Path], reason: str) -> None:
    for path in paths:
        logger.warning("%s: dropped %d bytes: %s", path, path.stat().st_size, reason)
        path.unlink()


def _read_journal(path: Path) -> list[_Entry]:
    buf = path.read_bytes()
    entries, valid = [], 0
    with contextlib.suppress(_Corrupt):
        for start, payload in _frames(buf):
            entries.append(_decode_entry(payload))
            valid = start + _FRAME.size + len(payload)
    if valid < len(buf):
        logger.warning("%s: dropped %d bytes of torn or corrupt data", path, len(buf) - valid)
    return entries


def _committed_entries(
    entries: Sequence[_Entry], durable: Mapping[tuple[str, int], int]
) -> tuple[dict[tuple[str, int], int], list[_Entry]]:
    """Replay journal entries while their records are all on disk; return each
    partition's committed end and the entries that committed."""
    ends: dict[tuple[str, int], int] = {}
    committed: list[_Entry] = []
    for entry in entries:
        if entry.kind == _CHECKPOINT:
            for topic, partition, end in entry.ends:
                have = durable.get((topic, partition), 0)
                if have < end:
                    logger.error(
                        "%s/%d: checkpointed records %d..%d are missing or corrupt on disk",
                        topic, partition, have, end - 1,
                    )
                ends[(topic, partition)] = min(have, end)
        elif all(durable.get((t, p), 0) >= end for t, p, end in entry.ends):
            ends.update(((t, p), end) for t, p, end in entry.ends)
        else:
            logger.warning(
                "commit journal: rolling back %d append(s) from seq %d on: "
                "their records did not all reach disk",
                len(entries) - len(committed),
                entry.seq,
            )
            break
        committed.append(entry)
    return ends, committed


@dataclass(slots=True)
class _Recovered:
    topics: dict[str, _Topic]
    groups: dict[str, Offsets]
    seq: int


class _DiskStore:
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

    def recover(self) -> _Recovered:
        offsets_dir = self.root / _OFFSETS
        offsets_dir.mkdir(exist_ok=True)
        for leftover in [*self.root.glob("*.tmp"), *self.root.glob("*/*.tmp")]:
            leftover.unlink()
        topics = {spec.name: _Topic(spec) for spec in _load_topic_specs(self.root)}
        scans = {
            (part.topic, part.index): _scan_partition(
                self._partition_dir(part.topic, part.index), part.topic, part.index, self.fsync
            )
            for topic in topics.values()
            for part in topic.parts
        }
        durable = {key: len(scanned.records) for key, scanned in scans.items()}
        journal = self.root / _JOURNAL
        if journal.exists():
            ends, committed = _committed_entries(_read_journal(journal), durable)
        else:
            if any(durable.values()):
                logger.warning("%s has no commit journal; trusting its segments as found", self.root)
            ends, committed = dict(durable), []
        group_seqs: dict[str, int] = {}
        groups: dict[str, Offsets] = {}
        for path in offsets_dir.glob("*.json"):
            group, seq, offsets = _decode_group(path)
            group_seqs[group], groups[group] = seq, offsets
        for entry in committed:
            if entry.group is not None and entry.seq > group_seqs.get(entry.group, -1):
                groups.setdefault(entry.group, {}).update(((t, p), o) for t, p, o in entry.offsets)
        for (name, index), scanned in scans.items():
            part = topics[name].parts[index]
            end = ends.get((name, index), 0)
            self._truncate_to(part, scanned, end)
            part.records = scanned.records[:end]
            part.next_offset = end
            self._attach(part, scanned.bases, scanned.sizes)
        seq = max([0, *group_seqs.values(), *(entry.seq for entry in committed)])
        return _Recovered(topics, groups, seq)

    def _truncate_to(self, part: _Partition, scanned: _ScannedPartition, end: int) -> None:
        if end >= len(scanned.records):
            return
        logger.warning(
            "%s/%d: rolled back uncommitted records %d..%d",
            part.topic, part.index, end, len(scanned.records) - 1,
        )
        directory = self._partition_dir(part.topic, part.index)
        kept = 0
        for base, starts in zip(scanned.bases, scanned.frame_starts, strict=True):
            path = directory / f"{base:020d}.log"
            if base > end:
                path.unlink()
                continue
            if end - base < len(starts):
                scanned.sizes[kept] = starts[end - base]
                _truncate(path, starts[end - base], self.fsync)
            kept += 1
        del scanned.bases[kept:], scanned.sizes[kept:]

    def _partition_dir(self, topic: str, index: int) -> Path:
        return self.root / topic / str(index)

    def _attach(self, part: _Partition, bases: list[int], sizes: list[int]) -> None:
        directory = self._partition_dir(part.topic, part.index)
        if not bases:
            directory.mkdir(parents=True, exist_ok=True)
            fd = _open_segment(directory, 0, fresh=True)
            part.files = _SegmentFiles(directory, [0], fd, 0)
            if self.fsync:
                _fsync_dir(directory)
            return
        fd = _open_segment(directory, bases[-1], fresh=False)
        part.files = _SegmentFiles(directory, list(bases), fd, sizes[-1])

    def create_topic(self, topic: _Topic) -> None:
        """Create the partitions' first segments, then ``topic.json``, which makes the
        topic exist: a crash in between leaves a directory that open ignores."""
        for part in topic.parts:
            self._attach(part, [], [])
        meta = {
            "partitions": topic.spec.partitions,
            "compacted": topic.spec.compacted,
            "config": dict(topic.spec.config),
        }
        _atomic_write(self.root / topic.spec.name / "topic.json", json.dumps(meta).encode(), self.fsync)
        if self.fsync:
            _fsync_dir(self.root)

    def write(self, batch: _Batch) -> None:
        """Steps 2 and 3 of an append: record frames, then the journal entry."""
        for part, records in batch.records.items():
            files = part.files
            assert files is not None
            chunk: list[bytes] = []
            pending = 0
            for record in records:
                frame = _encode_record(record)
                full = files.size + pending + len(frame) > self.segment_bytes
                if full and files.size + pending > 0:
                    self._write_chunk(files, chunk, pending)
                    chunk, pending = [], 0
                    self._roll(files, record.offset)
                chunk.append(frame)
                pending += len(frame)
            self._write_chunk(files, chunk, pending)
        _write_all(self._journal_fd, batch.entry)
        self.journal_size += len(batch.entry)
        self._dirty.add(self._journal_fd)

    def _write_chunk(self, files: _SegmentFiles, chunk: list[bytes], size: int) -> None:
        if size:
            _write_all(files.fd, b"".join(chunk))
            files.size += size
            self._dirty.add(files.fd)

    def _roll(self, files: _SegmentFiles, base: int) -> None:
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
        topics: Iterable[_Topic],
        groups: Mapping[str, Offsets],
        dirty_groups: Collection[str],
        unsynced_entries: Sequence[bytes] = (),
    ) -> None:
        """Compact the journal to one entry as of ``seq`` (plus entries written but not
        yet synced). Group files are written first: a crash before the journal is
        replaced replays only the entries newer than each file's ``seq``."""
        offsets_dir = self.root / _OFFSETS
        for group in dirty_groups:
            _atomic_write(_group_file(offsets_dir, group), _encode_group(group, seq, groups[group]), self.fsync)
        ends = [(p.topic, p.index, len(p.records)) for topic in topics for p in topic.parts]
        journal = _encode_entry(_CHECKPOINT, seq, ends, None, ()) + b"".join(unsynced_entries)
        _atomic_write(self.root / _JOURNAL, journal, self.fsync)
        old, self._journal_fd = self._journal_fd, os.open(self.root / _JOURNAL, os.O_WRONLY | os.O_APPEND)
        self.journal_size = len(journal)
        if old >= 0:
            self._dirty.discard(old)
            os.close(old)

    def close(self, topics: Iterable[_Topic]) -> None:
        self.close_retired()
        for topic in topics:
            for part in topic.parts:
                if part.files is not None:
                    os.close(part.files.fd)
                    part.files = None
        for fd in (self._journal_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)  # closing the lock's fd releases the flock
        self._journal_fd = self._lock_fd = -1


# --- the log --------------------------------------------------------------------------


class EmbeddedLog:
    """The :class:`~flowmonkey.log.base.Log` for one process: in memory, or durable
    under ``path`` (see the module docstring for the layout and the commit sequence).

    ``partitions`` is the partition count the engine gives the topics it creates
    (:attr:`default_partitions`); a :class:`TopicSpec` always says its own count.
    ``fsync=False`` keeps the commit protocol (a crashed *process* loses nothing it
    was told was appended) but not power-loss durability. ``now_ms`` stamps records.
    Compacted topics are recorded as such but not compacted yet.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        partitions: int = 4,
        fsync: bool = True,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        if partitions < 1:
            raise LogError(f"partitions must be at least 1, got {partitions}")
        if segment_bytes < 1:
            raise LogError(f"segment_bytes must be at least 1, got {segment_bytes}")
        self._path = None if path is None else Path(path)
        self._default_partitions = partitions
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._now_ms = now_ms or _wall_clock_ms
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, Offsets] = {}
        self._dirty_groups: set[str] = set()
        self._store: _DiskStore | None = None
        self._started = self._closing = self._closed = False
        self._failure: BaseException | None = None
        self._seq = 0  # last journal seq assigned
        self._visible_seq = 0  # last journal seq published
        self._pending: list[_Batch] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def default_partitions(self) -> int:
        return self._default_partitions

    @property
    def partitions(self) -> int:
        """Alias of :attr:`default_partitions`."""
        return self._default_partitions

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._closed or self._closing:
            raise LogError("this EmbeddedLog was closed; create a new one to reopen")
        if self._started:
            return
        if self._path is not None:
            store = _DiskStore(self._path, self._fsync, self._segment_bytes)
            recovered: _Recovered | None = None
            try:
                store.acquire_lock()
                recovered = store.recover()
                topics = recovered.topics.values()
                store.checkpoint(recovered.seq, topics, recovered.groups, recovered.groups.keys())
            except BaseException as exc:
                store.close(recovered.topics.values() if recovered else ())
                if isinstance(exc, OSError):
                    raise LogError(f"cannot open the embedded log at {self._path}: {exc}") from exc
                raise
            self._store = store
            self._topics, self._groups = recovered.topics, recovered.groups
            self._seq = self._visible_seq = recovered.seq
        self._started = True

    async def close(self) -> None:
        """Finish pending appends, checkpoint, release the data directory, and make
        current and later ``wait_for`` calls raise."""
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            if self._flusher is not None:
                await self._flusher
            store = self._store
            if store is not None:
                try:
                    if self._failure is None:
                        self._checkpoint(store)
                finally:
                    store.close(self._topics.values())
        except OSError as exc:
            raise LogError(f"closing the embedded log at {self._path} failed: {exc}") from exc
        finally:
            self._closed = True
            for topic in self._topics.values():
                for part in topic.parts:
                    part.wake()

    async def create_topics(self, topics: Sequence[TopicSpec]) -> None:
        self._check_writable()
        for spec in topics:
            if not _TOPIC_NAME.fullmatch(spec.name) or spec.name in _RESERVED_NAMES:
                raise LogError(
                    f"invalid topic name {spec.name!r}: use 1-249 of [A-Za-z0-9._-]", topic=spec.name
                )
            if spec.partitions < 1:
                raise LogError(f"topic {spec.name!r} needs at least 1 partition", topic=spec.name)
        for spec in topics:
            if spec.name in self._topics:
                continue
            topic = _Topic(spec)
            if self._store is not None:
                try:
                    self._store.create_topic(topic)
                except OSError as exc:
                    raise LogError(f"cannot create topic {spec.name!r}: {exc}", topic=spec.name) from exc
            self._topics[spec.name] = topic

    async def partitions_for(self, topic: str) -> int:
        self._check_readable()
        return len(self._topic(topic).parts)

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> list[Position]:
        self._check_writable()
        routed = self._route(records)
        offsets = self._validated_offsets(commit_group, commit_offsets)
        if self._store is None:
            return self._append_in_memory(routed, commit_group, offsets)
        return await self._append_durable(routed, commit_group, offsets)

    async def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[Record]:
        self._check_readable()
        part = self._partition(topic, partition)
        if offset < 0 or max_records < 1:
            raise LogError(
                f"cannot read {topic}/{partition} from offset {offset} "
                f"with max_records={max_records}: both must be non-negative and max_records >= 1",
                topic=topic,
                partition=partition,
            )
        return part.records[offset : offset + max_records]

    async def wait_for(self, topic: str, partition: int, offset: int, timeout_s: float) -> bool:
        self._check_readable()
        part = self._partition(topic, partition)
        if len(part.records) > offset:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(part.records) <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if part.waiter is None:
                part.waiter = asyncio.Event()
            try:
                await asyncio.wait_for(part.waiter.wait(), remaining)
            except TimeoutError:
                return False
            if self._closed:
                raise LogError(f"the log closed while waiting on {topic}/{partition}")
        return True

    async def end_offset(self, topic: str, partition: int) -> int:
        self._check_readable()
        return len(self._partition(topic, partition).records)

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        await self.append((), commit_group=group, commit_offsets=offsets)

    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        self._check_readable()
        return self._groups.get(group, {}).get((topic, partition))

    # --- internals ----------------------------------------------------------------------

    def _check_readable(self) -> None:
        if not self._started:
            raise LogError("the EmbeddedLog is not started: call start() or use 'async with'")
        if self._closed:
            raise LogError("the EmbeddedLog is closed")

    def _check_writable(self) -> None:
        self._check_readable()
        if self._closing:
            raise LogError("the EmbeddedLog is closing")
        if self._failure is not None:
            raise LogError(
                f"the embedded log at {self._path} refuses writes after a failed write "
                f"({self._failure!r}); close it and open it again to recover"
            )

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise LogError(f"unknown topic {name!r}: create it with create_topics() first", topic=name)
        return topic

    def _partition(self, topic: str, partition: int) -> _Partition:
        parts = self._topic(topic).parts
        if not 0 <= partition < len(parts):
            raise LogError(
                f"partition {partition} does not exist: topic {topic!r} has {len(parts)}",
                topic=topic,
                partition=partition,
            )
        return parts[partition]

    def _route(self, records: Sequence[OutRecord]) -> list[tuple[_Partition, OutRecord]]:
        routed = []
        topics = self._topics
        for record in records:
            topic = topics.get(record.topic) or self._topic(record.topic)
            index = record.partition
            if index is None:
                key = record.key
                count = len(topic.parts)
                index = topic.next_round_robin() if key is None else partition_for(key, count)
            elif not 0 <= index < len(topic.parts):
                self._partition(record.topic, index)  # raises
            routed.append((topic.parts[index], record))
        return routed

    def _validated_offsets(
        self, group: str | None, offsets: Mapping[tuple[str, int], int] | None
    ) -> Offsets:
        if not offsets:
            return {}
        if not group:
            raise LogError("commit_offsets need a non-empty commit_group")
        for (topic, partition), offset in offsets.items():
            self._partition(topic, partition)
            if offset < 0:
                raise LogError(
                    f"cannot commit offset {offset} for {topic}/{partition}: offsets are >= 0",
                    topic=topic,
                    partition=partition,
                )
        return dict(offsets)

    def _append_in_memory(
        self, routed: list[tuple[_Partition, OutRecord]], group: str | None, offsets: Offsets
    ) -> list[Position]:
        # No await from here on: readers see all of this append or none of it.
        timestamp_ms = self._now_ms()
        positions = []
        for part, out in routed:
            offset = part.next_offset
            part.next_offset = offset + 1
            part.records.append(
                Record(out.topic, part.index, offset, out.key, out.value, out.headers, timestamp_ms)
            )
            positions.append(Position(out.topic, part.index, offset))
            if part.waiter is not None:
                part.wake()
        if offsets:
            assert group is not None
            self._groups.setdefault(group, {}).update(offsets)
        return positions

    async def _append_durable(
        self, routed: list[tuple[_Partition, OutRecord]], group: str | None, offsets: Offsets
    ) -> list[Position]:
        store = self._store
        assert store is not None
        if not routed and not offsets:
            return []
        timestamp_ms = self._now_ms()
        positions = []
        by_partition: dict[_Partition, list[Record]] = {}
        for part, out in routed:
            offset = part.next_offset
            part.next_offset = offset + 1
            record = Record(out.topic, part.index, offset, out.key, out.value, out.headers, timestamp_ms)
            by_partition.setdefault(part, []).append(record)
            positions.append(Position(out.topic, part.index, offset))
        self._seq += 1
        ends = [(part.topic, part.index, part.next_offset) for part in by_partition]
        offset_items = [(topic, partition, o) for (topic, partition), o in offsets.items()]
        entry = _encode_entry(_APPEND, self._seq, ends, group if offsets else None, offset_items)
        batch = _Batch(self._seq, by_partition, group if offsets else None, offsets, entry)
        try:
            store.write(batch)
        except OSError as exc:
            raise self._fail(exc) from exc
        if not self._fsync:
            self._publish(batch)
            store.close_retired()
            if store.journal_size > _JOURNAL_COMPACT_BYTES:
                self._checkpoint(store)
            return positions
        batch.done = asyncio.get_running_loop().create_future()
        self._pending.append(batch)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_rounds(store))
        await batch.done
        return positions

    async def _flush_rounds(self, store: _DiskStore) -> None:
        """Group commit: each round syncs every file written by the appends queued so
        far, then publishes them in order."""
        try:
            while self._pending:
                batches, self._pending = self._pending, []
                try:
                    if store.journal_size > _JOURNAL_COMPACT_BYTES:
                        self._checkpoint(store, [batch.entry for batch in batches])
                    await asyncio.to_thread(_sync_all, store.take_dirty())
                except BaseException as exc:
                    error = self._fail(exc)
                    for batch in [*batches, *self._pending]:
                        if batch.done is not None and not batch.done.done():
                            batch.done.set_exception(error)
                    self._pending = []
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return
                for batch in batches:
                    self._publish(batch)
                    if batch.done is not None and not batch.done.done():
                        batch.done.set_result(None)
                store.close_retired()
        finally:
            self._flusher = None

    def _checkpoint(self, store: _DiskStore, unsynced_entries: Sequence[bytes] = ()) -> None:
        store.checkpoint(
            self._visible_seq,
            self._topics.values(),
            self._groups,
            self._dirty_groups,
            unsynced_entries,
        )
        self._dirty_groups.clear()

    def _publish(self, batch: _Batch) -> None:
        """Step 5: make one append visible, records and offsets at once."""
        for part, records in batch.records.items():
            part.records.extend(records)
            part.wake()
        if batch.group is not None:
            self._groups.setdefault(batch.group, {}).update(batch.offsets)
            self._dirty_groups.add(batch.group)
        self._visible_seq = batch.seq

    def _fail(self, exc: BaseException) -> LogError:
        self._failure = exc
        logger.error("embedded log at %s failed writing and now refuses writes: %r", self._path, exc)
        return LogError(f"writing to the embedded log at {self._path} failed: {exc!r}")
