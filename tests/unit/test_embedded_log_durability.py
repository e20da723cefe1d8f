"""The embedded log on disk: what survives a reopen, a crash, a torn or corrupt tail,
and who may open a data directory."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

import flowmonkey.log._embedded_store as store_module
import flowmonkey.log.embedded as embedded_module
from flowmonkey.errors import LogError
from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
from flowmonkey.log._embedded_repair import LOST_RECORD_HEADER
from tests.faults.support import frame_starts, placeholder_bytes

REPO = Path(__file__).resolve().parents[2]
TOPIC = "events"
COMMANDS = "commands"


def segments(root: Path, partition: int = 0, topic: str = TOPIC) -> list[Path]:
    return sorted((root / topic / str(partition)).glob("*.log"))


async def values(log: EmbeddedLog, partition: int = 0, topic: str = TOPIC) -> list[bytes]:
    return [record.value for record in await log.read(topic, partition, 0)]


async def append_one_per_call(root: Path, count: int, partitions: int = 1) -> None:
    """``count`` appends of one event each, committing past one command each (the
    command is appended too: a committed offset is never past its partition's end)."""
    async with EmbeddedLog(root) as log:
        await log.create_topics([TopicSpec(TOPIC, partitions), TopicSpec(COMMANDS, 1)])
        for i in range(count):
            await log.append(
                [OutRecord(TOPIC, b"value-%d" % i, partition=0),
                 OutRecord(COMMANDS, b"command-%d" % i, partition=0)],
                commit_group="processor",
                commit_offsets={(COMMANDS, 0): i + 1},
            )


async def crash_after_appending(root: Path, count: int) -> None:
    """Like :func:`append_one_per_call`, in a process that dies instead of closing."""
    await run_then_crash(
        root,
        f"""
        await log.create_topics([TopicSpec("{TOPIC}", 1), TopicSpec("{COMMANDS}", 1)])
        for i in range({count}):
            await log.append(
                [OutRecord("{TOPIC}", b"value-%d" % i, partition=0),
                 OutRecord("{COMMANDS}", b"command-%d" % i, partition=0)],
                commit_group="processor",
                commit_offsets={{("{COMMANDS}", 0): i + 1}},
            )
        """,
    )


async def run_then_crash(root: Path, body: str) -> None:
    """Run ``body`` against an open log in a child process that then dies without
    closing it, as a crashed process would (no checkpoint, no unlock)."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
        import flowmonkey.log.embedded as embedded

        async def main(log):
        {body}

        async def run():
            log = EmbeddedLog(sys.argv[1])
            await log.start()
            await main(log)
            os._exit(0)

        asyncio.run(run())
        """
    ).format(body=textwrap.indent(textwrap.dedent(body), "    "))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(root), env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert await asyncio.wait_for(child.wait(), 60) == 0


# --- reopening ------------------------------------------------------------------------


async def test_reopening_sees_every_topic_record_and_committed_offset(tmp_path: Path) -> None:
    # given a log with records in two partitions and offsets of two groups
    async with EmbeddedLog(tmp_path) as log:
        await log.create_topics([TopicSpec(TOPIC, 2, compacted=True), TopicSpec(COMMANDS, 1)])
        await log.append([OutRecord(COMMANDS, b"c%d" % i, partition=0) for i in range(4)])
        await log.append(
            [
                OutRecord(TOPIC, b"a", key=b"k", headers=(("h", b"1"),), partition=0),
                OutRecord(TOPIC, b"b", partition=1),
            ],
            commit_group="processor",
            commit_offsets={(COMMANDS, 0): 4},
        )
        await log.commit("projector", {(TOPIC, 0): 1, (TOPIC, 1): 1})
        written = await log.read(TOPIC, 0, 0)
    # when it is opened again
    async with EmbeddedLog(tmp_path) as log:
        # then everything is there as it was
        assert await log.partitions_for(TOPIC) == 2
        assert await log.read(TOPIC, 0, 0) == written
        assert await values(log, 1) == [b"b"]
        assert await log.committed("processor", COMMANDS, 0) == 4
        assert await log.committed("projector", TOPIC, 1) == 1
        # and appends continue after the last offset
        [position] = await log.append([OutRecord(TOPIC, b"c", partition=1)])
        assert position.offset == 1


