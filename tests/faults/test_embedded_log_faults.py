"""Fault injection on the durable embedded log (issue 10): after random committed work,
corrupt, truncate, extend or delete one file of the data directory at a random place,
then:

* opening either shows every record committed before the damage, or refuses with a
  message naming the damaged file (or, for a deleted segment, its partition's
  directory) and changes nothing;
* ``repair`` keeps every intact record, and the bytes it took out are in side files
  next to their segments (kept + quarantined + torn = what was there);
* after repair every intact record is at its own offset and each lost one's offset
  holds a placeholder, so no record is skipped by a consumer group (its offset is
  kept) or by a reader that stored an offset elsewhere;
* after a crash (no close, so no checkpoint: appends are committed by their journal
  entries alone), the same holds: every committed record survives, or the start
  refuses naming the file and repair keeps every record the fault did not destroy.

Hypothesis runs derandomized without an example database, so CI runs the same cases
every time; the summary line at the end of the module says how many ran.
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowmonkey.errors import LogError, WaitTimeout
from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
from flowmonkey.log._embedded_repair import LOST_RECORD_HEADER, repair
from flowmonkey.log.partitioner import partition_for
from flowmonkey.model.execution import ExecutionStatus
from tests.faults.support import EVENTS, engine_on, frame_starts, placeholder_bytes

Key = tuple[str, int]
PARTITIONS: list[Key] = [("events", 0), ("events", 1), ("commands", 0)]
GROUP = "processor"
FAULTS = ["flip", "truncate", "delete", "append"]
FAST = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ENGINE = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])

COUNTS: collections.Counter[str] = collections.Counter()
LOST = ((LOST_RECORD_HEADER, b""),)  # the headers of a lost record's placeholder


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = ("fault-injection summary: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(COUNTS.items()))
            + "; intact records lost: 0 (every case asserts it)")
    if reporter is not None:
        reporter.write_line(line)
    print(line)


# --- the work and the model -----------------------------------------------------------


@dataclass
class Model:
    """What was committed: each partition's values, the group's offsets, and which
    segment file and byte range each record's frame was in."""

    values: dict[Key, list[bytes]] = field(default_factory=lambda: {k: [] for k in PARTITIONS})
    offsets: dict[Key, int] = field(default_factory=dict)
    frames: dict[Path, list[tuple[Key, int, int, int]]] = field(default_factory=dict)


Append = tuple[list[tuple[int, int]], bool]  # (partition index, value size)*, commit?

appends = st.lists(
    st.tuples(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 60)), min_size=1,
                       max_size=4),
              st.booleans()),
    min_size=1, max_size=15).map(lambda work: [*work[:-1], (work[-1][0], True)])
# (the last append commits, so the group has an offsets file to damage)


async def do_work(root: Path, segment_bytes: int, work: list[Append]) -> Model:
    model = Model()
    serial = 0
    async with EmbeddedLog(root, fsync=False, segment_bytes=segment_bytes) as log:
        await log.create_topics([TopicSpec("events", 2), TopicSpec("commands", 1)])
        for records, commit in work:
            out = []
            for index, size in records:
                topic, partition = PARTITIONS[index]
                value = (b"v%d-" % serial).ljust(size, b"x")
                serial += 1
                out.append(OutRecord(topic, value, key=b"exec-%d" % (serial % 7),
                                     partition=partition))
                model.values[(topic, partition)].append(value)
            offsets = {}
            if commit:  # the group has read everything there is
                offsets = {key: len(values) for key, values in model.values.items()}
                model.offsets.update(offsets)
            await log.append(out, commit_group=GROUP if offsets else None,
                             commit_offsets=offsets or None)
    record_frames(root, model)
    return model


def record_frames(root: Path, model: Model) -> None:
    """Note which segment and bytes each record's frame is in (read while intact)."""
    model.frames.clear()
    for key in PARTITIONS:
        offset = 0
        for path in sorted((root / key[0] / str(key[1])).glob("*.log")):
            starts = frame_starts(path)
            ends = [*starts[1:], path.stat().st_size][: len(starts)]
            model.frames[path] = [(key, offset + i, start, end)
                                  for i, (start, end) in enumerate(zip(starts, ends, strict=True))]
            offset += len(starts)


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))


