"""``GET /v1/jobs`` and ``GET /v1/jobs/{id}``, and the execution's ``job``: jobs driven
by publishing the workers' commands by hand (no Worker), read through the API."""

from __future__ import annotations

from typing import Any

import httpx

from flowmonkey import Engine, HandlerParams, StepResult, handler
from flowmonkey.events import names as n
from tests.behaviour.flows import flow, step
from tests.behaviour.job_commands import JobCommands
from tests.unit.api_support import (
    ADMIN,
    ISO_UTC,
    KEY_A,
    KEY_B,
    api_client,
    bearer,
    eventually,
)

A, B = bearer(KEY_A), bearer(KEY_B)


@handler("export", stateful=True)
async def export(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it")


@handler("import", stateful=True)
async def import_(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it")


EXPORT = flow("export", step("x", "export", output_key="exported"))
IMPORT = flow("import", step("i", "import", output_key="imported"))


def jobs_engine() -> Engine:
    return Engine(flows=[EXPORT, IMPORT], handlers=[export, import_], workers=0)


async def start(client: httpx.AsyncClient, flow_id: str, headers: dict[str, str],
                context: dict[str, Any] | None = None) -> str:
    created = await client.post("/v1/executions", headers=headers,
                                json={"flowId": flow_id, "context": context or {}})
    assert created.status_code == 201, created.text
    execution_id: str = created.json()["execution"]["id"]
    return execution_id


async def job_of(client: httpx.AsyncClient, execution_id: str, headers: dict[str, str],
                 status: str) -> dict[str, Any]:
    """The execution's job once the API shows it with ``status``."""
    async def found() -> dict[str, Any] | None:
        page = await client.get("/v1/jobs", headers=headers,
                                params={"executionId": execution_id})
        assert page.status_code == 200, page.text
        items = [j for j in page.json()["items"] if j["status"] == status]
        return items[0] if items else None

    job: dict[str, Any] = await eventually(found, what=f"{execution_id}'s job {status}")
    return job


async def test_a_job_is_read_as_it_goes_and_its_execution_shows_it() -> None:
    engine = jobs_engine()
    async with api_client(engine=engine) as client:
        jobs = JobCommands(engine)
        execution_id = await start(client, "export", A, {"rows": 3})
        pending = await job_of(client, execution_id, A, "pending")
        assert (pending["type"], pending["stepId"], pending["flowId"], pending["attempt"],
                pending["epoch"], pending["tenantId"]) == (
            "export", "x", "export", 1, 0, "tenant-a")
        assert pending["input"] == {"rows": 3}
        assert ISO_UTC.match(pending["createdAt"])
        assert ISO_UTC.match(pending["deadlineAt"])

        claimed = await jobs.claim(execution_id, pending["jobId"], "w-7")
        await jobs.write(n.CMD_JOB_PROGRESS, claimed, percent=30, message="three of ten")
        running = await job_of(client, execution_id, A, "claimed")
        assert (running["workerId"], running["epoch"], running["claims"]) == ("w-7", 1, 1)
        assert ISO_UTC.match(running["leaseExpiresAt"])

        async def progressed() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get(f"/v1/executions/{execution_id}",
                                                     headers=A)).json()
            job = body.get("job")
            return body if job and job.get("progressPercent") == 30 else None

        execution = await eventually(progressed, what="the execution's job's progress")
        assert execution["status"] == "waiting"
        assert execution["job"] == {
            "jobId": pending["jobId"], "type": "export", "status": "claimed", "epoch": 1,
            "workerId": "w-7", "progressPercent": 30.0, "progressMessage": "three of ten",
            "checkpointSeq": 0}

        await jobs.write(n.CMD_JOB_COMPLETE, claimed, output={"file": "a.csv"})
        done = await job_of(client, execution_id, A, "completed")
        assert done["output"] == {"file": "a.csv"}
        assert ISO_UTC.match(done["endedAt"])
        one = await client.get(f"/v1/jobs/{pending['jobId']}", headers=A)
        assert one.status_code == 200
        assert one.json() == done
        finished = (await client.get(f"/v1/executions/{execution_id}", headers=A)).json()
        assert finished["status"] == "completed"
        assert finished["job"] is None


async def test_the_list_filters_and_pages_with_a_cursor() -> None:
    engine = jobs_engine()
    async with api_client(engine=engine) as client:
        jobs = JobCommands(engine)
        exports = [await start(client, "export", A) for _ in range(3)]
        imported = await start(client, "import", A)
        pendings = {e: await job_of(client, e, A, "pending") for e in [*exports, imported]}
        await jobs.claim(exports[0], pendings[exports[0]]["jobId"], "w-1")
        await job_of(client, exports[0], A, "claimed")

        async def ids(**params: Any) -> list[str]:
            page = await client.get("/v1/jobs", headers=A, params=params)
            assert page.status_code == 200, page.text
            return [j["executionId"] for j in page.json()["items"]]

        assert sorted(await ids()) == sorted([*exports, imported])
        assert await ids(type="import") == [imported]
        assert await ids(status="claimed") == [exports[0]]
        assert await ids(workerId="w-1") == [exports[0]]
        assert await ids(workerId="w-2") == []
        assert sorted(await ids(status="pending", type="export")) == sorted(exports[1:])

        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3}
        while True:
            page = (await client.get("/v1/jobs", headers=A, params=params)).json()
            seen += [j["jobId"] for j in page["items"]]
            if page["nextCursor"] is None:
                break
            params["cursor"] = page["nextCursor"]
        assert sorted(seen) == sorted(j["jobId"] for j in pendings.values())
        assert len(seen) == 4


