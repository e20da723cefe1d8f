"""`flowmonkey jobs list | show` against a real PostgreSQL projection (``fm_jobs``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from flowmonkey.events import names as n
from flowmonkey.projections.postgres import PostgresProjection
from tests.contract.job_projection_contract import claimed, job_ev, job_id, waiting_on_job

pytestmark = pytest.mark.integration

FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")


@dataclass
class Done:
    code: int
    out: str
    err: str


async def _jobs(*args: str, dsn: str) -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env["FLOWMONKEY_POSTGRES_DSN"] = dsn
    process = await asyncio.create_subprocess_exec(
        FLOWMONKEY, "jobs", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def test_jobs_are_listed_filtered_and_shown_from_postgres(
        pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    projection = PostgresProjection(dsn, schema)
    await projection.start()
    try:
        await projection.apply_events([
            *waiting_on_job("e1", tenant="acme", input={"rows": 3}),
            claimed("e1", 5, "w1", tenant="acme"),
            job_ev(n.JOB_COMPLETED, "e1", 6, tenant="acme", instance_id="inst-w1-1",
                   epoch=1, output={"file": "a.csv"}, duration_ms=1),
            *waiting_on_job("e2", type="import")])
    finally:
        await projection.close()

    listed = await _jobs("list", "--schema", schema, dsn=dsn)
    assert listed.code == 0, listed.err
    assert listed.out.splitlines()[-1] == "2 jobs"
    assert f"{job_id('e1')}  completed  export  execution e1  attempt 1  epoch 1  worker w1" \
        in listed.out
    imports = json.loads((await _jobs("list", "--schema", schema, "--type", "import",
                                      "--json", dsn=dsn)).out)
    assert [j["jobId"] for j in imports["items"]] == [job_id("e2")]
    shown = json.loads((await _jobs("show", job_id("e1"), "--schema", schema, "--json",
                                    dsn=dsn)).out)
    assert (shown["status"], shown["output"], shown["tenantId"], shown["input"]) == (
        "completed", {"file": "a.csv"}, "acme", {"rows": 3})
    unknown = await _jobs("show", "job-nope", "--schema", schema, dsn=dsn)
    assert unknown.code == 1
    assert "job 'job-nope' not found" in unknown.err

    # tables of an older version: told to migrate, nothing created behind its back
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'drop table "{schema}".fm_jobs')
    finally:
        await conn.close()
    old = await _jobs("list", "--schema", schema, dsn=dsn)
    assert old.code == 2
    assert f'schema "{schema}" has no table fm_jobs' in old.err
    assert "flowmonkey migrate" in old.err
    missing = await _jobs("list", "--schema", "no_such_schema", dsn=dsn)
    assert missing.code == 2
    assert 'schema "no_such_schema" has no FlowMonkey tables' in missing.err
