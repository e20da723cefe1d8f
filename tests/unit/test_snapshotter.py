"""When a processor's snapshots are taken and what they cover (the Snapshotter)."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from flowmonkey.kernel.state import ExecutionOptions, ExecutionState, PartitionState
from flowmonkey.log.base import OutRecord, Position
from flowmonkey.processors.snapshot_codec import decode_partition_state
from flowmonkey.processors.snapshots import Snapshot
from flowmonkey.processors.snapshots_memory import MemorySnapshotStore
from flowmonkey.processors.snapshotter import Snapshotter

EVENTS, COMMANDS = "p.events", "p.commands"


def _state(executions: int = 2) -> PartitionState:
    state = PartitionState()
    for i in range(executions):
        state.executions[f"e{i}"] = ExecutionState(
            id=f"e{i}", flow_id="f", flow_version="1", tenant_id=None, created_at=i,
            options=ExecutionOptions())
    state.note_command("c1")
    return state


def _append(first_offset: int, events: int, *, follow_ups: int = 0, gap: int = 0
            ) -> tuple[list[OutRecord], list[Position]]:
    """``events`` event records from ``first_offset`` (then ``follow_ups`` command
    records); ``gap`` offsets skipped before the first, as a transaction marker does."""
    records = [OutRecord(EVENTS, f"event-{first_offset + gap + i}".encode(), partition=0)
               for i in range(events)]
    positions = [Position(EVENTS, 0, first_offset + gap + i) for i in range(events)]
    records += [OutRecord(COMMANDS, b"cmd", partition=0) for _ in range(follow_ups)]
    positions += [Position(COMMANDS, 0, 900 + i) for i in range(follow_ups)]
    return records, positions


async def test_nothing_is_captured_before_enough_events_are_appended() -> None:
    snapshotter = Snapshotter(MemorySnapshotStore(), EVENTS, 0, every=10)
    snapshotter.recovered(0)
    assert snapshotter.capture(_state(), appending=9) is None
    records, positions = _append(0, 9)
    assert snapshotter.appended(None, records, positions) == 9
    assert snapshotter.capture(_state(), appending=0) is None


async def test_the_append_that_crosses_the_mark_is_snapshotted_after_its_last_event() -> None:
    # given 8 events appended, and an append of 3 events and 2 follow-up commands after
    # a transaction marker
    store = MemorySnapshotStore()
    snapshotter = Snapshotter(store, EVENTS, 0, every=10)
    snapshotter.recovered(0)
    snapshotter.appended(None, *_append(0, 8))
    records, positions = _append(8, 3, follow_ups=2, gap=1)
    state = _state()
    copy = snapshotter.capture(state, appending=len(records))
    assert copy is not None
    # when it is appended
    assert snapshotter.appended(copy, records, positions) == 12
    await snapshotter.wait_saved()
    # then the snapshot covers up to the last event (offset 11) and anchors on it
    snapshot = await store.load(EVENTS, 0)
    assert snapshot is not None
    assert snapshot.events_offset == 12
    decoded = decode_partition_state(snapshot.state, topic=EVENTS, partition=0,
                                     events_offset=12)
    assert decoded.anchor_crc == zlib.crc32(b"event-11")
    assert decoded.state == state
    assert snapshotter.snapshot_offset == 12
    assert snapshotter.saved == 1


async def test_the_copy_is_the_state_at_capture_not_after() -> None:
    store = MemorySnapshotStore()
    snapshotter = Snapshotter(store, EVENTS, 0, every=1)
    snapshotter.recovered(0)
    state = _state(2)
    records, positions = _append(0, 2)
    copy = snapshotter.capture(state, appending=2)
    # the loop decides on while the append is in flight
    state.executions["later"] = ExecutionState(id="later", flow_id="f", flow_version="1",
                                               tenant_id=None, created_at=9,
                                               options=ExecutionOptions())
    state.note_command("c-later")
    snapshotter.appended(copy, records, positions)
    await snapshotter.wait_saved()
    snapshot = await store.load(EVENTS, 0)
    assert snapshot is not None
    saved = decode_partition_state(snapshot.state, topic=EVENTS, partition=0,
                                   events_offset=2).state
    assert sorted(saved.executions) == ["e0", "e1"]
    assert list(saved.seen_commands) == ["c1"]


async def test_an_append_without_events_keeps_the_snapshot_due() -> None:
    snapshotter = Snapshotter(MemorySnapshotStore(), EVENTS, 0, every=5)
    snapshotter.recovered(6)  # replayed past the mark: due at the first append
    records, positions = _append(0, 0, follow_ups=2)
    copy = snapshotter.capture(_state(), appending=2)
    assert copy is not None
    assert snapshotter.appended(copy, records, positions) == 6
    assert snapshotter.saved == 0
    assert snapshotter.capture(_state(), appending=1) is not None


class _GatedStore(MemorySnapshotStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def save(self, snapshot: Snapshot) -> None:
        await self.gate.wait()
        await super().save(snapshot)


async def test_one_save_at_a_time() -> None:
    store = _GatedStore()
    snapshotter = Snapshotter(store, EVENTS, 0, every=2)
    snapshotter.recovered(0)
    copy = snapshotter.capture(_state(), appending=2)
    snapshotter.appended(copy, *_append(0, 2))
    await asyncio.sleep(0)
    # far past the next mark, but the first save has not finished
    snapshotter.appended(None, *_append(2, 10))
    assert snapshotter.capture(_state(), appending=1) is None
    store.gate.set()
    await snapshotter.wait_saved()
    assert snapshotter.capture(_state(), appending=1) is not None


class _BrokenStore(MemorySnapshotStore):
    async def save(self, snapshot: Snapshot) -> None:
        raise OSError("disk full")


async def test_a_failed_save_is_logged_and_retried_only_a_full_interval_later(
        caplog: pytest.LogCaptureFixture) -> None:
    snapshotter = Snapshotter(_BrokenStore(), EVENTS, 0, every=10)
    snapshotter.recovered(0)
    copy = snapshotter.capture(_state(), appending=10)
    snapshotter.appended(copy, *_append(0, 10))
    await snapshotter.wait_saved()
    assert "was not saved" in caplog.text
    assert snapshotter.snapshot_offset == 0
    assert snapshotter.capture(_state(), appending=9) is None
    assert snapshotter.capture(_state(), appending=10) is not None


async def test_a_partition_of_many_executions_waits_for_as_many_events() -> None:
    snapshotter = Snapshotter(MemorySnapshotStore(), EVENTS, 0, every=10)
    snapshotter.recovered(0)
    many = _state(executions=50)
    assert snapshotter.capture(many, appending=49) is None
    assert snapshotter.capture(many, appending=50) is not None


def test_snapshot_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Snapshotter(MemorySnapshotStore(), EVENTS, 0, every=0)
