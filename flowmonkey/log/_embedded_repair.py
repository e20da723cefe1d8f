"""``flowmonkey log repair`` and ``flowmonkey log check``: the offline half of the
embedded log's recovery (the rules are in :mod:`flowmonkey.log._embedded_recovery`).

Repair moves each damaged byte range to ``<segment>.damaged-<time>`` and keeps every
intact record at its own offset (each frame carries it). Offsets are never renumbered:
positions kept outside the log (a projection's stored offsets, a processor snapshot's
``events_offset``, a group's committed offset) must go on naming the same records.
Each offset whose record was lost gets a *placeholder*: a record with no key, an
empty value and the header :data:`LOST_RECORD_HEADER`, which every reader already
treats as it treats any undecodable record (skipped and logged by processors and
projectors, dead-lettered as a command). The lost range after a damaged byte range
is ``[last intact offset + 1, next intact offset)``, and at a partition's end it
reaches the end the journal proves. A group's committed offset is kept (at most the
partition's end). Repair also moves a damaged journal, ``topic.json`` or offsets
file aside (rewriting ``topic.json`` from the partition directories), and writes a
fresh journal checkpoint. It deletes nothing: every byte it takes out of a segment
is in a side file next to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowmonkey.errors import LogError
from flowmonkey.log._embedded_recovery import (
    Analysis,
    BadFile,
    Key,
    PartitionScan,
    SegmentScan,
    analyse,
    describe_damage,
    move_tail_aside,
    side_file,
    tail_bytes,
)
from flowmonkey.log._embedded_store import (
    _CHECKPOINT,
    _JOURNAL,
    _OFFSETS,
    DiskStore,
    Offsets,
    _atomic_write,
    _encode_fields,
    _encode_group,
    _fsync_dir,
    _group_file,
    _write_file,
    encode_entry,
    seal,
)
from flowmonkey.log.base import LOST_RECORD_HEADER as LOST_RECORD_HEADER  # re-exported

_LOST = ((LOST_RECORD_HEADER, b""),)


@dataclass(slots=True)
class RepairReport:
    actions: list[str] = field(default_factory=list)
    quarantined_bytes: int = 0
    torn_bytes: int = 0
    records_kept: int = 0
    records_lost: int = 0


def repair(root: Path, *, fsync: bool = True,
           progress: Callable[[str], None] = lambda line: None) -> RepairReport:
    """Make ``root`` open again without losing an intact record (module docstring).
    Takes the directory's lock, so the log must not be open elsewhere."""
    require_data_dir(root)
    store = DiskStore(root, fsync, 1)
    store.acquire_lock()
    try:
        return _repair_locked(root, fsync, progress)
    finally:
        store.close()


def _repair_locked(root: Path, fsync: bool, progress: Callable[[str], None]) -> RepairReport:
    report = RepairReport()
    progress(f"scanning {root} …")
    analysis = analyse(root, progress)
    for bad in analysis.bad_files:
        report.actions.append(_fix_bad_file(bad, fsync))
    if analysis.bad_files:  # a rebuilt topic.json adds partitions: look again
        analysis = analyse(root)
    journal = analysis.journal
    if journal.state == "damaged":
        kept = side_file(journal.path, "damaged")
        os.replace(journal.path, kept)
        report.actions.append(f"{journal.path}: damaged ({journal.problem}); moved to {kept}; "
                              "the segments' checksums decide what is committed")
    ends: dict[Key, int] = {}
    for key, scan in analysis.partitions.items():
        if analysis.damaged(key):
            ends[key] = _quarantine(scan, analysis.proven.get(key, 0), fsync, report)
        else:
            end = analysis.committed[key]
            if analysis.torn(key):
                moved = move_tail_aside(scan, end, fsync)
                report.torn_bytes += moved
                report.actions.append(f"{key[0]}/{key[1]}: moved {moved} bytes after the "
                                      f"last committed record (offset {end - 1}) to "
                                      "<segment>.torn-* files")
            ends[key] = end
            report.records_kept += end
    groups = _reconcile(analysis.groups, ends, report)
    seq = analysis.seq() + 1
    offsets_dir = root / _OFFSETS
    offsets_dir.mkdir(exist_ok=True)
    for group, offsets in groups.items():
        _atomic_write(_group_file(offsets_dir, group), _encode_group(group, seq, offsets), fsync)
    checkpoint = encode_entry(_CHECKPOINT, seq, [(t, p, e) for (t, p), e in ends.items()],
                              None, ())
    _atomic_write(root / _JOURNAL, checkpoint, fsync)
    if not report.actions:
        report.actions.append("nothing to repair: every committed record is intact")
    return report


