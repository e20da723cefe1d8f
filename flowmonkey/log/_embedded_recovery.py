"""What is on disk in a durable embedded log's data directory, and what opening it,
``flowmonkey log check`` and ``flowmonkey log repair`` may do about it.

The rules (issue 10, "data safety"):

* **Committed records are never cut.** A record is committed once the journal says
  so, or (without a trustworthy journal) once its frame passes its checksum. Damage
  in front of committed records (a bad byte, a missing segment, a record a journal
  entry names that is gone) stops the open with a :class:`~flowmonkey.errors.LogError` whose
  code is :data:`LOG_DAMAGED`, naming the file, the byte range, the partition and
  the executions affected, and nothing on disk is changed.
* **A torn tail is moved aside, never discarded.** Bytes after the last committed
  record of a partition (an append that crashed before its journal entry reached
  disk, or a half-written frame) are moved to ``<segment>.torn-<time>`` next to
  their segment before the segment is cut.
* **A damaged journal is worth what a missing one is.** Only a journal whose first
  frame is a valid checkpoint and whose damage is at most a torn last entry is used;
  otherwise the segments' checksums decide what is committed, and the journal is
  kept as ``_journal.log.damaged-<time>``.
* **An offset past a partition's end is never trusted.** A group whose committed
  offset is beyond its partition's committed end stops the open
  (:data:`LOG_OFFSETS_PAST_END`): reading from there would skip the records appended
  next. Repair sets it to the partition's end.

``flowmonkey log check`` and ``log repair`` (:mod:`flowmonkey.log._embedded_repair`)
report the same findings and fix what opening refuses to.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from array import array
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from flowmonkey.errors import LogError
from flowmonkey.log._disk_columns import DiskColumns
from flowmonkey.log._embedded_store import (
    _CHECKPOINT,
    _ENTRY_HEAD,
    _FRAME,
    _JOURNAL,
    _OFFSETS,
    _RECORD_HEAD,
    _RESERVED_NAMES,
    _SEGMENT_NAME,
    DiskStore,
    Offsets,
    TopicState,
    _Corrupt,
    _decode_entry,
    _decode_group,
    _decode_record,
    _Entry,
    _fsync_dir,
    _truncate,
    _write_file,
    unseal,
)
from flowmonkey.log.base import Record, TopicSpec

logger = logging.getLogger("flowmonkey.log.embedded")

LOG_DAMAGED = "LOG_DAMAGED"
LOG_OFFSETS_PAST_END = "LOG_OFFSETS_PAST_END"
MIN_RECORD_FRAME = _FRAME.size + _RECORD_HEAD.size
_OFFSET = struct.Struct("<Q")
_MAX_NAMED_EXECUTIONS = 20
Key = tuple[str, int]


def repair_command(root: Path) -> str:
    return f"flowmonkey log repair --data-dir {root}"


def check_command(root: Path) -> str:
    return f"flowmonkey log check --data-dir {root}"


def side_file(path: Path, kind: str) -> Path:
    """``<path>.<kind>-<UTC time>``, not taken yet."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.{kind}-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{kind}-{stamp}-{number}")
    return candidate


# --- segments -------------------------------------------------------------------------