async def test_committed_offsets_are_in_the_groups_file_after_close(tmp_path: Path) -> None:
    await append_one_per_call(tmp_path, 3)

    saved = json.loads((tmp_path / "_offsets" / "processor.json").read_text())

    assert saved["group"] == "processor"
    assert "crc32" in saved
    assert saved["offsets"] == {COMMANDS: {"0": 3}}


async def test_topic_metadata_is_kept_in_topic_json(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path) as log:
        await log.create_topics([TopicSpec("flows", 1, compacted=True, config={"a": "b"})])

    meta = json.loads((tmp_path / "flows" / "topic.json").read_text())

    assert meta.pop("crc32") > 0  # a changed partition count must not pass for valid
    assert meta == {"partitions": 1, "compacted": True, "config": {"a": "b"}}


async def test_segments_roll_at_the_size_limit_and_are_all_read_back(tmp_path: Path) -> None:
    # given a segment size that fits about three records
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        await log.append([OutRecord(TOPIC, b"x" * 20, partition=0) for _ in range(5)])
        for _ in range(5):
            await log.append([OutRecord(TOPIC, b"y" * 20, partition=0)])
    # then there are several segments, each named by the offset of its first record
    names = [path.name for path in segments(tmp_path)]
    assert len(names) > 2
    assert names[0] == f"{0:020d}.log"
    # and reopening reads all of them in order
    async with EmbeddedLog(tmp_path) as log:
        records = await log.read(TOPIC, 0, 0)
        assert [r.offset for r in records] == list(range(10))
        bases = [int(name[:20]) for name in names]
        assert all(records[base].offset == base for base in bases)


async def test_a_segment_named_past_its_first_record_is_read_by_its_frames(
    tmp_path: Path,
) -> None:
    # given the state an older version left after a kill during a segment roll: the
    # last segment is named after a later offset than the record it holds
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        for i in range(7):
            await log.append([OutRecord(TOPIC, b"v%d" % i * 10, partition=0)])
    last = segments(tmp_path)[-1]
    base = int(last.name[:20])
    last.rename(last.with_name(f"{base + 3:020d}.log"))
    # then the start trusts each frame's own offset, and appends go on after it
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        assert await values(log) == [b"v%d" % i * 10 for i in range(7)]
        await log.append([OutRecord(TOPIC, b"after", partition=0)])
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        assert await values(log) == [*(b"v%d" % i * 10 for i in range(7)), b"after"]
    assert all(int(p.name[:20]) <= 7 for p in segments(tmp_path))


async def test_an_empty_segment_named_past_the_end_is_removed(tmp_path: Path) -> None:
    # given an empty segment a roll created for records that never committed
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        for i in range(3):
            await log.append([OutRecord(TOPIC, b"v%d" % i, partition=0)])
    (segments(tmp_path)[-1].parent / f"{9:020d}.log").write_bytes(b"")
    # then the start removes it, and the next append is not written into it
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        await log.append([OutRecord(TOPIC, b"next", partition=0)])
    assert all(int(p.name[:20]) <= 3 for p in segments(tmp_path))
    async with EmbeddedLog(tmp_path, segment_bytes=150) as log:
        assert await values(log) == [b"v0", b"v1", b"v2", b"next"]


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


async def test_a_group_file_left_half_written_by_a_kill_does_not_stop_the_start(
    tmp_path: Path,
) -> None:
    # given a kill while a checkpoint was writing a group's offsets file
    await append_one_per_call(tmp_path, 2)
    (tmp_path / "_offsets" / "processor.json.tmp").write_bytes(b'{"gro')
    (tmp_path / TOPIC / "topic.json.tmp").write_bytes(b"")
    # then the start removes the leftovers and goes on
    async with EmbeddedLog(tmp_path) as log:
        assert await log.committed("processor", COMMANDS, 0) == 2
    assert not leftovers(tmp_path)