def _fix_bad_file(bad: BadFile, fsync: bool) -> str:
    path = bad.path
    if path.name == "topic.json":
        partitions = [p for p in path.parent.iterdir() if p.is_dir() and p.name.isdigit()]
        count = max([int(p.name) for p in partitions], default=0) + 1
        if path.exists():
            os.replace(path, side_file(path, "damaged"))
        meta = {"partitions": count, "compacted": False, "config": {}}
        _atomic_write(path, seal(meta), fsync)
        return (f"{path}: {bad.reason}; wrote it for {count} partition(s), not compacted "
                "(check the topic's settings)")
    target = side_file(path, "damaged")
    os.replace(path, target)
    return f"{path}: {bad.reason}; moved to {target}: {bad.fix.split('; ', 1)[-1]}"


def _quarantine(scan: PartitionScan, proven: int, fsync: bool,
                report: RepairReport) -> int:
    """Rewrite the partition's segments with only their intact records, each at its
    own offset, and a placeholder at each offset whose record was lost (up to
    ``proven``, the end the journal proves, at least); each segment's damaged bytes
    go to ``<segment>.damaged-<time>``. Returns the partition's new end."""
    where = f"{scan.topic}/{scan.index}"
    for line in describe_damage(scan, proven):
        report.actions.append(f"found: {line}")
    records = scan.records()
    end = max([proven, *(r.offset + 1 for r in records[-1:]),
               *(b.offset + 1 for b in scan.breaks if b.damaged_bytes),
               *(b.offset for b in scan.breaks)])
    stamp = records[0].timestamp_ms if records else 0
    expected = 0  # the next offset to write
    lost: list[tuple[int, int]] = []  # lost ranges [first, end)

    def placeholders(upto: int) -> list[bytes]:
        nonlocal expected
        if upto > expected:
            lost.append((expected, upto))
        frames = [_encode_fields(o, stamp, None, b"", _LOST)
                  for o in range(expected, upto)]
        expected = max(expected, upto)
        return frames

    segments = scan.segments
    if not segments:  # every segment is gone: the placeholders need one
        scan.directory.mkdir(parents=True, exist_ok=True)
        path = scan.directory / f"{0:020d}.log"
        _write_file(path, b"", fsync)
        segments = [SegmentScan(path, 0, 0)]
    for number, segment in enumerate(segments):
        data = segment.path.read_bytes()
        if segment.damaged:
            quarantined = b"".join(data[start:stop] for start, stop in segment.damaged)
            target = side_file(segment.path, "damaged")
            _write_file(target, quarantined, fsync)
            report.quarantined_bytes += len(quarantined)
            ranges = ", ".join(f"{s}..{e - 1}" for s, e in segment.damaged)
            report.actions.append(f"{where}: moved {len(quarantined)} damaged bytes (bytes "
                                  f"{ranges}) of {segment.path} to {target}")
        new_base = expected
        frames: list[bytes] = []
        for start, record in zip(segment.starts, segment.records, strict=True):
            frames += placeholders(record.offset)
            length = int.from_bytes(data[start : start + 4], "little")
            frames.append(data[start : start + 8 + length])  # as it was: same offset
            stamp = record.timestamp_ms
            expected = record.offset + 1
        if number == len(segments) - 1:
            frames += placeholders(end)
        _replace_segment(segment, new_base if frames else segment.base, b"".join(frames),
                         fsync)
    count = len(records)
    placed = sum(stop - start for start, stop in lost)
    report.records_kept += count
    report.records_lost += placed
    ranges = ", ".join(f"{s}..{e - 1}" if e - s > 1 else str(s) for s, e in lost)
    report.actions.append(
        f"{where}: kept {count} intact record(s) at their offsets"
        + (f"; {placed} record(s) lost (offsets {ranges}), each replaced by an empty "
           f"placeholder record with header {LOST_RECORD_HEADER} so that no offset "
           "moves" if placed else ""))
    if fsync:
        _fsync_dir(scan.directory)
    return end


