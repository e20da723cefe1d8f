"""The durable embedded log keeps only its newest records' bytes in memory: older ones
are read back from the segments, the same records, checked against their checksums."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmonkey.errors import LogError
from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
from flowmonkey.log._disk_columns import MAX_DECODED, UNREAD_WINDOWS, DiskColumns
from flowmonkey.log.decoded import DecodedRecord, new_decoded_out_record

TOPIC = "events"
HEADERS = (("type", b"step.completed"), ("v", b"1"))


def _columns(log: EmbeddedLog, partition: int = 0) -> DiskColumns:
    columns = log._topics[TOPIC].parts[partition].records
    assert isinstance(columns, DiskColumns)
    return columns


def _record(i: int) -> OutRecord:
    return OutRecord(TOPIC, b"value-%05d-" % i + b"x" * (i % 7), key=b"key-%d" % (i % 3),
                     headers=HEADERS, partition=0)


async def test_old_records_come_back_from_disk_equal_across_segments(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path, segment_bytes=700, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        columns = _columns(log)
        columns._window = 100  # a few records' bytes
        for first in range(0, 60, 7):
            await log.append([_record(i) for i in range(first, min(60, first + 7))])
            await log.read(TOPIC, 0, first, 7)  # a reader keeping up
        assert columns.first_in_memory > 50  # the others are on disk only
        assert len(list((tmp_path / TOPIC / "0").glob("*.log"))) > 3
        whole = await log.read(TOPIC, 0, 0, 1000)
        pieces = [r for start in range(0, 60, 9) for r in await log.read(TOPIC, 0, start, 9)]
    expected = [_record(i) for i in range(60)]
    for records in (whole, pieces):
        assert [(r.offset, r.key, r.value, r.headers) for r in records] == \
            [(i, e.key, e.value, e.headers) for i, e in enumerate(expected)]
    async with EmbeddedLog(tmp_path, segment_bytes=700, fsync=False) as log:
        again = await log.read(TOPIC, 0, 0, 1000)
        assert again == whole  # reopened: placed from the scan, read back the same


async def test_a_reopened_log_keeps_only_the_newest_bytes(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        await log.append([OutRecord(TOPIC, b"v" * 1000, partition=0) for _ in range(3000)])
    async with EmbeddedLog(tmp_path, fsync=False) as log:
        columns = _columns(log)
        assert len(columns) == 3000
        assert columns._kept <= columns._window
        assert 0 < len(columns._values) < 3000
        assert len(await log.read(TOPIC, 0, 0, 5000)) == 3000


async def test_decoded_objects_stay_only_for_the_newest_records(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        total = MAX_DECODED * 3
        await log.append([new_decoded_out_record(TOPIC, b"%d" % i, None, HEADERS, 0, i)
                          for i in range(total)])
        columns = _columns(log)
        assert len(columns._decoded) <= MAX_DECODED
        records = await log.read(TOPIC, 0, 0, total)
        decoded = [r.decoded for r in records if isinstance(r, DecodedRecord)]
        assert decoded == list(range(total - len(decoded), total))  # the newest ones
        assert [r.value for r in records] == [b"%d" % i for i in range(total)]


async def test_a_record_changed_on_disk_is_refused_by_name(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        _columns(log)._window = 1
        await log.append([_record(i) for i in range(5)])
        segment = next((tmp_path / TOPIC / "0").glob("*.log"))
        raw = bytearray(segment.read_bytes())
        raw[raw.index(b"value-00001")] ^= 0xFF
        segment.write_bytes(bytes(raw))
        with pytest.raises(LogError, match=r"events/0 offset 1 .*checksum"):
            await log.read(TOPIC, 0, 0, 10)
        assert [r.offset for r in await log.read(TOPIC, 0, 2, 10)] == [2, 3, 4]


async def test_unread_records_keep_their_bytes_up_to_a_bound(tmp_path: Path) -> None:
    async with EmbeddedLog(tmp_path, fsync=False) as log:
        await log.create_topics([TopicSpec(TOPIC, 1)])
        columns = _columns(log)
        columns._window = 1000
        await log.append([OutRecord(TOPIC, b"v" * 100, partition=0) for _ in range(50)])
        assert columns.first_in_memory == 0  # 5,000 bytes nobody read yet: all kept
        await log.append([OutRecord(TOPIC, b"v" * 100, partition=0) for _ in range(50)])
        assert columns._kept <= UNREAD_WINDOWS * 1000  # past the bound for unread ones
        assert len(await log.read(TOPIC, 0, 0, 200)) == 100
        assert columns._kept <= 1000  # once read, only a window stays