def inject(data: st.DataObject, root: Path, kind: str | None = None,
           fault: str | None = None) -> tuple[Path, str, int]:
    """Damage one file (of ``kind``, by ``fault``, or any); return it, the fault and
    where (byte)."""
    files = [p for p in data_files(root) if kind is None or _kind(p) == kind]
    if fault in ("flip", "truncate"):
        files = [p for p in files if p.stat().st_size > 0]
    assume(files)
    target = data.draw(st.sampled_from(files), label="file")
    size = target.stat().st_size
    if fault is None:
        fault = data.draw(st.sampled_from(FAULTS if size else ["delete", "append"]),
                          label="fault")
    where = 0
    if fault == "flip":
        where = data.draw(st.integers(0, size - 1), label="byte")
        mask = data.draw(st.integers(1, 255), label="mask")
        with target.open("r+b") as file:
            file.seek(where)
            byte = file.read(1)[0]
            file.seek(where)
            file.write(bytes([byte ^ mask]))
    elif fault == "truncate":
        where = data.draw(st.integers(0, size - 1), label="size")
        with target.open("r+b") as file:
            file.truncate(where)
    elif fault == "delete":
        target.unlink()
    else:
        garbage = data.draw(st.binary(min_size=1, max_size=50), label="garbage")
        with target.open("ab") as file:
            file.write(garbage)
        where = size
    COUNTS[f"fault {fault} {_kind(target)}"] += 1
    return target, fault, where


def _kind(path: Path) -> str:
    if path.name.endswith(".log") and path.name != "_journal.log":
        return "segment"
    return {"_journal.log": "journal", "topic.json": "topic.json", "LOCK": "lock"}.get(
        path.name, "offsets" if path.parent.name == "_offsets" else path.name)


def lost_records(model: Model, target: Path, fault: str, where: int) -> set[tuple[Key, int]]:
    """The records whose frames the fault touched (all others are intact)."""
    frames = model.frames.get(target, [])
    if fault == "delete":
        return {(key, offset) for key, offset, _, _ in frames}
    if fault == "flip":
        return {(key, offset) for key, offset, start, end in frames if start <= where < end}
    if fault == "truncate":
        return {(key, offset) for key, offset, _, end in frames if end > where}
    return set()


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in data_files(root) if p.name != "LOCK"}


def segment_bytes_total(root: Path) -> int:
    """Bytes in segments and in their side files (not the journal's or offsets'), less
    the placeholders ``repair`` wrote for lost records."""
    return sum(p.stat().st_size for p in data_files(root)
               if p.parent.name.isdigit() and ".log" in p.name) - placeholder_bytes(root)


async def read_all(log: EmbeddedLog) -> dict[Key, list[bytes]]:
    return {(t, p): [r.value for r in await log.read(t, p, 0, 100_000)] for t, p in PARTITIONS}


async def read_after_repair(log: EmbeddedLog) -> dict[Key, list[bytes | None]]:
    """Each partition's values by offset, None for a lost record's placeholder (offsets
    never move: each intact record must be at its own)."""
    found: dict[Key, list[bytes | None]] = {}
    for t, p in PARTITIONS:
        records = await log.read(t, p, 0, 100_000)
        assert [r.offset for r in records] == list(range(len(records)))
        found[(t, p)] = [None if r.headers == LOST else r.value for r in records]
    return found


def expected_after_repair(model: Model,
                          lost: set[tuple[Key, int]]) -> dict[Key, list[bytes | None]]:
    return {key: [None if (key, o) in lost else value for o, value in enumerate(values)]
            for key, values in model.values.items()}


# --- the properties ---------------------------------------------------------------------


KINDS = ["segment", "journal", "offsets", "topic.json", "lock"]
EXAMPLES = {"segment": 50, "journal": 20, "offsets": 10, "topic.json": 10, "lock": 3}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", KINDS)
def test_damage_to_any_file_loses_no_committed_record(kind: str, fault: str) -> None:
    @settings(FAST, max_examples=EXAMPLES[kind])
    @given(segment_bytes=st.integers(100, 1500), work=appends, data=st.data())
    def prop(segment_bytes: int, work: list[Append], data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_check_one_fault(Path(tmp), segment_bytes, work, data, kind, fault))

    prop()