async def test_concurrent_appends_get_distinct_offsets_and_all_survive(tmp_path: Path) -> None:
    async def producer(log: EmbeddedLog, n: int) -> list[int]:
        offsets = []
        for i in range(10):
            [position] = await log.append([OutRecord(TOPIC, b"%d-%d" % (n, i), partition=0)])
            offsets.append(position.offset)
        return offsets

    async with EmbeddedLog(tmp_path) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        results = await asyncio.gather(*(producer(log, n) for n in range(8)))

    assert sorted(o for offsets in results for o in offsets) == list(range(80))
    async with EmbeddedLog(tmp_path) as log:
        assert await log.end_offset(TOPIC, 0) == 80


async def test_without_fsync_the_log_still_reopens_with_everything(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        await log.append(
            [OutRecord(TOPIC, b"v", partition=0)], commit_group="g", commit_offsets={(TOPIC, 0): 1}
        )

    async with EmbeddedLog(tmp_path, fsync=False) as log:
        assert await values(log) == [b"v"]
        assert await log.committed("g", TOPIC, 0) == 1


# --- crashes --------------------------------------------------------------------------


async def test_a_crash_loses_nothing_that_was_appended(tmp_path: Path) -> None:
    # given a process that appends and commits, then dies without closing the log
    await run_then_crash(
        tmp_path,
        """
        await log.create_topics([TopicSpec("events", 2), TopicSpec("commands", 1)])
        for i in range(5):
            await log.append(
                [OutRecord("events", b"%d" % i, partition=i % 2),
                 OutRecord("commands", b"c", partition=0)],
                commit_group="processor",
                commit_offsets={("commands", 0): i + 1},
            )
        await log.commit("projector", {("events", 0): 2})
        """,
    )
    # when the directory is opened again
    async with EmbeddedLog(tmp_path) as log:
        # then every acknowledged record and offset is there
        assert await values(log, 0) == [b"0", b"2", b"4"]
        assert await values(log, 1) == [b"1", b"3"]
        assert await log.committed("processor", COMMANDS, 0) == 5
        assert await log.committed("projector", TOPIC, 0) == 2


async def test_a_crash_after_the_journal_was_compacted_loses_nothing(tmp_path: Path) -> None:
    # given a process whose journal is compacted many times before it dies
    await run_then_crash(
        tmp_path,
        """
        embedded.JOURNAL_COMPACT_BYTES = 300
        await log.create_topics([TopicSpec("events", 1), TopicSpec("commands", 1)])
        async def step(i):
            await log.append(
                [OutRecord("events", b"%d" % i, partition=0),
                 OutRecord("commands", b"c", partition=0)],
                commit_group="processor",
                commit_offsets={("commands", 0): i + 1},
            )
        for start in range(0, 40, 8):
            await asyncio.gather(*(step(i) for i in range(start, start + 8)))
        """,
    )
    # then the journal is small, and reopening finds every record and the last offset
    assert (tmp_path / "_journal.log").stat().st_size < 2000
    async with EmbeddedLog(tmp_path) as log:
        assert await log.end_offset(TOPIC, 0) == 40
        assert await log.committed("processor", COMMANDS, 0) == 40


async def test_an_append_its_journal_entry_names_is_committed_in_every_partition(
    tmp_path: Path,
) -> None:
    # given a crashed process whose last append wrote to two partitions and committed
    await run_then_crash(
        tmp_path,
        """
        await log.create_topics([TopicSpec("events", 2), TopicSpec("commands", 1)])
        await log.append([OutRecord("events", b"first", partition=0),
                          OutRecord("commands", b"c", partition=0)],
                         commit_group="processor", commit_offsets={("commands", 0): 1})
        await log.append(
            [OutRecord("events", b"second-0", partition=0),
             OutRecord("events", b"second-1", partition=1),
             OutRecord("commands", b"c", partition=0)],
            commit_group="processor",
            commit_offsets={("commands", 0): 2},
        )
        """,
    )
    # and partition 1 lost the tail of its record afterwards (its journal entry is whole,
    # so the append was committed)
    [segment] = segments(tmp_path, 1)
    os.truncate(segment, segment.stat().st_size - 3)
    # when the directory is opened again, it refuses, naming the file: a committed
    # record is damaged, and rolling the append back would cut the other partitions'
    with pytest.raises(LogError) as refused:
        await EmbeddedLog(tmp_path).start()
    assert refused.value.code == "LOG_DAMAGED"
    assert str(segment) in str(refused.value)
    assert "events/1" in str(refused.value)
    # and after repair the rest of that append is there, with its offsets
    from flowmonkey.log._embedded_repair import repair

    repair(tmp_path)
    async with EmbeddedLog(tmp_path) as log:
        assert await values(log, 0) == [b"first", b"second-0"]
        assert await values(log, 1) == [b""]  # the lost record's placeholder
        assert await log.committed("processor", COMMANDS, 0) == 2
        [position] = await log.append([OutRecord(TOPIC, b"again", partition=0)])
        assert position.offset == 2


async def test_records_whose_journal_entry_is_torn_are_rolled_back(tmp_path: Path) -> None:
    # given a crashed process whose last journal entry did not reach disk whole
    await run_then_crash(
        tmp_path,
        """
        await log.create_topics([TopicSpec("events", 1), TopicSpec("commands", 1)])
        for i in range(3):
            await log.append([OutRecord("events", b"%d" % i, partition=0),
                              OutRecord("commands", b"c", partition=0)],
                             commit_group="processor", commit_offsets={("commands", 0): i + 1})
        """,
    )
    journal = tmp_path / "_journal.log"
    os.truncate(journal, journal.stat().st_size - 1)
    # when the directory is opened again, the last append is gone: records and offsets
    async with EmbeddedLog(tmp_path) as log:
        assert await values(log) == [b"0", b"1"]
        assert await log.committed("processor", COMMANDS, 0) == 2


# --- torn and corrupt tails -----------------------------------------------------------


def side_files(root: Path, kind: str) -> list[Path]:
    return sorted(root.rglob(f"*.{kind}-*"))


async def test_a_torn_last_record_is_moved_aside_and_appends_continue_after_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given a process that died while writing the fifth of five records (its journal
    # entry, written after the record, did not reach disk either)
    await crash_after_appending(tmp_path, 5)
    [segment] = segments(tmp_path)
    size = segment.stat().st_size
    os.truncate(segment, size - 3)
    journal = tmp_path / "_journal.log"
    os.truncate(journal, journal.stat().st_size - 3)
    torn = segment.read_bytes()[size // 5 * 4 :]  # five records of the same size
    # when the directory is opened again
    with caplog.at_level(logging.WARNING, logger="flowmonkey.log.embedded"):
        async with EmbeddedLog(tmp_path) as log:
            # then the first four records and their offsets are intact
            # and the next append takes offset 4
            assert await values(log) == [b"value-%d" % i for i in range(4)]
            assert await log.committed("processor", COMMANDS, 0) == 4
            [position] = await log.append([OutRecord(TOPIC, b"new", partition=0)])
            assert position.offset == 4
    # and the torn bytes are kept next to the segment, and the warning says where
    [aside] = side_files(tmp_path / TOPIC, "torn")
    assert aside.parent == segment.parent
    assert aside.read_bytes() == torn
    assert f"moved {len(torn)} bytes" in caplog.text
    assert str(aside) in caplog.text
    # and the new record is there after another reopen
    async with EmbeddedLog(tmp_path) as log:
        assert await values(log) == [*(b"value-%d" % i for i in range(4)), b"new"]


async def test_garbage_after_the_last_record_is_moved_aside_and_no_record_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await append_one_per_call(tmp_path, 3)
    [segment] = segments(tmp_path)
    size = segment.stat().st_size
    garbage = b"\x00\x01garbage that is not a frame"
    with segment.open("ab") as file:
        file.write(garbage)

    with caplog.at_level(logging.WARNING, logger="flowmonkey.log.embedded"):
        async with EmbeddedLog(tmp_path) as log:
            assert await values(log) == [b"value-0", b"value-1", b"value-2"]
            [position] = await log.append([OutRecord(TOPIC, b"new", partition=0)])
            assert position.offset == 3

    assert "moved 29 bytes" in caplog.text
    assert segment.stat().st_size > size
    [aside] = side_files(tmp_path, "torn")
    assert aside.read_bytes() == garbage


async def test_a_last_record_failing_its_crc_before_its_commit_is_moved_aside(
    tmp_path: Path,
) -> None:
    # given a process that died while writing the third record, which came out garbled,
    # before its journal entry reached disk
    await crash_after_appending(tmp_path, 3)
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    journal = tmp_path / "_journal.log"
    os.truncate(journal, journal.stat().st_size - 1)
    # when the directory is opened again, only the intact records remain
    async with EmbeddedLog(tmp_path) as log:
        assert await values(log) == [b"value-0", b"value-1"]
        assert await log.end_offset(TOPIC, 0) == 2
        assert await log.committed("processor", COMMANDS, 0) == 2
    # and the garbled record is kept aside, byte for byte
    [aside] = side_files(tmp_path / TOPIC, "torn")
    assert aside.read_bytes() == bytes(data[len(data) // 3 * 2 :])


async def test_a_committed_record_damaged_later_stops_the_open_and_repair_keeps_the_rest(
    tmp_path: Path,
) -> None:
    # given a log closed cleanly, whose last record was damaged afterwards
    await append_one_per_call(tmp_path, 3)
    [segment] = segments(tmp_path)
    os.truncate(segment, segment.stat().st_size - 1)
    size = segment.stat().st_size
    # when it is opened again, it refuses, naming the file, the offset and the repair
    with pytest.raises(LogError) as refused:
        await EmbeddedLog(tmp_path).start()
    message = str(refused.value)
    assert refused.value.code == "LOG_DAMAGED"
    assert str(segment) in message
    assert "events/0" in message
    assert "committed records 2..2" in message
    assert f"flowmonkey log repair --data-dir {tmp_path}" in message
    # and nothing was changed
    assert segment.stat().st_size == size
    # when it is repaired
    from flowmonkey.log._embedded_repair import repair

    report = repair(tmp_path)
    # then the intact records are kept and the damaged bytes are next to the segment
    [aside] = side_files(tmp_path / TOPIC, "damaged")
    placeholders = placeholder_bytes(segment)
    assert aside.stat().st_size + segment.stat().st_size - placeholders == size
    assert report.quarantined_bytes == aside.stat().st_size
    async with EmbeddedLog(tmp_path) as log:
        # and the lost record's offset holds a placeholder: no offset moved
        assert await values(log) == [b"value-0", b"value-1", b""]
        [lost] = await log.read(TOPIC, 0, 2, 1)
        assert lost.headers == ((LOST_RECORD_HEADER, b""),)
        [position] = await log.append([OutRecord(TOPIC, b"new", partition=0)])
        assert position.offset == 3


async def test_a_damaged_record_committed_after_the_checkpoint_stops_the_open(
    tmp_path: Path,
) -> None:
    # given appends committed by journal entries after the last checkpoint, and a
    # crash (the directory copied while the log is open: no close, no checkpoint)
    root, crash = tmp_path / "live", tmp_path / "crash"
    async with EmbeddedLog(root, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 2)])
        await log.append([OutRecord(TOPIC, b"a0", key=b"exec-a", partition=0)])
        await log.append([OutRecord(TOPIC, b"a1-last-of-p0", key=b"exec-a", partition=0)])
        await log.append([OutRecord(TOPIC, b"b0", key=b"exec-b", partition=1)],
                         commit_group="g", commit_offsets={(TOPIC, 1): 1})
        await log.append([OutRecord(TOPIC, b"b1", key=b"exec-b", partition=1)])
        shutil.copytree(root, crash, ignore=shutil.ignore_patterns("LOCK"))
    # and a flipped byte in the last (committed) record of events/0
    [segment] = segments(crash, 0)
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    before = {p: p.read_bytes() for p in crash.rglob("*")
              if p.is_file() and p.name != "LOCK"}
    # when it is opened, it refuses, naming the file, the offset, the partition and
    # the execution, and changes nothing (no committed record is taken for a torn tail)
    with pytest.raises(LogError) as refused:
        await EmbeddedLog(crash, fsync=False).start()
    message = str(refused.value)
    assert refused.value.code == "LOG_DAMAGED"
    assert str(segment) in message
    assert "events/0" in message
    assert "offset 1" in message
    assert "exec-a" in message
    assert {p: p.read_bytes() for p in crash.rglob("*")
            if p.is_file() and p.name != "LOCK"} == before
    # and after repair the other partition and the group's offset are as committed
    from flowmonkey.log._embedded_repair import repair

    repair(crash, fsync=False)
    async with EmbeddedLog(crash, fsync=False) as log:
        assert await values(log, 0) == [b"a0", b""]
        assert await values(log, 1) == [b"b0", b"b1"]
        assert await log.committed("g", TOPIC, 1) == 1


async def test_repair_keeps_offsets_so_stored_positions_skip_nothing(tmp_path: Path) -> None:
    # given eight records, a group and an external reader (a projector's stored
    # offset) both at S = 5
    S = 5
    async with EmbeddedLog(tmp_path) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        for i in range(8):
            await log.append([OutRecord(TOPIC, b"value-%d" % i, key=b"exec-%d" % i,
                                        partition=0)])
        await log.commit("reader", {(TOPIC, 0): S})
        before = [(r.offset, r.value) for r in await log.read(TOPIC, 0, S)]
    stored_position = S
    # and damage across records 1 and 2 (one damaged byte range: how many records
    # it held is not known from its bytes)
    [segment] = segments(tmp_path)
    starts = frame_starts(segment)
    data = bytearray(segment.read_bytes())
    for i in range(starts[1] + 10, starts[2] + 10):
        data[i] = 0
    segment.write_bytes(bytes(data))
    # when it is repaired
    from flowmonkey.log._embedded_repair import repair

    report = repair(tmp_path)
    assert report.records_lost == 2
    async with EmbeddedLog(tmp_path) as log:
        # then the group and the stored position still name the same records
        assert await log.committed("reader", TOPIC, 0) == S
        for position in (S, stored_position):
            after = [(r.offset, r.value) for r in await log.read(TOPIC, 0, position)]
            assert after == before
        # and the lost offsets hold placeholders; every other record kept its offset
        records = await log.read(TOPIC, 0, 0)
        assert [r.offset for r in records] == list(range(8))
        assert [r.value for r in records] == [
            b"value-0", b"", b"", *(b"value-%d" % i for i in range(3, 8))]
        assert records[1].headers == records[2].headers == ((LOST_RECORD_HEADER, b""),)


# --- ownership ------------------------------------------------------------------------


async def test_a_second_log_on_an_open_directory_is_refused(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path):
        second = EmbeddedLog(tmp_path)
        with pytest.raises(LogError, match="already in use"):
            await second.start()


async def test_a_second_process_on_an_open_directory_is_refused(tmp_path: Path) -> None:
    # given another process that holds the directory open
    script = textwrap.dedent(
        """
        import asyncio, sys
        from flowmonkey.log import EmbeddedLog

        async def main():
            async with EmbeddedLog(sys.argv[1]):
                print("open", flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        asyncio.run(main())
        """
    )
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert owner.stdout is not None
    assert owner.stdin is not None
    try:
        assert await asyncio.wait_for(owner.stdout.readline(), 60) == b"open\n"
        # when this process tries to open it, it is refused with the owner's pid
        with pytest.raises(LogError, match=f"pid {owner.pid}"):
            await EmbeddedLog(tmp_path).start()
    finally:
        owner.stdin.write(b"done\n")
        await owner.stdin.drain()
        assert await asyncio.wait_for(owner.wait(), 60) == 0
    # then once the owner is gone, the directory opens
    async with EmbeddedLog(tmp_path) as log:
        assert log.path == tmp_path


async def test_a_closed_log_releases_its_directory(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path):
        pass

    async with EmbeddedLog(tmp_path) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])


# --- the write-ahead rule ---------------------------------------------------------------


def _fd_name(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


async def test_segments_are_synced_before_a_journal_entry_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal entry on disk implies its records are (recovery takes every entry as
    proof): every segment write is synced before the next journal write, in group
    commit rounds and in checkpoints written inside a round alike."""
    events: list[tuple[str, str]] = []  # ("write" | "sync", file), in call order
    write_all, datasync, fsync = store_module._write_all, store_module._datasync, os.fsync

    def traced_write(fd: int, data: bytes) -> None:
        events.append(("write", _fd_name(fd)))
        write_all(fd, data)

    def traced_sync(real: object) -> object:
        def sync(fd: int) -> None:
            events.append(("sync", _fd_name(fd)))
            real(fd)  # type: ignore[operator]
        return sync

    monkeypatch.setattr(store_module, "_write_all", traced_write)
    monkeypatch.setattr(store_module, "_datasync", traced_sync(datasync))
    monkeypatch.setattr(os, "fsync", traced_sync(fsync))
    monkeypatch.setattr(embedded_module, "JOURNAL_COMPACT_BYTES", 600)  # checkpoints too
    async with EmbeddedLog(tmp_path, partitions=2, segment_bytes=300) as log:
        await log.create_topics([TopicSpec(TOPIC, 2), TopicSpec(COMMANDS, 1)])

        async def one(i: int) -> None:
            await log.append([OutRecord(TOPIC, b"value-%d" % i), OutRecord(TOPIC, b"x-%d" % i)],
                             commit_group="processor", commit_offsets={(COMMANDS, 0): 0})

        for start in range(0, 60, 20):
            await asyncio.gather(*(one(i) for i in range(start, start + 20)))
    unsynced: set[str] = set()
    journal_writes = 0
    for kind, name in events:
        is_journal = Path(name).name.startswith("_journal.log")
        if kind == "write" and is_journal:
            journal_writes += 1
            assert not unsynced, f"a journal entry was written before {sorted(unsynced)} synced"
        elif kind == "write" and name.endswith(".log"):
            unsynced.add(name)
        elif kind == "sync":
            unsynced.discard(name)
    assert journal_writes > 3


async def test_a_crash_after_the_segments_synced_but_before_the_journal_entry_uncommits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The power-loss case the write-ahead rule leaves: records on disk, no entry. They
    were never acknowledged, so they are an uncommitted tail: moved aside, the group's
    offset not advanced, and the command is decided again."""
    async with EmbeddedLog(tmp_path) as log:
        await log.create_topics([TopicSpec(COMMANDS, 1), TopicSpec(TOPIC, 1)])
        for i in range(3):
            await log.append([OutRecord(COMMANDS, b"command%d" % i, partition=0)])
    log = EmbeddedLog(tmp_path)
    await log.start()
    for i in range(2):
        await log.append([OutRecord(TOPIC, b"event%d" % i, partition=0)],
                         commit_group="proc", commit_offsets={(COMMANDS, 0): i + 1})
    write_all = store_module._write_all

    def fail_on_journal(fd: int, data: bytes) -> None:
        if Path(_fd_name(fd)).name == "_journal.log":
            raise OSError("the power went out")
        write_all(fd, data)

    monkeypatch.setattr(store_module, "_write_all", fail_on_journal)
    with pytest.raises(LogError):
        await log.append([OutRecord(TOPIC, b"event2", partition=0)],
                         commit_group="proc", commit_offsets={(COMMANDS, 0): 3})
    monkeypatch.setattr(store_module, "_write_all", write_all)
    await log.close()
    assert b"event2" in (tmp_path / TOPIC / "0" / f"{0:020d}.log").read_bytes()  # on disk
    async with EmbeddedLog(tmp_path) as log:  # the start does not refuse
        assert await values(log) == [b"event0", b"event1"]
        assert await log.committed("proc", COMMANDS, 0) == 2
        assert [p.read_bytes().count(b"event2") for p in side_files(tmp_path, "torn")] == [1]
        # the command is decided again
        await log.append([OutRecord(TOPIC, b"event2-again", partition=0)],
                         commit_group="proc", commit_offsets={(COMMANDS, 0): 3})
    async with EmbeddedLog(tmp_path) as log:
        assert await values(log) == [b"event0", b"event1", b"event2-again"]
        assert await log.committed("proc", COMMANDS, 0) == 3

