"""The stored form of a partition's state (processor snapshots): everything ``decide``
reads survives, so a processor restored from a snapshot decides exactly as before."""

from __future__ import annotations

import dataclasses
import zlib
from collections import OrderedDict
from typing import Any

import orjson
import pytest

from flowmonkey.events import names as n
from flowmonkey.kernel.decide import Decision, decide
from flowmonkey.kernel.state import ExecutionOptions, ExecutionState, PartitionState
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import Result
from flowmonkey.processors.snapshot_codec import (
    FORMAT,
    MAGIC,
    SnapshotDecodeError,
    anchor_of,
    decode_partition_state,
    encode_snapshot_state,
)
from tests.unit.kernel.support import (
    T0,
    DictEnv,
    KernelDriver,
    linear_flow,
    result_cmd,
    start_cmd,
    state_fields,
)
from tests.unit.test_state_codec import _every_field_set, _minimal

TOPIC = "orders.events"
HOUR = 3_600_000


def _encode(state: PartitionState, offset: int = 42, anchor: int = 7) -> bytes:
    return encode_snapshot_state(state, topic=TOPIC, partition=3, events_offset=offset,
                                 anchor_crc=anchor)


def _restore(state: PartitionState) -> PartitionState:
    return decode_partition_state(_encode(state), topic=TOPIC, partition=3,
                                  events_offset=42).state


