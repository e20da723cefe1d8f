"""Issue 10, findings 1-3: the exact scenarios reported, through an engine on a
durable embedded log. Each fails on the code before the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowmonkey.errors import LogError, WaitTimeout
from flowmonkey.log import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from tests.faults.support import (
    COMMANDS,
    EVENTS,
    engine_on,
    frame_starts,
    placeholder_bytes,
    segment_files,
)

RUNS = 4


def segment_sizes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in root.rglob("*.log") if p.name != "_journal.log"}


def side_files(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


async def run_executions(data_dir: Path, count: int = RUNS) -> list[str]:
    """Run ``count`` executions of the tiny flow to completion, then stop cleanly."""
    async with engine_on(data_dir) as engine:
        ids = []
        for n in range(count):
            created = await engine.create("tiny", {"n": n})
            done = await engine.wait(created.execution.id, timeout_s=20)
            assert done.status == ExecutionStatus.COMPLETED
            ids.append(done.id)
        return ids


async def statuses(data_dir: Path, ids: list[str]) -> dict[str, ExecutionStatus | None]:
    """Each execution's status once the engine has caught up with the log (None: it
    is not there)."""
    async with engine_on(data_dir) as engine:
        found: dict[str, ExecutionStatus | None] = {}
        for execution_id in ids:
            try:
                found[execution_id] = (await engine.wait(execution_id, timeout_s=10)).status
            except WaitTimeout:
                found[execution_id] = None
        return found


@pytest.mark.parametrize("damage", ["flip byte 40", "truncate to 20 bytes", "truncate to 0"])
async def test_finding_1_a_damaged_journal_loses_no_execution(
        tmp_path: Path, damage: str) -> None:
    # given completed executions
    ids = await run_executions(tmp_path)
    sizes = segment_sizes(tmp_path)
    # when the journal is damaged, as in the issue
    journal = tmp_path / "_journal.log"
    journal_size = 20 if "20" in damage else journal.stat().st_size
    if damage == "flip byte 40":
        with journal.open("r+b") as file:  # printf '\xff' | dd ... seek=40 conv=notrunc
            file.seek(40)
            file.write(b"\xff")
    else:
        os.truncate(journal, 20 if "20" in damage else 0)
    # then the next start keeps every segment and every execution is still completed
    assert await statuses(tmp_path, ids) == dict.fromkeys(ids, ExecutionStatus.COMPLETED)
    for path, size in sizes.items():
        assert path.stat().st_size >= size, f"{path} was cut"
    # and the damaged journal is kept aside, never just overwritten
    [kept] = side_files(tmp_path, "_journal.log.damaged-*")
    assert kept.stat().st_size == (0 if damage == "truncate to 0" else journal_size)


async def test_finding_2_a_flipped_byte_in_a_committed_segment_stops_the_start(
        tmp_path: Path) -> None:
    # given completed executions, all in one partition
    ids = await run_executions(tmp_path)
    [segment] = segment_files(tmp_path, EVENTS)
    starts = frame_starts(segment)
    size = segment.stat().st_size
    # when one byte in the middle of the segment is flipped
    middle = starts[len(starts) // 2] + 20
    with segment.open("r+b") as file:
        file.seek(middle)
        byte = file.read(1)
        file.seek(middle)
        file.write(bytes([byte[0] ^ 0x01]))
    # then the engine refuses to start, naming the file, the byte, the partition, the
    # executions after it and the repair command
    with pytest.raises(LogError) as refused:
        await engine_on(tmp_path).start()
    message = str(refused.value)
    assert refused.value.code == "LOG_DAMAGED"
    assert str(segment) in message
    assert f"bytes {starts[len(starts) // 2]}.." in message
    assert f"{EVENTS}/0" in message
    assert ids[-1] in message  # the last execution's events follow the damage
    assert f"flowmonkey log repair --data-dir {tmp_path}" in message
    # and nothing was cut
    assert segment.stat().st_size == size
    from flowmonkey.log._embedded_repair import repair

    # when it is repaired, the damaged bytes are next to the segment and the rest kept
    report = repair(tmp_path)
    [aside] = side_files(segment.parent, "*.damaged-*")
    assert aside.stat().st_size + segment.stat().st_size - placeholder_bytes(segment) == size
    assert report.records_kept > 0
    # and the last execution, whose events are all after the damage, is still completed
    assert (await statuses(tmp_path, ids[-1:]))[ids[-1]] == ExecutionStatus.COMPLETED


async def test_finding_3_commands_lost_from_a_partition_are_never_silently_skipped(
        tmp_path: Path) -> None:
    # given completed executions; the processor's group has read every command
    await run_executions(tmp_path)
    [segment] = segment_files(tmp_path, COMMANDS)
    starts = frame_starts(segment)
    group = "flowmonkey-processor"  # the engine's default processor group
    async with EmbeddedLog(tmp_path, partitions=1) as log:
        assert await log.committed(group, COMMANDS, 0) == len(starts)
    # when the commands partition loses its last records (cut at a frame boundary)
    os.truncate(segment, starts[-3])
    # then starting refuses: the group's offset is past the partition's new end
    with pytest.raises(LogError) as refused:
        await engine_on(tmp_path).start()
    message = str(refused.value)
    assert f'group "{group}" has committed offset {len(starts)} on {COMMANDS}/0' in message
    assert "past the partition's end" in message
    from flowmonkey.log._embedded_repair import repair

    # when it is repaired, the lost commands' offsets hold placeholders, so the
    # group's offset is the partition's end again, and stays where it was
    report = repair(tmp_path)
    assert report.records_lost == 3
    async with EmbeddedLog(tmp_path, partitions=1) as log:
        assert await log.committed(group, COMMANDS, 0) == len(starts)
        assert await log.end_offset(COMMANDS, 0) == len(starts)
    # and a command appended after that is processed, not skipped
    async with engine_on(tmp_path) as engine:
        created = await engine.create("tiny", {"n": "after repair"})
        done = await engine.wait(created.execution.id, timeout_s=20)
        assert done.status == ExecutionStatus.COMPLETED