@dataclass(slots=True)
class SegmentScan:
    """One segment file: where its intact records are (the byte where each frame
    starts and the byte after it), their offsets and timestamps, and the byte ranges
    ``[start, end)`` that hold no intact record.

    The records themselves are not kept: a scan of a large log would hold all of it
    in memory at once. :attr:`records` reads them again (repairs, damage reports)."""

    path: Path
    base: int
    size: int
    starts: array[int] = field(default_factory=lambda: array("q"))
    ends: array[int] = field(default_factory=lambda: array("q"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[int] = field(default_factory=lambda: array("q"))
    topic: str = ""
    index: int = 0
    damaged: list[tuple[int, int]] = field(default_factory=list)

    @property
    def records(self) -> list[Record]:
        """The intact records, decoded from the file again."""
        if not self.starts:
            return []
        buf = self.path.read_bytes()
        view = memoryview(buf)
        return [_decode_record(self.topic, self.index, view[start + _FRAME.size:end])
                for start, end in zip(self.starts, self.ends, strict=True)]


def _record_at(buf: bytes, view: memoryview, pos: int, topic: str, index: int,
               after: int, limit: int) -> tuple[Record, int] | None:
    """The record whose frame starts at ``pos`` and whose offset is in
    ``(after, limit]``, with the byte after its frame; None if there is none."""
    size = len(buf)
    if pos + MIN_RECORD_FRAME > size:
        return None
    length, crc = _FRAME.unpack_from(buf, pos)
    end = pos + _FRAME.size + length
    if length < _RECORD_HEAD.size or end > size:
        return None
    (offset,) = _OFFSET.unpack_from(buf, pos + _FRAME.size)
    if not after < offset <= limit:
        return None
    payload = view[pos + _FRAME.size : end]
    if zlib.crc32(payload) != crc:
        return None
    try:
        return _decode_record(topic, index, payload), end
    except _Corrupt:
        return None


def scan_segment(path: Path, topic: str, index: int, after: int) -> SegmentScan:
    """Read every intact record of ``path`` whose offset is above ``after``. After a
    damaged frame, resynchronise on the next byte where a whole frame passes its
    checksum and holds a later offset (cheap tests first: length, offset range).

    Each frame's own offset is trusted, not the file name: a segment may be named
    after a later offset than its first record (an older version appended into an
    empty segment left by a roll that a crash interrupted). The name only widens the
    range of offsets accepted (a segment after a missing one starts past ``after``)."""
    buf = path.read_bytes()
    view = memoryview(buf)
    size = len(buf)
    base = int(path.name[:20])
    scan = SegmentScan(path, base, size, topic=topic, index=index)
    # no more records than frames fit: a bound that rejects most random "offsets"
    span = size // MIN_RECORD_FRAME + 1
    pos = 0
    while pos < size:
        limit = max(after, base - 1) + span
        found = _record_at(buf, view, pos, topic, index, after, limit)
        if found is not None:
            record, end = found
            scan.starts.append(pos)
            scan.ends.append(end)
            scan.offsets.append(record.offset)
            scan.stamps.append(record.timestamp_ms)
            after = record.offset
            pos = end
            continue
        resume = pos + 1
        while resume < size and _record_at(buf, view, resume, topic, index, after,
                                           limit) is None:
            resume += 1
        scan.damaged.append((pos, min(resume, size)))
        pos = resume
    return scan


@dataclass(slots=True)
class Break:
    """Where a partition stops being whole: a damaged byte range (``end > start``) or
    missing records (``end == start``: a gap between files or frames)."""

    path: Path
    start: int
    end: int
    offset: int  # the first offset affected
    records_before: int  # intact records in front of it
    executions: list[str] = field(default_factory=list)

    @property
    def damaged_bytes(self) -> int:
        return self.end - self.start


@dataclass(slots=True)
class PartitionScan:
    topic: str
    index: int
    directory: Path
    segments: list[SegmentScan] = field(default_factory=list)
    breaks: list[Break] = field(default_factory=list)
    count: int = 0  # intact records

    @property
    def prefix(self) -> int:
        """Intact records in front of the first break."""
        return self.breaks[0].records_before if self.breaks else self.count

    @property
    def tail_only(self) -> bool:
        """No intact record follows the first break (a torn tail, if it is not
        committed)."""
        return not self.breaks or self.breaks[0].records_before == self.count

    def records(self) -> list[Record]:
        return [record for segment in self.segments for record in segment.records]

    def position(self, record_index: int) -> tuple[int, int]:
        """(segment index, byte) where ``record_index``'s frame starts."""
        for number, segment in enumerate(self.segments):
            if record_index < len(segment.offsets):
                return number, segment.starts[record_index]
            record_index -= len(segment.offsets)
        raise IndexError(record_index)

    def executions_after(self, record_index: int) -> list[str]:
        keys: dict[str, None] = {}
        seen = 0
        for segment in self.segments:
            for record in segment.records:
                if seen >= record_index and record.key is not None:
                    keys.setdefault(record.key.decode(errors="replace"), None)
                seen += 1
        return list(keys)


def scan_partition(directory: Path, topic: str, index: int) -> PartitionScan:
    scan = PartitionScan(topic, index, directory)
    if not directory.is_dir():
        return scan
    paths = sorted(p for p in directory.iterdir() if _SEGMENT_NAME.fullmatch(p.name))
    expected = 0
    for path in paths:
        segment = scan_segment(path, topic, index, expected - 1)
        scan.segments.append(segment)
        # the damaged ranges and the records, both in byte order, merged
        damaged = iter(segment.damaged)
        damage = next(damaged, None)
        damaged_until = -1  # the end of the damaged range just read, if any
        for start, offset in zip(segment.starts, segment.offsets, strict=True):
            while damage is not None and damage[0] < start:
                scan.breaks.append(Break(path, *damage, expected, scan.count,
                                         _keys_in(path, *damage)))
                damaged_until = damage[1]
                damage = next(damaged, None)
            # records missing right after a damaged range were in it: one break, not two
            if offset != expected and start != damaged_until:
                scan.breaks.append(Break(path, start, start, expected, scan.count))
            expected = offset + 1
            scan.count += 1
        while damage is not None:
            scan.breaks.append(Break(path, *damage, expected, scan.count,
                                     _keys_in(path, *damage)))
            damage = next(damaged, None)
    return scan


def _keys_in(path: Path, start: int, end: int) -> list[str]:
    """The key of a damaged frame whose header still parses (best effort): it names
    the execution the damaged record belonged to."""
    with path.open("rb") as file:
        file.seek(start)
        head = file.read(min(end - start, 4096))
    try:
        _, _, key_len, _, _ = _RECORD_HEAD.unpack_from(head, _FRAME.size)
    except struct.error:
        return []
    key = head[MIN_RECORD_FRAME : MIN_RECORD_FRAME + key_len] if 0 < key_len <= 256 else b""
    if len(key) != key_len or not key:
        return []
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return []
    return [text] if text.isprintable() else []


# --- journal --------------------------------------------------------------------------


@dataclass(slots=True)
class JournalScan:
    path: Path
    state: str  # "ok", "missing" or "damaged"
    entries: list[_Entry] = field(default_factory=list)
    torn_bytes: int = 0  # an "ok" journal's torn last entry
    problem: str = ""  # why a journal is "damaged"

    @property
    def trusted(self) -> bool:
        return self.state == "ok"


def _entry_at(buf: bytes, view: memoryview, pos: int) -> tuple[_Entry, int] | None:
    if pos + _FRAME.size + _ENTRY_HEAD.size > len(buf):
        return None
    length, crc = _FRAME.unpack_from(buf, pos)
    end = pos + _FRAME.size + length
    if length < _ENTRY_HEAD.size or end > len(buf):
        return None
    payload = view[pos + _FRAME.size : end]
    if zlib.crc32(payload) != crc:
        return None
    try:
        return _decode_entry(payload), end
    except (_Corrupt, UnicodeDecodeError):
        return None


def _whole_but_length(buf: bytes, pos: int) -> bool:
    """The bytes from ``pos`` to the end are a whole entry whose length field is
    damaged (its checksum matches them): damage to a committed entry, not a torn
    write, which would have cut the payload, not the length."""
    if pos + _FRAME.size + _ENTRY_HEAD.size > len(buf):
        return False
    crc: int = _FRAME.unpack_from(buf, pos)[1]
    return zlib.crc32(buf[pos + _FRAME.size :]) == crc


def scan_journal(path: Path) -> JournalScan:
    """A journal is trusted if it starts with a valid checkpoint and every frame after
    it is valid, except a last frame cut short (an append that crashed while its
    entry was being written). A frame that is whole but fails its checksum, or any
    damage followed by a valid frame, makes it untrusted."""
    if not path.exists():
        return JournalScan(path, "missing")
    buf = path.read_bytes()
    if not buf:  # it is only ever replaced whole, with a checkpoint entry in it
        return JournalScan(path, "damaged", problem="it is empty")
    view = memoryview(buf)
    scan = JournalScan(path, "ok")
    pos, seq = 0, -1
    while pos < len(buf):
        found = _entry_at(buf, view, pos)
        if found is not None and found[0].seq >= seq and (
                scan.entries or found[0].kind == _CHECKPOINT):
            entry, pos = found
            scan.entries.append(entry)
            seq = entry.seq
            continue
        if not scan.entries:
            return JournalScan(path, "damaged", problem="it does not start with a valid "
                               "checkpoint entry")
        short = pos + _FRAME.size > len(buf) or (
            pos + _FRAME.size + _FRAME.unpack_from(buf, pos)[0] > len(buf))
        later = any(_entry_at(buf, view, p) is not None for p in range(pos + 1, len(buf)))
        if short and not later and not _whole_but_length(buf, pos):
            scan.torn_bytes = len(buf) - pos
            return scan
        scan.state = "damaged"
        scan.problem = f"byte {pos} starts a frame that is not a valid entry"
        return scan
    return scan


# --- topics and groups ------------------------------------------------------------------


@dataclass(slots=True)
class BadFile:
    path: Path
    reason: str
    fix: str  # what repair does about it


def load_topic_specs(root: Path, bad: list[BadFile],
                     known: Collection[str] = ()) -> list[TopicSpec]:
    """The topics' specs; ``known`` topics (named by the journal) existed, so a topic
    directory without ``topic.json`` is an interrupted create only if it is not known
    and holds no records."""
    specs = []
    for directory in sorted(root.iterdir()):
        meta = directory / "topic.json"
        if directory.name in _RESERVED_NAMES or not directory.is_dir():
            continue
        partitions = sorted(int(p.name) for p in directory.iterdir()
                            if p.is_dir() and p.name.isdigit())
        has_data = any(segment.stat().st_size > 0 for p in partitions
                       for segment in (directory / str(p)).glob("*.log"))
        if not meta.exists():
            if has_data or directory.name in known:
                bad.append(BadFile(meta, "it is missing but the topic has records",
                                   f"write it for {len(partitions)} partition(s)"))
            else:
                logger.warning("ignoring %s: it has no topic.json (an interrupted create)",
                               directory)
            continue
        try:
            data = unseal(meta.read_bytes(), ("partitions", "compacted", "config"))
            spec = TopicSpec(
                name=directory.name,
                partitions=int(data["partitions"]),
                compacted=bool(data["compacted"]),
                config={str(k): str(v) for k, v in data.get("config", {}).items()},
            )
            if spec.partitions < 1 or (partitions and partitions[-1] >= spec.partitions):
                raise ValueError(f"{spec.partitions} partitions, but the directory has "
                                 f"partition {partitions[-1] if partitions else 0}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            bad.append(BadFile(meta, f"it is not valid ({exc})",
                               f"keep it aside and write it for {len(partitions)} partition(s)"))
            continue
        specs.append(spec)
    return specs


def load_groups(offsets_dir: Path, bad: list[BadFile]) -> tuple[dict[str, int],
                                                                dict[str, Offsets]]:
    seqs: dict[str, int] = {}
    groups: dict[str, Offsets] = {}
    if not offsets_dir.is_dir():
        return seqs, groups
    for path in sorted(offsets_dir.glob("*.json")):
        try:
            group, seq, offsets = _decode_group(path)
        except LogError:
            bad.append(BadFile(path, "it is not valid", "keep it aside; the group then "
                               "reads its partitions from the beginning again"))
            continue
        seqs[group], groups[group] = seq, offsets
    return seqs, groups


# --- the whole directory ----------------------------------------------------------------


@dataclass(slots=True)
class OffsetPastEnd:
    group: str
    topic: str
    partition: int
    offset: int
    end: int


@dataclass(slots=True)
class Analysis:
    """Everything recovery found in a data directory; nothing was changed yet."""

    root: Path
    specs: list[TopicSpec]
    partitions: dict[Key, PartitionScan]
    journal: JournalScan
    proven: dict[Key, int]  # ends a trusted journal's valid entries prove committed
    committed: dict[Key, int]  # committed end per partition
    committed_entries: list[_Entry]
    groups: dict[str, Offsets]
    group_seqs: dict[str, int]
    bad_files: list[BadFile]
    past_end: list[OffsetPastEnd]

    def damaged(self, key: Key) -> bool:
        """Committed records of this partition are damaged or missing: with a trusted
        journal, records its valid entries name; without one, intact records after
        damage (their checksums prove them)."""
        scan = self.partitions[key]
        if self.journal.trusted:
            return self.proven.get(key, 0) > scan.prefix
        return not scan.tail_only

    def torn(self, key: Key) -> bool:
        """Bytes after the committed end that open moves aside."""
        scan = self.partitions[key]
        return bool(scan.breaks) or scan.count > self.committed[key]

    @property
    def problems(self) -> list[str]:
        lines = [f"{bad.path}: {bad.reason}" for bad in self.bad_files]
        for key, scan in self.partitions.items():
            if self.damaged(key):
                lines += describe_damage(scan, self.proven.get(key, 0))
        lines += [
            f'group "{p.group}" has committed offset {p.offset} on {p.topic}/{p.partition}, '
            f"past the partition's end {p.end}: records appended there next would be skipped"
            for p in self.past_end]
        return lines

    def seq(self) -> int:
        return max([0, *self.group_seqs.values(), *(e.seq for e in self.committed_entries)])


def describe_damage(scan: PartitionScan, proven: int) -> list[str]:
    lines = []
    where = f"{scan.topic}/{scan.index}"
    for damage in scan.breaks:
        after = scan.count - damage.records_before
        executions = damage.executions + [
            e for e in scan.executions_after(damage.records_before)
            if e not in damage.executions]
        named = ", ".join(executions[:_MAX_NAMED_EXECUTIONS])
        more = len(executions) - _MAX_NAMED_EXECUTIONS
        named += f" and {more} more" if more > 0 else ""
        what = (f"bytes {damage.start}..{damage.end - 1} ({damage.damaged_bytes} bytes) hold "
                "no intact record" if damage.damaged_bytes else
                f"records are missing before byte {damage.start} (a segment or frames are "
                "gone)")
        lines.append(
            f"{where}: {damage.path}: {what}; records from offset {damage.offset} on are "
            f"affected ({after} intact record(s) after it)"
            + (f"; executions: {named}" if named else ""))
    if scan.tail_only and proven > scan.prefix:
        last = scan.segments[-1].path if scan.segments else scan.directory
        lines.append(f"{where}: {last}: committed records {scan.prefix}..{proven - 1} "
                     "are missing or damaged")
    return lines


def analyse(root: Path, progress: Callable[[str], None] | None = None) -> Analysis:
    bad: list[BadFile] = []
    journal = scan_journal(root / _JOURNAL)
    known = {topic for entry in journal.entries for topic, _, _ in entry.ends}
    specs = load_topic_specs(root, bad, known)
    partitions: dict[Key, PartitionScan] = {}
    for spec in specs:
        for index in range(spec.partitions):
            scan = scan_partition(root / spec.name / str(index), spec.name, index)
            partitions[(spec.name, index)] = scan
            if progress is not None:
                progress(f"scanned {spec.name}/{index}: {scan.count} intact record(s)")
    prefix = {key: scan.prefix for key, scan in partitions.items()}
    proven: dict[Key, int] = {}
    if journal.trusted:
        # Every valid entry is a committed append (only a torn last entry is not, and
        # scan_journal leaves it out): its records are committed whether or not the
        # next checkpoint was written. Damage in front of them is damage, never a
        # torn tail, and one partition's damage never uncommits another's records or
        # a group's offsets.
        for entry in journal.entries:
            for t, p, end in entry.ends:
                proven[(t, p)] = max(end, proven.get((t, p), 0))
        committed = {key: min(end, prefix.get(key, 0)) for key, end in proven.items()}
        committed_entries = list(journal.entries)
    else:
        # what the segments' checksums prove, as without a journal; an entry counts
        # for its group's offsets if the records it names are intact
        committed = dict(prefix)
        committed_entries = [
            e for e in journal.entries if e.kind != _CHECKPOINT
            and all(prefix.get((t, p), 0) >= end for t, p, end in e.ends)]
    for key in partitions:
        committed.setdefault(key, 0)
    group_seqs, groups = load_groups(root / _OFFSETS, bad)
    for entry in committed_entries:
        if entry.group is not None and entry.seq > group_seqs.get(entry.group, -1):
            groups.setdefault(entry.group, {}).update(((t, p), o) for t, p, o in entry.offsets)
    past_end = [
        OffsetPastEnd(group, topic, partition, offset, committed[(topic, partition)])
        for group, offsets in sorted(groups.items())
        for (topic, partition), offset in sorted(offsets.items())
        if (topic, partition) in committed and offset > committed[(topic, partition)]]
    return Analysis(root, specs, partitions, journal, proven, committed,
                    committed_entries, groups, group_seqs, bad, past_end)


# --- opening ----------------------------------------------------------------------------


@dataclass(slots=True)
class Recovered:
    topics: dict[str, TopicState]
    groups: dict[str, Offsets]
    seq: int


def damage_error(analysis: Analysis) -> LogError:
    root = analysis.root
    problems = analysis.problems
    code = LOG_DAMAGED if len(problems) > len(analysis.past_end) else LOG_OFFSETS_PAST_END
    message = (
        f"the embedded log at {root} cannot be opened: committed data is damaged or "
        "inconsistent, and opening it would lose or skip records (nothing was changed):\n"
        + "\n".join(f"  - {line}" for line in problems)
        + f"\nsee the details with `{check_command(root)}`; repair with "
        f"`{repair_command(root)}` (it moves the damaged bytes to a side file next to "
        "their segment, keeps every intact record after them at its offset, puts an "
        "empty placeholder record at each lost record's offset so that no stored "
        "offset moves, and sets a group's offset past a partition's end to the end)")
    return LogError(message, code=code, path=str(root), problems=problems)


def recover(store: DiskStore) -> Recovered:
    """Open ``store``'s directory: refuse (see :func:`damage_error`) if committed
    data is damaged, else move torn tails and a damaged journal aside and load."""
    root = store.root
    offsets_dir = root / _OFFSETS
    offsets_dir.mkdir(exist_ok=True)
    # (``*/*.tmp`` covers ``_offsets/``: each leftover once, and gone is fine)
    for leftover in {*root.glob("*.tmp"), *root.glob("*/*.tmp")}:
        leftover.unlink(missing_ok=True)
    analysis = analyse(root)
    if analysis.problems:
        raise damage_error(analysis)
    journal = analysis.journal
    if journal.state == "damaged":
        kept = side_file(journal.path, "damaged")
        os.replace(journal.path, kept)
        logger.warning("%s is damaged (%s); it was moved to %s and the segments' checksums "
                       "decide what is committed", journal.path, journal.problem, kept)
    elif journal.torn_bytes:
        keep_journal_tail(journal, store.fsync)
    elif journal.state == "missing" and any(s.count for s in analysis.partitions.values()):
        logger.warning("%s has no commit journal; trusting its segments", root)
    topics = {spec.name: TopicState(spec) for spec in analysis.specs}
    for (name, index), scan in analysis.partitions.items():
        end = analysis.committed[(name, index)]
        if analysis.torn((name, index)):
            move_tail_aside(scan, end, store.fsync)
        name_segments_by_content(scan, end, store.fsync)
        part = topics[name].parts[index]
        part.records = _columns(scan, end, store.partition_dir(name, index))
        part.next_offset = end
        remaining = [s for s in scan.segments if s.path.exists()]
        store.attach(part, [s.base for s in remaining], [s.size for s in remaining])
    return Recovered(topics, analysis.groups, analysis.seq())


def _columns(scan: PartitionScan, end: int, directory: Path) -> DiskColumns:
    """The first ``end`` records of a scanned partition, by place, with the bytes of
    the newest read back into memory as appends leave them."""
    columns = DiskColumns(scan.topic, scan.index, directory)
    count = 0
    for segment in scan.segments:
        base = segment.base
        for start, stop, stamp in zip(segment.starts, segment.ends, segment.stamps,
                                      strict=True):
            if count == end:
                break
            columns.place(base, start, stop - start, stamp)
            count += 1
    columns.fill_window()
    return columns


def tail_cut(scan: PartitionScan, end: int) -> tuple[int, int] | None:
    """(segment index, byte) after the first ``end`` records of a partition whose
    damage is all after them; None if nothing follows them."""
    if scan.breaks and scan.breaks[0].records_before <= end:
        damage = scan.breaks[0]
        number = next(i for i, s in enumerate(scan.segments) if s.path == damage.path)
        return number, damage.start
    if end < scan.count:
        return scan.position(end)
    return None


def tail_bytes(scan: PartitionScan, end: int) -> int:
    cut = tail_cut(scan, end)
    if cut is None:
        return 0
    number, start = cut
    return scan.segments[number].size - start + sum(s.size for s in scan.segments[number + 1 :])


def keep_journal_tail(journal: JournalScan, fsync: bool) -> Path:
    """Copy a torn last journal entry (an append that never committed) aside before
    the journal is rewritten."""
    data = journal.path.read_bytes()
    target = side_file(journal.path, "torn")
    _write_file(target, data[len(data) - journal.torn_bytes :], fsync)
    logger.warning("%s: its last %d bytes are a torn entry (an append that did not commit); "
                   "kept in %s", journal.path, journal.torn_bytes, target)
    return target


def move_tail_aside(scan: PartitionScan, end: int, fsync: bool) -> int:
    """Move everything after the first ``end`` records (uncommitted records and torn
    or damaged bytes) to ``<segment>.torn-<time>`` files; return the bytes moved."""
    found = tail_cut(scan, end)
    if found is None:
        return 0
    number, cut = found
    moved = 0
    for position, segment in enumerate(scan.segments[number:]):
        start = cut if position == 0 else 0
        if segment.size <= start:
            if position > 0 and segment.path.exists():
                # an empty segment a roll created for records that never committed:
                # appending into it would put offset ``end`` in a file named after a
                # later one
                segment.path.unlink()
            continue
        target = side_file(segment.path, "torn")
        if start == 0 and (segment.base > 0 or position > 0):
            os.replace(segment.path, target)  # the whole file: no copy needed
        else:
            with segment.path.open("rb") as source:
                source.seek(start)
                _write_file(target, source.read(), fsync)
            _truncate(segment.path, start, fsync)
        logger.warning("%s/%d: moved %d bytes of uncommitted or torn data after offset %d "
                       "from %s to %s", scan.topic, scan.index, segment.size - start,
                       end - 1, segment.path, target)
        moved += segment.size - start
        segment.size = start
    if fsync:
        _fsync_dir(scan.directory)
    return moved


def name_segments_by_content(scan: PartitionScan, end: int, fsync: bool) -> None:
    """Make each segment's name its first offset again: remove an empty segment named
    past the committed ``end`` (a roll a crash interrupted left it; nothing is in it),
    and rename a segment whose first record is below its name (an older version
    appended there) after that record, so the next append never lands in a segment
    named after a later offset."""
    changed = False
    for segment in scan.segments:
        if not segment.path.exists():
            continue
        if segment.size == 0 and segment.base > end and segment.base > 0:
            segment.path.unlink()
            logger.warning("%s/%d: removed %s, an empty segment named past the committed "
                           "end %d", scan.topic, scan.index, segment.path, end)
            changed = True
            continue
        first = segment.offsets[0] if segment.offsets else segment.base
        target = segment.path.with_name(f"{first:020d}.log")
        if first < segment.base and not target.exists():
            os.replace(segment.path, target)
            logger.warning("%s/%d: renamed %s to %s, after its first record", scan.topic,
                           scan.index, segment.path, target.name)
            segment.path, segment.base = target, first
            changed = True
    if changed and fsync:
        _fsync_dir(scan.directory)
