"""The projection contract on :class:`MemoryProjection`, plus what only it offers:
notifications (the other backends notify through the projector) and the harness's
synchronous accessors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import make_event
from flowmonkey.model.tables import ColumnDef
from flowmonkey.projections.base import Projection, RowQuery
from flowmonkey.projections.memory import MemoryProjection
from tests.contract.projection_contract import (
    ORDERS,
    T0,
    ProjectionContract,
    created,
    full_run,
    pipe_row,
)


class TestMemoryProjection(ProjectionContract):
    @pytest.fixture
    async def projection(self) -> AsyncIterator[Projection]:
        projection = MemoryProjection(clock_ms=_Clock())
        await projection.start()
        yield projection
        await projection.close()


class _Clock:
    """Advances one millisecond per reading, so row timestamps differ."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


Notes = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def notes() -> Notes:
    return []


@pytest.fixture
def memory(notes: Notes) -> MemoryProjection:
    return MemoryProjection(notify=lambda name, data: notes.append((name, data)),
                            clock_ms=_Clock())


def test_memory_projection_satisfies_the_protocol(memory: MemoryProjection) -> None:
    assert isinstance(memory, Projection)


async def test_a_written_pipe_row_notifies_pipe_inserted_and_row_inserted(
    memory: MemoryProjection, notes: Notes
) -> None:
    await memory.create_table(ORDERS)
    notes.clear()
    await memory.apply_events([created("e1", tenant="acme"),
                               pipe_row("e1", 2, {"sku": "a"}, tenant="acme")])
    [(row_name, row_note), (pipe_name, pipe_note)] = notes
    assert (row_name, pipe_name) == (n.ROW_INSERTED, n.PIPE_INSERTED)
    assert pipe_note == {"executionId": "e1", "stepId": "charge", "pipeId": "to-orders",
                         "tableId": "orders", "rowId": row_note["rowId"]}
    assert row_note == {"tableId": "orders", "rowId": pipe_note["rowId"], "row": {"sku": "a"},
                        "tenantId": "acme"}


async def test_a_failed_pipe_row_notifies_pipe_failed_and_wal_appended(
    memory: MemoryProjection, notes: Notes
) -> None:
    await memory.apply_events([created("e1"), pipe_row("e1", 2, {"sku": "a"})])
    [(failed, failed_note), (appended, appended_note)] = notes
    assert (failed, appended) == (n.PIPE_FAILED, n.WAL_APPENDED)
    assert failed_note["error"]["code"] == "PIPE_ERROR"
    assert "orders" in failed_note["error"]["message"]
    assert appended_note == {"entryId": memory.wal_entries()[0].id, "tableId": "orders",
                             "executionId": "e1", "pipeId": "to-orders"}


async def test_wal_replay_and_compaction_notify(memory: MemoryProjection, notes: Notes) -> None:
    await memory.apply_events([created("e1"), pipe_row("e1", 2, {"sku": "a"})])
    [entry] = memory.wal_entries()
    await memory.create_table(ORDERS)
    notes.clear()
    await memory.wal_replay()
    await memory.wal_compact()
    await memory.wal_compact()
    assert [name for name, _ in notes] == [n.ROW_INSERTED, n.WAL_REPLAYED, n.WAL_COMPACTED]
    assert notes[1][1] == {"entryId": entry.id, "tableId": "orders"}
    assert notes[2][1] == {"removedCount": 1}


async def test_an_entry_given_up_by_a_replay_is_told_as_pipe_discarded(
        memory: MemoryProjection, notes: Notes) -> None:
    await memory.apply_events([created("e1"), pipe_row("e1", 2, {"sku": "a"})])
    [entry] = memory.wal_entries()
    notes.clear()

    result = await memory.wal_replay(max_attempts=1)

    assert result.discarded == 1
    [(name, note)] = notes
    assert name == n.PIPE_DISCARDED
    assert note["executionId"] == "e1"
    assert (note["pipeId"], note["tableId"], note["attempts"]) == \
        (entry.pipe_id, "orders", 1)
    assert "orders" in note["error"]


async def test_table_and_row_changes_notify(memory: MemoryProjection, notes: Notes) -> None:
    await memory.create_table(ORDERS)
    await memory.add_column("orders", ColumnDef(id="note"))
    await memory.remove_column("orders", "note")
    row_id = await memory.insert_row("orders", {"sku": "a"})
    await memory.update_row("orders", row_id, {"qty": 2})
    await memory.delete_row("orders", row_id)
    await memory.delete_table("orders")
    assert [name for name, _ in notes] == [
        n.TABLE_CREATED, n.TABLE_COLUMN_ADDED, n.TABLE_COLUMN_REMOVED, n.ROW_INSERTED,
        n.ROW_UPDATED, n.ROW_DELETED, n.TABLE_DELETED]
    assert notes[4][1]["row"] == {"sku": "a", "qty": 2}


async def test_a_failing_listener_does_not_stop_the_batch() -> None:
    def explode(name: str, data: dict[str, Any]) -> None:
        raise RuntimeError("listener broke")

    memory = MemoryProjection(notify=explode)
    await memory.apply_events([created("e1"), pipe_row("e1", 2, {}), *full_run("e2")])
    assert len(memory.wal_entries()) == 1
    assert memory.execution_ids() == ["e1", "e2"]


async def test_the_harness_accessors_see_rows_wal_and_rejections(
    memory: MemoryProjection,
) -> None:
    await memory.create_table(ORDERS)
    rejection = make_event(n.COMMAND_REJECTED, "e1", 0, T0, {"code": n.REJECT_NOT_WAITING},
                           command_id="c1")
    batch = [created("e1", tenant="acme"), pipe_row("e1", 2, {"sku": "a"}, tenant="acme"),
             pipe_row("e1", 3, {"sku": 1}), rejection, created("e2", tenant="globex"),
             pipe_row("e2", 2, {"sku": "b"}, tenant="globex")]
    await memory.apply_events(batch)
    await memory.apply_events(batch)
    assert memory.table_rows("orders") == [{"sku": "a"}, {"sku": "b"}]
    assert memory.table_rows("unknown") == []
    assert [e.data for e in memory.wal_entries()] == [{"sku": 1}]
    assert memory.execution_ids() == ["e1", "e2"]
    assert memory.rejections("e1") == [rejection]
    assert memory.rejections("e2") == []


async def test_rebuilding_from_the_same_events_gives_the_same_row_and_wal_ids() -> None:
    events = [created("e1"), pipe_row("e1", 2, {"sku": "a"}), pipe_row("e1", 3, {})]
    ids: list[tuple[list[str], list[str]]] = []
    for _ in range(2):
        memory = MemoryProjection()
        await memory.create_table(ORDERS)
        await memory.apply_events(events)
        rows = await memory.query_rows(RowQuery(table_id="orders"))
        ids.append(([r.id for r in rows.rows], [e.id for e in memory.wal_entries()]))
    assert ids[0] == ids[1]