async def _check_one_fault(root: Path, segment_bytes: int, work: list[Append],
                           data: st.DataObject, kind: str, fault: str) -> None:
    model = await do_work(root, segment_bytes, work)
    target, fault, where = inject(data, root, kind, fault)
    COUNTS["log cases"] += 1
    before = snapshot(root)

    # opening shows every committed record, or refuses naming the file
    try:
        async with EmbeddedLog(root, fsync=False) as log:
            assert await read_all(log) == model.values, "a committed record is not readable"
            for key, end in ((k, len(v)) for k, v in model.values.items()):
                committed = await log.committed(GROUP, *key)
                # the group's position is kept, or (its offsets file gone) starts over
                assert committed in (model.offsets.get(key), None)
                assert committed is None or committed <= end
        COUNTS["opened with every record"] += 1
        refused = False
    except LogError as exc:
        message = str(exc)
        assert str(target) in message or str(target.parent) in message, message
        assert snapshot(root) == before, "a refused open changed the directory"
        COUNTS["refused naming the file"] += 1
        refused = True

    # repair keeps every intact record; the bytes it took out are next to the segments
    total = segment_bytes_total(root)
    report = repair(root, fsync=False)
    assert segment_bytes_total(root) == total
    lost = lost_records(model, target, fault, where) if refused else set()
    COUNTS["records destroyed by the fault itself"] += len(lost)
    async with EmbeddedLog(root, fsync=False) as log:
        # every intact record at its own offset, a placeholder at each lost one's
        assert await read_after_repair(log) == expected_after_repair(model, lost)
        assert report.records_kept == sum(len(v) for v in model.values.values()) - len(lost)
        assert report.records_lost == len(lost)
        COUNTS["intact records found after repair"] += report.records_kept
        # and the group resumes exactly after what it had read: nothing is skipped
        for key in PARTITIONS:
            committed = await log.committed(GROUP, *key)
            if key in model.offsets and committed is not None:
                assert committed == model.offsets[key]
            [position] = await log.append([OutRecord(key[0], b"after", partition=key[1])])
            unread = await log.read(key[0], key[1], committed or 0, 100_000)
            assert unread
            assert unread[-1].offset == position.offset
            assert unread[-1].value == b"after"
    COUNTS["repaired and nothing skipped"] += 1


@pytest.mark.parametrize("kind", ["segment", "journal", "offsets", "topic.json"])
def test_damage_under_an_engine_never_loses_a_completed_execution(kind: str) -> None:
    @ENGINE
    @given(runs=st.integers(1, 4), data=st.data())
    def prop(runs: int, data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_check_engine_fault(Path(tmp), runs, data, kind))

    prop()


async def _check_engine_fault(root: Path, runs: int, data: st.DataObject, kind: str) -> None:
    async with engine_on(root, partitions=2) as engine:
        ids = []
        for n in range(runs):
            created = await engine.create("tiny", {"n": n})
            ids.append((await engine.wait(created.execution.id, timeout_s=20)).id)
    target, fault, _ = inject(data, root, kind)
    COUNTS["engine cases"] += 1
    damaged_events = (int(target.parent.name)
                      if target.parent.parent.name == EVENTS and _kind(target) == "segment"
                      else None)
    try:
        async with engine_on(root, partitions=2) as engine:
            for execution_id in ids:
                done = await engine.wait(execution_id, timeout_s=20)
                assert done.status == ExecutionStatus.COMPLETED
        COUNTS["engine opened with every execution"] += 1
    except LogError as exc:
        refusal = str(exc)
        COUNTS["engine refused naming the file"] += 1
        assert str(target) in refusal or str(target.parent) in refusal, refusal
        repair(root, fsync=False)
    # after repair: executions outside the damaged events partition are as they were,
    # and a new execution (its commands appended after the repair) runs to the end
    async with engine_on(root, partitions=2) as engine:
        for execution_id in ids:
            if partition_for(execution_id.encode(), 2) == damaged_events:
                continue
            try:
                done = await engine.wait(execution_id, timeout_s=20)
            except WaitTimeout as exc:
                raise AssertionError(f"{execution_id} lost after {fault} of {target}") from exc
            assert done.status == ExecutionStatus.COMPLETED
        created = await engine.create("tiny", {"n": "after"})
        done = await engine.wait(created.execution.id, timeout_s=20)
        assert done.status == ExecutionStatus.COMPLETED
    COUNTS["engine cases where a new execution completed"] += 1