def _replace_segment(segment: SegmentScan, new_base: int, content: bytes,
                     fsync: bool) -> None:
    """Write ``content`` as the segment starting at ``new_base`` (never above the old
    base, and every name below it belongs to a segment already rewritten)."""
    target = segment.path.with_name(f"{new_base:020d}.log")
    if not content and segment.base != 0:
        segment.path.unlink()
        return
    _atomic_write(target, content, fsync)
    if target != segment.path:
        segment.path.unlink()


def _reconcile(groups: dict[str, Offsets], ends: dict[Key, int],
               report: RepairReport) -> dict[str, Offsets]:
    """A group keeps its committed offset (offsets never move), at most its
    partition's end."""
    reconciled: dict[str, Offsets] = {}
    for group, offsets in sorted(groups.items()):
        out: Offsets = {}
        for key, offset in sorted(offsets.items()):
            new = min(offset, ends[key]) if key in ends else offset
            if new != offset:
                report.actions.append(f'group "{group}": offset on {key[0]}/{key[1]} '
                                      f"{offset} -> {new}")
            out[key] = new
        reconciled[group] = out
    return reconciled


# --- check ----------------------------------------------------------------------------


def check_report(analysis: Analysis) -> dict[str, Any]:
    """What ``flowmonkey log check`` prints (as JSON with ``--json``)."""
    partitions = []
    for key, scan in analysis.partitions.items():
        torn_bytes = 0
        if not analysis.damaged(key) and analysis.torn(key):
            torn_bytes = tail_bytes(scan, analysis.committed[key])
        partitions.append({
            "topic": key[0], "partition": key[1], "records": scan.count,
            "committed_end": analysis.committed[key],
            "damaged": analysis.damaged(key),
            "damaged_ranges": [
                {"file": str(b.path), "start": b.start, "end": b.end, "offset": b.offset,
                 "executions": b.executions}
                for b in scan.breaks] if analysis.damaged(key) else [],
            "torn_tail_bytes": torn_bytes,
        })
    return {
        "data_dir": str(analysis.root),
        "ok": not analysis.problems,
        "journal": {"file": str(analysis.journal.path), "state": analysis.journal.state,
                    "torn_bytes": analysis.journal.torn_bytes,
                    "problem": analysis.journal.problem},
        "partitions": partitions,
        "bad_files": [{"file": str(b.path), "reason": b.reason} for b in analysis.bad_files],
        "offsets_past_end": [
            {"group": p.group, "topic": p.topic, "partition": p.partition,
             "offset": p.offset, "end": p.end} for p in analysis.past_end],
        "problems": analysis.problems,
    }


def require_data_dir(root: Path) -> None:
    if not root.is_dir() or not ((root / _JOURNAL).exists() or (root / _OFFSETS).is_dir()):
        raise LogError(f"{root} is not an embedded log's data directory (it has no "
                       f"{_JOURNAL} and no {_OFFSETS}/)", path=str(root))


def check(root: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Analyse ``root`` under its lock, changing nothing."""
    require_data_dir(root)
    store = DiskStore(root, False, 1)
    store.acquire_lock()
    try:
        return check_report(analyse(root, progress))
    finally:
        store.close()
