"""`flowmonkey replay` and `flowmonkey rebuild` as real processes, on Kafka and on the
durable embedded log, against a Postgres projection an Engine wrote.

* replay at seq k gives the state after k events (the projection's state_at agrees);
* --verify finds the projection equal to the log, and names the field after a row's
  state is corrupted in SQL; --verify-all counts equal / different / missing;
* --export writes every event once, in seq order;
* rebuild gives the same executions as the original projection, and --swap makes the
  rebuilt schema the current one (a reader opened before the swap sees it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flowmonkey import Engine, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.base import Log
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.testing.services import run_async
from tests.integration.projector_support import fetch

pytestmark = pytest.mark.integration

FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")
PARTITIONS = 3
EXECUTIONS = 6


@handler("work")
async def work(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id, "n": params.input})


RESULTS = TableDef(id="results", columns=[ColumnDef(id="step", type="string", required=True)])
FLOW = {
    "id": "audited", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "work", "input": {"type": "key", "key": "n"}, "outputKey": "a",
              "transitions": {"onSuccess": "b"}},
        "b": {"type": "work", "outputKey": "b", "transitions": {"onSuccess": None}},
    },
    "pipes": [{"id": "p", "stepId": "a", "tableId": "results",
               "mappings": [{"sourcePath": "step", "columnId": "step"}]}],
}


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(*args: str, env: dict[str, str], timeout_s: float = 120) -> Done:
    process = await asyncio.create_subprocess_exec(
        FLOWMONKEY, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update(variables)
    return env


async def _run_flows(log: Log, prefix: str, dsn: str, schema: str) -> list[str]:
    """An Engine with a Postgres projection runs EXECUTIONS flows to completion; the
    ids. The engine is closed again (the embedded log allows one process)."""
    engine = Engine(flows=[FLOW], handlers=[work], log=log, topic_prefix=prefix,
                    processor_group=f"{prefix}processor", tables=[RESULTS],
                    projection=PostgresProjection(dsn, schema, pool_max=4))
    async with engine:
        created = await asyncio.gather(*(engine.create("audited", {"n": i})
                                         for i in range(EXECUTIONS)))
        ids = [c.execution.id for c in created]
        done = await asyncio.gather(*(engine.wait(i, timeout_s=60) for i in ids))
        assert {e.status for e in done} == {ExecutionStatus.COMPLETED}
    return ids


@dataclass
class Setup:
    ids: list[str]
    env: dict[str, str]
    dsn: str
    schema: str


@pytest.fixture
async def on_kafka(kafka_bootstrap: str, kafka_prefix: str,
                   pg_schema: tuple[str, str]) -> Setup:
    dsn, schema = pg_schema
    log = KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, partitions=PARTITIONS,
                   client_id=f"{kafka_prefix}client")
    ids = await _run_flows(log, kafka_prefix, dsn, schema)
    return Setup(ids, _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap,
                          FLOWMONKEY_TOPIC_PREFIX=kafka_prefix,
                          FLOWMONKEY_POSTGRES_DSN=dsn), dsn, schema)


@pytest.fixture
def extra_schemas(postgres_dsn: str) -> Iterator[list[str]]:
    """Schemas a test creates besides pg_schema; each is dropped with every schema
    named after it (<name>_old_<timestamp>) afterwards."""
    names: list[str] = []
    yield names

    async def drop() -> None:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            for name in names:
                for r in await conn.fetch(
                        "select nspname from pg_namespace where nspname = $1 "
                        "or nspname like $1 || '\\_old\\_%'", name):
                    await conn.execute(f'drop schema "{r["nspname"]}" cascade')
        finally:
            await conn.close()

    run_async(drop)


def _fresh_schema(names: list[str]) -> str:
    name = f"t_rb_{uuid.uuid4().hex[:10]}"
    names.append(name)
    return name


async def _projection_state_at(dsn: str, schema: str, eid: str, seq: int) -> Any:
    projection = PostgresProjection(dsn, schema, pool_max=1)
    await projection.start()
    try:
        execution = await projection.state_at(eid, seq)
        assert execution is not None
        return execution.model_dump(mode="json")
    finally:
        await projection.close()


async def _snapshot(dsn: str, schema: str) -> dict[str, Any]:
    """Every execution of the schema as its reads answer it (state and history), and
    the data-table rows."""
    projection = PostgresProjection(dsn, schema, pool_max=1)
    await projection.start()
    try:
        page = await projection.list(limit=1000)
        executions = {e.id: (e.model_dump(mode="json"),
                             [h.model_dump(mode="json") for h in await projection.history(e.id)])
                      for e in page.items}
        rows = [(r["table_id"], r["id"], r["data"]) for r in await fetch(
            dsn, schema, "select table_id, id, data::text as data from fm_table_rows "
                         "order by table_id, id")]
        return {"executions": executions, "rows": rows}
    finally:
        await projection.close()


# --------------------------------------------------------------------------- replay


async def test_replay_at_each_seq_equals_the_state_after_that_many_events(
        on_kafka: Setup) -> None:
    eid = on_kafka.ids[0]
    latest = await cli("replay", eid, "--schema", on_kafka.schema, env=on_kafka.env)
    assert latest.code == 0, latest.err
    body = latest.json()
    assert body["execution"]["status"] == "completed"
    total = body["events"]
    assert body["at_seq"] == total
    assert body["events_applied"] == total
    assert body["execution"] == await _projection_state_at(on_kafka.dsn, on_kafka.schema,
                                                           eid, total)
    for seq in range(1, total):
        at = await cli("replay", eid, "--at", str(seq), env=on_kafka.env)
        assert at.code == 0, at.err
        assert at.json()["events_applied"] == seq
        assert at.json()["execution"] == await _projection_state_at(
            on_kafka.dsn, on_kafka.schema, eid, seq), f"state after event {seq}"
    text = await cli("replay", eid, "--at", "1", "--format", "text", env=on_kafka.env)
    assert text.code == 0, text.err
    assert f"execution {eid}" in text.out
    assert f"at seq    1 (1 of {total} events)" in text.out


async def test_replay_of_an_unknown_execution_or_seq_is_bad_input(on_kafka: Setup) -> None:
    unknown = await cli("replay", "no-such-execution", env=on_kafka.env)
    assert unknown.code == 2
    assert "'no-such-execution' is not in the log" in unknown.err
    assert "Traceback" not in unknown.err
    assert "check the id" in unknown.err
    # the 8 characters a timeline shows are not enough, and the hint says so
    short = await cli("replay", on_kafka.ids[0][:8], env=on_kafka.env)
    assert short.code == 2
    assert "hint: give the whole execution id" in short.err
    past = await cli("replay", on_kafka.ids[0], "--at", "999", env=on_kafka.env)
    assert past.code == 2
    assert "past the last one" in past.err


# --------------------------------------------------------------------------- verify


async def _corrupt(dsn: str, schema: str, eid: str) -> None:
    await fetch(dsn, schema, "update fm_executions set status = 'failed', "
                             "state = jsonb_set(state, '{status}', '\"failed\"') where id = $1",
                eid)


async def test_verify_is_equal_after_the_projector_and_names_a_corrupted_field(
        on_kafka: Setup) -> None:
    eid = on_kafka.ids[1]
    args = ("replay", eid, "--verify", "--schema", on_kafka.schema, "--format", "text")
    equal = await cli(*args, env=on_kafka.env)
    assert equal.code == 0, equal.out + equal.err
    assert equal.out.startswith(f"equal: {eid}")
    await _corrupt(on_kafka.dsn, on_kafka.schema, eid)
    different = await cli(*args, env=on_kafka.env)
    assert different.code == 1, different.out + different.err
    assert different.out.startswith(f"different: {eid}")
    assert "state.status: projection \"failed\" != log \"completed\"" in different.out
    assert "  status: projection \"failed\" != log \"completed\"" in different.out
    as_json = await cli(*args[:-2], env=on_kafka.env)
    assert as_json.code == 1
    fields = {d["field"] for d in as_json.json()["differences"]}
    assert fields == {"state.status", "status"}


async def test_verify_all_counts_equal_different_and_missing(on_kafka: Setup) -> None:
    args = ("replay", "--verify-all", "--schema", on_kafka.schema)
    clean = await cli(*args, env=on_kafka.env)
    assert clean.code == 0, clean.out + clean.err
    assert clean.json()["equal"] == EXECUTIONS
    assert (clean.json()["different"], clean.json()["missing"]) == (0, 0)
    await _corrupt(on_kafka.dsn, on_kafka.schema, on_kafka.ids[0])
    await fetch(on_kafka.dsn, on_kafka.schema, "delete from fm_executions where id = $1",
                on_kafka.ids[1])
    dirty = await cli(*args, "--format", "text", env=on_kafka.env)
    assert dirty.code == 1
    assert (f"checked {EXECUTIONS} executions against schema \"{on_kafka.schema}\": "
            f"{EXECUTIONS - 2} equal, 1 different, 1 missing") in dirty.out
    assert f"different: {on_kafka.ids[0]}" in dirty.out
    assert f"missing: {on_kafka.ids[1]}" in dirty.out
    limited = await cli(*args, "--limit", "2", env=on_kafka.env)
    assert limited.json()["checked"] == 2


# --------------------------------------------------------------------------- export


async def test_export_writes_every_event_once_in_seq_order(
        on_kafka: Setup, tmp_path: Path) -> None:
    eid = on_kafka.ids[2]
    target = tmp_path / "history.jsonl"
    done = await cli("replay", eid, "--export", str(target), env=on_kafka.env)
    assert done.code == 0, done.err
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert len({e["event_id"] for e in lines}) == len(lines)
    assert {e["execution_id"] for e in lines} == {eid}
    projected = [(r["seq"], r["event_id"], r["type"]) for r in await fetch(
        on_kafka.dsn, on_kafka.schema,
        "select seq, event_id, type from fm_events where execution_id = $1 order by seq", eid)]
    assert [(e["seq"], e["event_id"], e["type"]) for e in lines] == projected
    assert set(lines[0]) == {"type", "version", "execution_id", "seq", "event_id",
                             "timestamp", "tenant_id", "command_id", "data"}
    stdout = await cli("replay", eid, "--export", "-", env=on_kafka.env)
    assert stdout.code == 0
    assert [json.loads(line) for line in stdout.out.splitlines()] == lines


# --------------------------------------------------------------------------- rebuild


async def test_rebuild_gives_the_same_executions_and_swap_makes_it_current(
        on_kafka: Setup, extra_schemas: list[str]) -> None:
    original = await _snapshot(on_kafka.dsn, on_kafka.schema)
    assert len(original["executions"]) == EXECUTIONS
    assert len(original["rows"]) == EXECUTIONS  # one pipe row each
    into = _fresh_schema(extra_schemas)
    built = await cli("rebuild", "--into", into, "--schema", on_kafka.schema,
                      "--rows-from", "log", env=on_kafka.env)
    assert built.code == 0, built.out + built.err
    assert re.search(rf"fm_executions +{EXECUTIONS} +{EXECUTIONS}\n", built.out), built.out
    assert await _snapshot(on_kafka.dsn, into) == original

    again = await cli("rebuild", "--into", into, "--schema", on_kafka.schema, env=on_kafka.env)
    assert again.code == 2
    assert "already has tables" in again.err

    # a reader opened before the swap, and a corrupted row the rebuild will not have
    extra_schemas.append(on_kafka.schema[:44])  # the old one is dropped with the test
    reader = PostgresProjection(on_kafka.dsn, on_kafka.schema, pool_max=1)
    await reader.start()
    try:
        await _corrupt(on_kafka.dsn, on_kafka.schema, on_kafka.ids[0])
        corrupted = await reader.get(on_kafka.ids[0])
        assert corrupted is not None
        assert corrupted.status == ExecutionStatus.FAILED
        swapped = await cli("rebuild", "--into", into, "--force", "--swap",
                            "--schema", on_kafka.schema, env=on_kafka.env)
        assert swapped.code == 0, swapped.out + swapped.err
        assert f"swapped: \"{into}\" is now \"{on_kafka.schema}\"" in swapped.out
        fixed = await reader.get(on_kafka.ids[0])
        assert fixed is not None
        assert fixed.status == ExecutionStatus.COMPLETED
    finally:
        await reader.close()
    assert await _snapshot(on_kafka.dsn, on_kafka.schema) == original
    names = [r["nspname"] for r in await fetch(
        on_kafka.dsn, "public", "select nspname from pg_namespace where nspname = $1 "
        "or nspname like $2 order by nspname", into, on_kafka.schema[:44] + "\\_old\\_%")]
    assert len(names) == 1, names  # --into is gone, the old one is kept
    assert "_old_" in names[0]
    # the projector group of the current schema resumes where the rebuild stopped
    offsets = await fetch(on_kafka.dsn, on_kafka.schema,
                          "select group_id, partition, next_offset from fm_projection_offsets "
                          "order by partition, group_id")
    resumed = [(r["partition"], r["next_offset"]) for r in offsets
               if r["group_id"] == "flowmonkey-projector"]
    rebuilt = [(r["partition"], r["next_offset"]) for r in offsets
               if r["group_id"].startswith("flowmonkey-rebuild-")]
    # (a partition no execution's id hashed to has no events, hence no offset row)
    assert resumed
    assert resumed == rebuilt
    verified = await cli("replay", "--verify-all", "--schema", on_kafka.schema,
                         env=on_kafka.env)
    assert verified.code == 0, verified.out + verified.err


# --------------------------------------------------------------------------- embedded


async def test_replay_verify_and_rebuild_on_the_durable_embedded_log(
        pg_schema: tuple[str, str], tmp_path: Path, extra_schemas: list[str]) -> None:
    dsn, schema = pg_schema
    data = tmp_path / "log"
    ids = await _run_flows(EmbeddedLog(path=data, partitions=PARTITIONS), "flowmonkey",
                           dsn, schema)
    env = _env(FLOWMONKEY_DATA_DIR=str(data), FLOWMONKEY_POSTGRES_DSN=dsn)
    shown = await cli("replay", ids[0], "--at", "2", env=env)
    assert shown.code == 0, shown.err
    assert shown.json()["execution"] == await _projection_state_at(dsn, schema, ids[0], 2)
    verified = await cli("replay", "--verify-all", "--schema", schema, env=env)
    assert verified.code == 0, verified.out + verified.err
    assert verified.json()["equal"] == EXECUTIONS
    into = _fresh_schema(extra_schemas)
    built = await cli("rebuild", "--into", into, "--schema", schema, env=env)
    assert built.code == 0, built.out + built.err
    assert await _snapshot(dsn, into) == await _snapshot(dsn, schema)


# --------------------------------------------------------------------------- swap


async def _offsets(dsn: str, schema: str, rows: list[tuple[str, str, int, int]]) -> None:
    projection = PostgresProjection(dsn, schema, pool_max=1)
    await projection.start()  # migrates
    await projection.close()
    for row in rows:
        await fetch(dsn, schema, "insert into fm_projection_offsets (group_id, topic, "
                                 "partition, next_offset) values ($1, $2, $3, $4)", *row)


async def test_swap_refuses_while_a_projector_of_the_current_schema_is_ahead(
        pg_schema: tuple[str, str], extra_schemas: list[str]) -> None:
    from flowmonkey.projections.rebuild import RebuildError, swap

    dsn, current = pg_schema
    into = _fresh_schema(extra_schemas)
    extra_schemas.append(current[:44])
    await _offsets(dsn, into, [("rebuild", "fm.events", 0, 5), ("rebuild", "fm.events", 1, 3)])
    await _offsets(dsn, current, [("live", "fm.events", 0, 7), ("live", "fm.events", 1, 3)])
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(RebuildError, match="ahead of the rebuild") as ahead:
            await swap(conn, current, into, "fm.events", "rebuild")
        assert ahead.value.code == "REBUILD_BEHIND"
        await fetch(dsn, current, "update fm_projection_offsets set next_offset = 5 "
                                  "where partition = 0")
        await fetch(dsn, current, "insert into fm_projection_offsets values "
                                  "('live', 'other.events', 0, 1)")
        with pytest.raises(RebuildError, match=r"also holds the projection of other\.events"):
            await swap(conn, current, into, "fm.events", "rebuild")
        await fetch(dsn, current, "delete from fm_projection_offsets where topic <> 'fm.events'")
        old = await swap(conn, current, into, "fm.events", "rebuild")
    finally:
        await conn.close()
    assert old is not None
    assert old.startswith(current[:44] + "_old_")
    moved = [(r["group_id"], r["partition"], r["next_offset"]) for r in await fetch(
        dsn, current, "select * from fm_projection_offsets order by group_id, partition")]
    assert moved == [("live", 0, 5), ("live", 1, 3), ("rebuild", 0, 5), ("rebuild", 1, 3)]
