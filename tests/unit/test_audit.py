"""projections.audit on the in-memory embedded log: histories as the kernel folds them,
the projection compared field by field, verify_all's counts, limit and read-on."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from flowmonkey.events.envelope import Event
from flowmonkey.kernel.apply import replay
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.state_codec import state_to_json
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.topics import Topics
from flowmonkey.projections.audit import (
    NotInLogError,
    ProjectionRows,
    _same,
    compare,
    expected_columns,
    read_history,
    verify_all,
    write_jsonl,
)
from flowmonkey.projections.rebuild import old_schema_name
from tests.contract.projection_contract import created, ev, finished, full_run, started
from tests.integration.projector_support import append_events

TOPIC = Topics("flowmonkey").events
PARTITIONS = 3


async def _log(*events: Event) -> EmbeddedLog:
    log = EmbeddedLog(partitions=PARTITIONS)
    await log.start()
    await log.create_topics(Topics("flowmonkey").specs(PARTITIONS))
    await append_events(log, TOPIC, events)
    return log


def _row(state: ExecutionState) -> dict[str, Any]:
    """The fm_executions row the projector writes for ``state``."""
    return {**expected_columns(state), "state": orjson.loads(orjson.dumps(state_to_json(state)))}


def _state(events: list[Event]) -> ExecutionState:
    state = replay(events)
    assert state is not None
    return state


class FakeRows(ProjectionRows):
    """Rows from a dict instead of Postgres; ``on_read`` runs before each answer."""

    def __init__(self, stored: dict[str, dict[str, Any]]) -> None:
        self.stored = stored
        self.reads = 0

    async def on_read(self) -> None:
        return None

    async def rows(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.reads += 1
        await self.on_read()
        return {i: self.stored[i] for i in ids if i in self.stored}


# --------------------------------------------------------------------------- compare


def test_compare_finds_a_row_written_from_the_same_state_equal() -> None:
    state = _state(full_run("e1"))
    verdict = compare("e1", _row(state), state)
    assert verdict.kind == "equal"
    assert verdict.differences == ()


def test_compare_names_each_differing_field_with_both_values() -> None:
    state = _state(full_run("e1"))
    row = _row(state)
    row["state"]["context"] = {"tampered": True}
    row["status"] = "failed"
    verdict = compare("e1", row, state)
    assert verdict.kind == "different"
    found = {d.field: (d.projection, d.log) for d in verdict.differences}
    assert found == {"state.context": ({"tampered": True}, state.context),
                     "status": ("failed", "completed")}


def test_compare_reports_a_missing_row_or_a_row_without_state() -> None:
    state = _state(full_run("e1"))
    assert compare("e1", None, state).kind == "missing"
    assert compare("e1", {**_row(state), "state": None}, state).kind == "missing"


def test_a_projection_behind_the_log_is_different_and_says_so() -> None:
    events = full_run("e1")
    behind = _row(_state(events[:3]))
    verdict = compare("e1", behind, _state(events))
    assert verdict.kind == "different"
    assert verdict.behind
    assert (verdict.projection_seq, verdict.log_seq) == (3, len(events))


def test_json_numbers_compare_by_value_but_booleans_are_not_numbers() -> None:
    assert _same(1e100, 10**100)  # jsonb gives a big float back as an integer
    assert _same({"a": [1, 2.5]}, {"a": [1.0, 2.5]})
    assert not _same(True, 1)
    assert not _same(1, 2)
    assert not _same({"a": 1}, {"a": 1, "b": 2})


# --------------------------------------------------------------------------- history


async def test_a_history_is_the_executions_events_once_each_in_seq_order() -> None:
    run = full_run("e1")
    log = await _log(*run[:3], *full_run("e2"), run[2],  # a redelivery of seq 3
                     ev("command.rejected", "e1", 0, {"reason": "late"}), *run[3:])
    history = await read_history(log, TOPIC, "e1")
    assert [e.event_id for e in history.events] == [e.event_id for e in run]
    assert history.ignored == 2
    assert history.upto(2) == run[:2]
    assert history.state_at(2) is not None
    assert history.state_at(2).seq == 2  # type: ignore[union-attr]
    out = io.BytesIO()
    assert write_jsonl(history.events, out) == len(run)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [e.seq for e in run]


async def test_an_execution_without_events_is_not_in_the_log() -> None:
    log = await _log(*full_run("e1"))
    with pytest.raises(NotInLogError, match="'nope' is not in the log"):
        await read_history(log, TOPIC, "nope")


# --------------------------------------------------------------------------- verify_all


async def test_verify_all_counts_equal_different_missing_and_orphans() -> None:
    runs = {eid: full_run(eid) for eid in ("a", "b", "c", "d")}
    orphan = ev("step.started", "orphan", 2, {"step_id": "x"})  # no execution.created
    log = await _log(*(e for run in runs.values() for e in run), orphan)
    stored = {eid: _row(_state(run)) for eid, run in runs.items()}
    stored["b"]["state"]["step_count"] = 99
    del stored["c"]
    report = await verify_all(FakeRows(stored), log, TOPIC)
    assert (report.equal, report.different, report.missing) == (2, 1, 1)
    assert report.orphans == 1
    assert report.events_read == sum(len(r) for r in runs.values()) + 1
    assert not report.ok
    assert {(v.execution_id, v.kind) for v in report.problems} == {("b", "different"),
                                                                   ("c", "missing")}


async def test_verify_all_stops_at_the_limit() -> None:
    runs = [full_run(f"e{i}") for i in range(10)]
    log = await _log(*(e for run in runs for e in run))
    stored = {run[0].execution_id: _row(_state(run)) for run in runs}
    report = await verify_all(FakeRows(stored), log, TOPIC, limit=4)
    assert report.checked == 4
    assert report.equal == 4


async def test_verify_all_reads_on_when_the_projection_is_ahead_of_its_end_offsets() -> None:
    """A projector applied events appended after verify_all took its end offsets: the
    partition is read on, and the execution compares equal."""
    first = [created("e1"), *started("e1")]
    log = await _log(*first)
    full = first + finished("e1")
    rows = FakeRows({"e1": _row(_state(full))})

    async def late_append() -> None:
        if rows.reads == 1:
            await append_events(log, TOPIC, full[len(first):])

    rows.on_read = late_append  # type: ignore[method-assign]
    report = await verify_all(rows, log, TOPIC)
    assert (report.equal, report.different) == (1, 0)


def test_old_schema_names_fit_postgres_identifiers() -> None:
    assert old_schema_name("flowmonkey", 0) == "flowmonkey_old_19700101000000"
    long = old_schema_name("s" * 63, 0)
    assert len(long) == 63
    assert long.endswith("_old_19700101000000")