def _doc(data: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(zlib.decompress(data[len(MAGIC) + 1:]))
    return loaded


def _bytes(doc: dict[str, Any]) -> bytes:
    return MAGIC + bytes([FORMAT]) + zlib.compress(orjson.dumps(doc))


def _scenario() -> KernelDriver:
    """A partition with a running, a waiting-to-retry and a completed execution, an
    idempotency key and a few hundred seen command ids."""
    d = KernelDriver(DictEnv([linear_flow(length=3, retry={"max_attempts": 3,
                                                           "backoff_ms": 1000})]))
    d.start("done", "linear", idempotency_key="k-done", command_id="start-done")
    for step in range(3):
        d.result("done", Result.success({"n": step}), at=T0 + step + 1)
    d.start("running", "linear", at=T0 + 10, idempotency_key="k-run", command_id="start-run")
    d.start("retrying", "linear", at=T0 + 20, tenant_id="acme", command_id="start-retry")
    d.result("retrying", Result.failure("BOOM", "first attempt"), at=T0 + 21)
    for i in range(300):
        d.partition.note_command(f"old-{i}")
    return d


def _same(a: Decision, b: Decision) -> None:
    assert a.events == b.events
    assert a.commands == b.commands
    assert a.ignored == b.ignored
    assert {k: state_fields(v) for k, v in a.states.items()} == \
        {k: state_fields(v) for k, v in b.states.items()}


def test_a_partition_state_survives_a_round_trip() -> None:
    original = _scenario().partition
    restored = _restore(original)
    assert restored == original
    assert list(restored.seen_commands) == list(original.seen_commands)  # eviction order
    assert restored.idempotency == original.idempotency


@pytest.mark.parametrize("state", [_minimal(), _every_field_set()],
                         ids=["defaults", "every-field"])
def test_every_field_of_an_execution_survives(state: ExecutionState) -> None:
    partition = PartitionState(executions={state.id: state})
    restored = _restore(partition).executions[state.id]
    assert state_fields(restored) == state_fields(state)
    assert isinstance(restored.status, ExecutionStatus)
    assert isinstance(restored.history, tuple)
    assert restored.to_execution() == state.to_execution()


def test_a_redelivered_command_is_still_ignored_after_restoring() -> None:
    d = _scenario()
    restored = _restore(d.partition)
    again = start_cmd("running", "linear", at=T0 + HOUR, command_id="start-run")
    before, after = decide(d.partition, again, d.env), decide(restored, again, d.env)
    assert after.ignored == "duplicate command"
    _same(before, after)


def test_an_idempotency_key_still_hits_after_restoring() -> None:
    d = _scenario()
    restored = _restore(d.partition)
    duplicate = start_cmd("other", "linear", at=T0 + HOUR, idempotency_key="k-run",
                          command_id="start-other")
    before, after = decide(d.partition, duplicate, d.env), decide(restored, duplicate, d.env)
    assert [e.type for e in after.events] == [n.IDEMPOTENCY_HIT]
    assert after.events[0].execution_id == "running"
    _same(before, after)


def test_step_results_and_retries_decide_the_same_after_restoring() -> None:
    d = _scenario()
    restored = _restore(d.partition)
    for command in (
        result_cmd("running", d.state("running").attempt_id,
                   Result.success({"ok": 1}), at=T0 + 30),
        result_cmd("running", "stale-attempt", Result.success({}), at=T0 + 31),
        start_cmd("fresh", "linear", at=T0 + 32, context={"x": [1, 2]}),
    ):
        _same(decide(d.partition, command, d.env), decide(restored, command, d.env))


def test_executions_with_equal_options_share_one_options_object() -> None:
    d = _scenario()
    restored = _restore(d.partition)
    options = {id(s.options) for s in restored.executions.values()}
    assert len(options) == 1
    assert isinstance(next(iter(restored.executions.values())).options, ExecutionOptions)


def test_a_snapshot_written_with_other_state_fields_gives_the_missing_ones_defaults() -> None:
    # given a snapshot from a version whose ExecutionState lacked metadata and listed
    # its fields in another order
    state = _every_field_set()
    doc = _doc(_encode(PartitionState(executions={state.id: state})))
    names, [values] = doc["fields"], doc["executions"]
    by_name = dict(zip(names, values, strict=True))
    del by_name["metadata"]
    doc["fields"], doc["executions"] = list(reversed(by_name)), \
        [list(reversed(by_name.values()))]
    # then it still decodes, with the field's default
    restored = decode_partition_state(_bytes(doc), topic=TOPIC, partition=3,
                                      events_offset=42).state.executions[state.id]
    assert restored.metadata is None
    assert state_fields(restored) == {**state_fields(state), "metadata": None}


def test_forgotten_executions_survive_and_a_format_1_snapshot_reads_as_forgetting_none(
) -> None:
    d = _scenario()
    d.partition.forgotten.update({"old-1", "old-2"})
    assert _restore(d.partition).forgotten == {"old-1", "old-2"}

    # format 1 (before forgetting existed) had no "forgotten"
    doc = _doc(_encode(d.partition))
    del doc["forgotten"]
    old = MAGIC + bytes([1]) + zlib.compress(orjson.dumps(doc))
    restored = decode_partition_state(old, topic=TOPIC, partition=3, events_offset=42).state
    assert restored.forgotten == set()
    assert restored.executions == d.partition.executions
    # the heap of ended executions is rebuilt from them
    ended = sorted(eid for eid, st in restored.executions.items() if st.is_terminal)
    assert sorted(eid for _, eid in restored.ending) == ended


def test_the_anchor_is_stored_with_the_state() -> None:
    data = _encode(_scenario().partition, anchor=anchor_of(b"last record"))
    decoded = decode_partition_state(data, topic=TOPIC, partition=3, events_offset=42)
    assert decoded.anchor_crc == zlib.crc32(b"last record")


@pytest.mark.parametrize(("topic", "partition", "offset"), [
    ("billing.events", 3, 42), (TOPIC, 4, 42), (TOPIC, 3, 41)])
def test_a_snapshot_of_another_partition_or_offset_is_refused(
        topic: str, partition: int, offset: int) -> None:
    data = _encode(_scenario().partition)
    with pytest.raises(SnapshotDecodeError, match=r"orders\.events\[3\] as of offset 42"):
        decode_partition_state(data, topic=topic, partition=partition, events_offset=offset)


@pytest.mark.parametrize("garble", [
    lambda b: b"not a snapshot",
    lambda b: b[: len(b) // 2],
    lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]),
    lambda b: MAGIC + bytes([FORMAT]) + zlib.compress(b"{\"topic\": 1}"),
    lambda b: MAGIC,
], ids=["foreign", "truncated", "flipped-byte", "missing-keys", "magic-only"])
def test_garbled_bytes_are_refused(garble: Any) -> None:
    with pytest.raises(SnapshotDecodeError):
        decode_partition_state(garble(_encode(_scenario().partition)), topic=TOPIC,
                               partition=3, events_offset=42)


def test_an_unknown_format_is_refused() -> None:
    data = bytearray(_encode(_scenario().partition))
    data[len(MAGIC)] = FORMAT + 1
    with pytest.raises(SnapshotDecodeError, match=f"format {FORMAT + 1}"):
        decode_partition_state(bytes(data), topic=TOPIC, partition=3, events_offset=42)


def test_an_empty_partition_round_trips() -> None:
    assert _restore(PartitionState()) == PartitionState()


def test_the_restored_states_are_independent_of_the_snapshot_bytes() -> None:
    # decoded states share empty containers; appliers replace, never mutate them, so
    # adopting a decision on one execution leaves the others as they were
    d = _scenario()
    restored = _restore(d.partition)
    before = {k: dataclasses.asdict(v) for k, v in restored.executions.items()
              if k != "running"}
    decision = decide(restored, result_cmd("running", restored.executions["running"]
                                           .attempt_id, Result.success({}), at=T0 + 40),
                      d.env)
    restored.executions.update(decision.states)
    assert {k: dataclasses.asdict(v) for k, v in restored.executions.items()
            if k != "running"} == before
    assert isinstance(restored.seen_commands, OrderedDict)