async def test_jobs_are_scoped_to_the_callers_tenant_like_executions() -> None:
    engine = jobs_engine()
    async with api_client(engine=engine) as client:
        mine = await start(client, "export", A)
        job = await job_of(client, mine, A, "pending")
        other = await start(client, "export", B)
        await job_of(client, other, B, "pending")

        hidden = await client.get(f"/v1/jobs/{job['jobId']}", headers=B)
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "JOB_NOT_FOUND"
        listed = (await client.get("/v1/jobs", headers=B)).json()["items"]
        assert [j["executionId"] for j in listed] == [other]
        assert (await client.get("/v1/jobs", headers=B,
                                 params={"executionId": mine})).json()["items"] == []
        everything = (await client.get("/v1/jobs", headers=bearer(ADMIN))).json()["items"]
        assert sorted(j["tenantId"] for j in everything) == ["tenant-a", "tenant-b"]
        as_b = (await client.get("/v1/jobs", headers=bearer(ADMIN, "tenant-b"))).json()
        assert [j["executionId"] for j in as_b["items"]] == [other]
        assert (await client.get(f"/v1/jobs/{job['jobId']}",
                                 headers=bearer(ADMIN))).status_code == 200
        unauthenticated = await client.get("/v1/jobs")
        assert unauthenticated.status_code == 401


async def test_a_bad_cursor_status_or_unknown_job_is_refused_clearly() -> None:
    async with api_client(engine=jobs_engine()) as client:
        cursor = await client.get("/v1/jobs", params={"cursor": "nope"}, headers=A)
        assert cursor.status_code == 400
        assert cursor.json()["error"]["code"] == "INVALID_CURSOR"
        status = await client.get("/v1/jobs", params={"status": "sleeping"}, headers=A)
        assert status.status_code == 422
        assert "status" in status.json()["error"]["message"]
        limit = await client.get("/v1/jobs", params={"limit": 0}, headers=A)
        assert limit.status_code == 422
        unknown = await client.get("/v1/jobs/job-nope", headers=A)
        assert unknown.status_code == 404
        assert unknown.json()["error"] == {"code": "JOB_NOT_FOUND",
                                           "message": "job 'job-nope' not found"}