# --- after a crash: a journal with appends after its checkpoint ----------------------------


async def crash_after(root: Path, segment_bytes: int, work: list[Append], model: Model) -> None:
    """Append ``work`` after a clean reopen, then stop as a killed process would: no
    checkpoint, so the journal keeps an entry per append after its checkpoint."""
    log = EmbeddedLog(root, fsync=False, segment_bytes=segment_bytes)
    await log.start()
    serial = 10_000
    for records, commit in work:
        out = []
        for index, size in records:
            topic, partition = PARTITIONS[index]
            value = (b"c%d-" % serial).ljust(size, b"y")
            serial += 1
            out.append(OutRecord(topic, value, partition=partition))
            model.values[(topic, partition)].append(value)
        offsets = {}
        if commit:  # offsets carried by an append entry, after the checkpoint
            offsets = {key: len(values) for key, values in model.values.items()}
            model.offsets.update(offsets)
        await log.append(out, commit_group=GROUP if offsets else None,
                         commit_offsets=offsets or None)
    log._failure = RuntimeError("simulated crash")  # close() then skips its checkpoint
    await log.close()


CRASH_CASES = [("segment", fault) for fault in FAULTS] + [
    ("journal", fault) for fault in FAULTS] + [("offsets", "flip"), ("offsets", "delete")]


@pytest.mark.parametrize(("kind", "fault"), CRASH_CASES)
def test_damage_after_a_crash_loses_no_committed_record(kind: str, fault: str) -> None:
    @settings(FAST, max_examples=15)
    @given(segment_bytes=st.integers(100, 1500), work=appends, after=appends,
           data=st.data())
    def prop(segment_bytes: int, work: list[Append], after: list[Append],
             data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_check_crash_fault(Path(tmp), segment_bytes, work, after, data,
                                           kind, fault))

    prop()


async def _check_crash_fault(root: Path, segment_bytes: int, work: list[Append],
                             after: list[Append], data: st.DataObject, kind: str,
                             fault: str) -> None:
    model = await do_work(root, segment_bytes, work)
    await crash_after(root, segment_bytes, after, model)
    record_frames(root, model)  # every append was acknowledged: all are committed
    target, fault, where = inject(data, root, kind, fault)
    COUNTS["crash cases"] += 1
    total = segment_bytes_total(root)
    before = snapshot(root)
    try:
        async with EmbeddedLog(root, fsync=False) as log:
            found = await read_all(log)
            offsets = {key: await log.committed(GROUP, *key) for key in PARTITIONS}
        refused = False
    except LogError as exc:
        refusal = str(exc)
        assert str(target) in refusal or str(target.parent) in refusal, refusal
        assert snapshot(root) == before, "a refused open changed the directory"
        refused = True
    # no byte of a segment was discarded: what left a segment is in a side file
    assert segment_bytes_total(root) == total
    if not refused:
        if kind == "journal" and fault == "truncate":
            # A journal cut short ends in a torn entry: the appends it no longer names
            # look uncommitted and go to .torn-* side files (checked above); what is
            # there is what was appended, in order.
            COUNTS["crash cases opened after the journal was cut"] += 1
            for key, values in found.items():
                assert values == model.values[key][: len(values)]
            return
        COUNTS["crash cases opened with every committed record"] += 1
        assert found == model.values, "a committed record was taken for a torn tail"
        for key in PARTITIONS:  # the group's offsets are kept, or (file gone) start over
            if kind == "journal":
                # without a trusted journal the offsets files (as of the checkpoint)
                # decide: a group may read records again, never skip one
                offset = offsets[key]
                assert offset is None or offset <= model.offsets[key]
            else:
                assert offsets[key] in (model.offsets.get(key), None)
        return
    COUNTS["crash cases refused naming the file, then repaired"] += 1
    report = repair(root, fsync=False)
    assert segment_bytes_total(root) == total
    lost = lost_records(model, target, fault, where)
    async with EmbeddedLog(root, fsync=False) as log:
        assert await read_after_repair(log) == expected_after_repair(model, lost)
        assert report.records_lost == len(lost)
        for key in PARTITIONS:
            committed = await log.committed(GROUP, *key)
            assert committed in (model.offsets.get(key), None)
