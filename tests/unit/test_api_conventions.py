"""One timestamp format and one key style across the whole HTTP API.

Every point in time is an ISO-8601 UTC string with milliseconds and ``Z``; every key
the engine owns is camelCase (event ``data`` too); the user's data (context, outputs,
resume data, metadata, row values, error details) comes back with its keys untouched.
Checked on the OpenAPI schema and on the answer of every GET endpoint for one
execution that waits (for a time and for a signal), starts a child, pipes a row into
a table and fails, one that is cancelled, and jobs (one completed, one claimed, one
failed) with the executions that wait on them.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from flowmonkey import (
    ColumnDef,
    Engine,
    EngineOptions,
    HandlerParams,
    Result,
    StepResult,
    TableDef,
    handler,
)
from flowmonkey.api.event_data import api_event_data
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.events.types import EVENT_SCHEMAS
from tests.behaviour.flows import flow, step
from tests.behaviour.job_commands import JobCommands
from tests.unit.api_support import (
    ADMIN,
    ISO_UTC,
    KEY_A,
    api_client,
    bearer,
    eventually,
    until_status,
)

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")

# the user's values: returned as given, their keys are not the API's to style
USER_VALUES = {"context", "input", "output", "metadata", "details", "row", "writes",
               "config", "staticValues", "checkpointData", "schema"}
# lists of points in time (a schedule's next fire times)
TIME_LISTS = {"times"}
# maps keyed by the user's names (step ids) whose values are the engine's
USER_KEYED = {"retryAttempts", "steps"}

CONTEXT = {"order_id": "o-1", "Odd Key": {"snake_case": 1, "kebab-key": [{"x_y": 2}]},
           "camelCase": True, "__dunder__": None}
METADATA = {"trace_id": "t-1", "Mixed-Case key": {"a_b": 1}}
RESUME = {"approved_by": "ann", "Odd-Key": {"c_d": 3}}
OUTPUT = {"order": {"id": "o-1", "total": 12.5}, "paid_at_ms": 1, "Odd Key": {"e_f": 4}}
DETAILS = {"failed_rule": "x", "Odd Key": {"g_h": [1, {"i_j": 2}]}}

ORDERS = TableDef(id="orders", columns=[ColumnDef(id="order_id", type="string"),
                                        ColumnDef(id="total", type="number")])


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait(20, "short nap")


@handler("ask")
async def ask(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval", timeout_ms=600_000)


@handler("pay")
async def pay(p: HandlerParams) -> StepResult:
    return Result.success(OUTPUT)


@handler("boom")
async def boom(p: HandlerParams) -> StepResult:
    return Result.failure("RULE_BROKEN", "a rule was broken", DETAILS)


@handler("kid-step")
async def kid_step(p: HandlerParams) -> StepResult:
    return Result.success({"kid_out": 1})


@handler("export", stateful=True)
async def export(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it")


JOBBED = flow("jobbed", step("x", "export", output_key="exported"))
CHECKPOINT = {"next_row": 4, "Odd Key": {"k_l": 5}}


TRIGGERS = [
    {"id": "hook", "kind": "webhook", "flowId": "kid", "tenantId": "tenant-a",
     "webhook": {"requireApiKey": True}},
    {"id": "nightly", "kind": "schedule", "flowId": "kid", "tenantId": "tenant-a",
     "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}},
]

FORMS = [
    {"id": "signup", "flowId": "kid", "tenantId": "tenant-a", "honeypot": "website",
     "schema": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                 "Odd Key": {"type": "object"}},
                "additionalProperties": False}},
]
SUBMITTED = {"order_id": "o-9", "Odd Key": {"snake_case": 1}}

KID = flow("kid", step("only", "kid-step", output_key="kidOut"))
SAMPLE = flow(
    "sample",
    step("nap", "nap", to="call", on_resume="call"),
    step("call", "sub-flow", config={"flowId": "kid"}, output_key="child", to="ask"),
    step("ask", "ask", output_key="answer", to="pay", on_resume="pay"),
    step("pay", "pay", output_key="paid", to="boom"),
    step("boom", "boom"),
    pipes=[{"id": "p-pay", "stepId": "pay", "tableId": "orders",
            "mappings": [{"sourcePath": "order.id", "columnId": "order_id"},
                         {"sourcePath": "order.total", "columnId": "total"}]}])


def check_schema(schema: dict[str, Any]) -> list[str]:
    """Problems in the OpenAPI schema: keys not camelCase, points in time that are not
    ``string``/``date-time``."""
    problems: list[str] = []

    def is_time(prop: dict[str, Any]) -> bool:
        options = prop.get("anyOf", [prop])
        return any(o.get("type") == "string" and o.get("format") == "date-time"
                   for o in options) and all(
            o.get("type") in ("null", "string") for o in options)

    for name, component in schema["components"]["schemas"].items():
        for key, prop in (component.get("properties") or {}).items():
            if not CAMEL.match(key):
                problems.append(f"{name}.{key}: not camelCase")
            if (key.endswith("At") or key == "timestamp") and not is_time(prop):
                problems.append(f"{name}.{key}: not an ISO date-time string: {prop}")
    if "camelCase" not in schema["components"]["schemas"]["EventOut"]["properties"][
            "data"].get("description", ""):
        problems.append("EventOut.data: its description does not give its key style")
    return problems


def check_body(value: Any, path: str, problems: list[str], times: set[str]) -> None:
    """Walk an answer: engine keys camelCase, points in time ISO UTC; the user's values
    are not walked (their keys are theirs)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_body(item, f"{path}[{i}]", problems, times)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{path}.{key}"
        if not CAMEL.match(key):
            problems.append(f"{where}: not camelCase")
        if key.endswith("At") or key == "timestamp":
            if item is not None:
                times.add(key)
                if not (isinstance(item, str) and ISO_UTC.match(item)):
                    problems.append(f"{where}: {item!r} is not an ISO-8601 UTC time")
            continue
        if key in USER_VALUES:
            continue
        if key in TIME_LISTS and isinstance(item, list):
            bad = [t for t in item if not (isinstance(t, str) and ISO_UTC.match(t))]
            if bad:
                problems.append(f"{where}: {bad!r} are not ISO-8601 UTC times")
            continue
        if key == "data" and not path.endswith("]"):
            continue  # resume data (in an event's data): the user's
        if key == "data" and (".rows[" in where or where.startswith("submission")):
            continue  # a row's values, a submission's data: the user's
        if key in USER_KEYED and isinstance(item, dict):
            for inner_key, inner in item.items():
                check_body(inner, f"{where}.{inner_key}", problems, times)
            continue
        check_body(item, where, problems, times)


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, headers=bearer(KEY_A), params=params)
    assert response.status_code == 200, f"{url}: {response.text}"
    return response.json()


async def test_every_get_answer_has_iso_times_camel_case_keys_and_the_users_keys() -> None:
    engine = Engine(flows=[SAMPLE, KID, JOBBED],
                    handlers=[nap, ask, pay, boom, kid_step, export],
                    options=EngineOptions(record_history=True), tables=[ORDERS],
                    workers=0,  # the jobs are driven by hand
                    triggers=TRIGGERS, forms=FORMS)
    async with api_client(engine=engine) as client:
        # given an execution that waits, starts a child, pipes a row and fails
        created = await client.post("/v1/executions", headers=bearer(KEY_A), json={
            "flowId": "sample", "context": CONTEXT, "metadata": METADATA,
            "idempotencyKey": "conventions-1", "timeout": {"executionTimeoutMs": 600_000}})
        assert created.status_code == 201, created.text
        execution_id = created.json()["execution"]["id"]
        waiting = await until_status(client, execution_id, "waiting", bearer(KEY_A))

        async def asking() -> dict[str, Any] | None:
            body: dict[str, Any] = await get(client, f"/v1/executions/{execution_id}")
            return body if body["currentStepId"] == "ask" and body["status"] == "waiting" \
                else None

        waiting = await eventually(asking, what="the wait for approval")
        resumed = await client.post(f"/v1/executions/{execution_id}/resume",
                                    headers=bearer(KEY_A),
                                    json={"token": waiting["resumeToken"], "data": RESUME})
        assert resumed.status_code == 200, resumed.text
        failed = await until_status(client, execution_id, "failed", bearer(KEY_A))
        child_id = failed["children"][0]
        # and another one, cancelled while it waits
        other = await client.post("/v1/executions", headers=bearer(KEY_A),
                                  json={"flowId": "sample", "context": CONTEXT})
        other_id = other.json()["execution"]["id"]
        await until_status(client, other_id, "waiting", bearer(KEY_A))
        cancel = await client.post(f"/v1/executions/{other_id}/cancel", headers=bearer(KEY_A),
                                   json={"reason": "changed my mind"})
        assert cancel.status_code == 200, cancel.text
        await until_status(client, other_id, "cancelled", bearer(KEY_A))

        # and jobs: one completed, one failed, one claimed (its execution waits on it)
        jobs = JobCommands(engine)
        job_ids: list[str] = []
        for end in (n.CMD_JOB_COMPLETE, n.CMD_JOB_FAIL, None):
            jobbed = await client.post("/v1/executions", headers=bearer(KEY_A),
                                       json={"flowId": "jobbed", "context": CONTEXT})
            jobbed_id = jobbed.json()["execution"]["id"]
            view = await jobs.claim(jobbed_id, (await jobs.pending(jobbed_id))["job_id"])
            job_ids.append(view["job_id"])
            await jobs.write(n.CMD_JOB_PROGRESS, view, percent=10, message="started")
            await jobs.write(n.CMD_JOB_CHECKPOINT, view, data=CHECKPOINT)
            if end is not None:
                await jobs.write(end, view, output=OUTPUT,
                                 error={"code": "E", "message": "m", "details": DETAILS})

        async def jobs_projected() -> dict[str, Any] | None:
            page: dict[str, Any] = await get(client, "/v1/jobs")
            statuses = sorted(j["status"] for j in page["items"])
            return page if statuses == ["claimed", "completed", "failed"] and \
                page["items"][0]["checkpointSeq"] == 1 else None

        job_page = await eventually(jobs_projected, what="three jobs projected")
        open_job = await get(client, f"/v1/jobs/{job_ids[2]}")

        # and triggers: a webhook that fired (and a delivery it refused), a schedule
        hook = await client.post("/v1/hooks/hook", headers=bearer(KEY_A), json=CONTEXT)
        assert hook.status_code == 202, hook.text
        assert (await client.post("/v1/hooks/hook", json=CONTEXT)).status_code == 401

        # and a form's submissions: taken, invalid, spam
        submitted = await client.post("/v1/forms/signup/submissions", json=SUBMITTED)
        assert submitted.status_code == 201, submitted.text
        invalid = await client.post("/v1/forms/signup/submissions", json={"order_id": 1})
        assert invalid.status_code == 422, invalid.text
        spam = await client.post("/v1/forms/signup/submissions", json={"website": "x"})
        assert spam.status_code == 201, spam.text

        # when every GET endpoint is read
        events = (await get(client, f"/v1/executions/{execution_id}/events"))["events"]
        answers: dict[str, Any] = {
            "health": (await client.get("/health")).json(),
            "list": await get(client, "/v1/executions"),
            "children": await get(client, "/v1/executions", parentExecutionId=execution_id),
            "execution": failed,
            "child": await get(client, f"/v1/executions/{child_id}"),
            "events": {"events": events},
            "childEvents": await get(client, f"/v1/executions/{child_id}/events"),
            "flows": await get(client, "/v1/flows"),
            "flow": await get(client, "/v1/flows/sample"),
            "tables": await get(client, "/v1/tables"),
            "rows": await get(client, "/v1/tables/orders/rows"),
            "jobs": job_page,
            "completedJob": await get(client, f"/v1/jobs/{job_ids[0]}"),
            "failedJob": await get(client, f"/v1/jobs/{job_ids[1]}"),
            "openJob": open_job,
            "jobExecution": await get(client, f"/v1/executions/{open_job['executionId']}"),
            "triggers": await get(client, "/v1/triggers"),
            "trigger": await get(client, "/v1/triggers/hook"),
            "schedule": await get(client, "/v1/triggers/nightly"),
            "next": await get(client, "/v1/triggers/nightly/next", count=3),
            "hooked": hook.json(),
            "forms": await get(client, "/v1/forms"),
            "form": await get(client, "/v1/forms/signup"),
            "submissions": await get(client, "/v1/forms/signup/submissions"),
            "submission": await get(client, "/v1/forms/signup/submissions/"
                                    + submitted.json()["submissionId"]),
            "submitted": submitted.json(),
            "invalidSubmission": invalid.json(),
        }
        for seq in range(1, len(events) + 1):
            answers[f"state{seq}"] = await get(client, f"/v1/executions/{execution_id}/state",
                                               seq=seq)
        schema = (await client.get("/openapi.json", headers=bearer(ADMIN))).json()

    # then the schema and every answer follow the conventions
    assert check_schema(schema) == []
    problems: list[str] = []
    times: set[str] = set()
    for name, body in answers.items():
        check_body(body, name, problems, times)
    assert problems == []
    assert {"createdAt", "updatedAt", "timestamp", "wakeAt", "waitStartedAt", "expiresAt",
            "idempotencyExpiresAt", "startedAt", "completedAt", "cancelledAt",
            "deadlineAt", "claimedAt", "leaseExpiresAt", "endedAt", "lastFiredAt",
            "nextFireAt", "submittedAt"} <= times

    # and the user's data comes back with its keys as given, wherever it appears
    assert failed["context"]["order_id"] == "o-1"
    assert {k: failed["context"][k] for k in CONTEXT} == CONTEXT
    assert failed["context"]["answer"] == RESUME
    assert failed["context"]["paid"] == OUTPUT
    assert failed["metadata"] == METADATA
    assert failed["error"]["details"] == DETAILS
    assert failed["error"]["stepId"] == "boom"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event["data"])
    start = by_type["execution.created"][0]
    assert start["context"] == CONTEXT
    assert start["metadata"] == METADATA
    assert start["flowId"] == "sample"
    assert start["timeout"] == {"executionTimeoutMs": 600_000}
    assert ISO_UTC.match(start["idempotencyExpiresAt"])
    assert "recordHistory" in start["options"]
    assert any(d.get("data") == RESUME for d in by_type["execution.resumed"])
    assert any(d.get("output") == OUTPUT for d in by_type["step.completed"])
    failure = next(d for d in by_type["step.completed"] if d["outcome"] == "failure")
    assert failure["error"]["details"] == DETAILS
    assert by_type["execution.failed"][0]["details"] == DETAILS
    assert by_type["pipe.row"][0]["row"] == {"order_id": "o-1", "total": 12.5}
    assert by_type["child.started"][0]["childExecutionId"] == child_id
    assert [r["data"] for r in answers["rows"]["rows"]] == [{"order_id": "o-1", "total": 12.5}]
    assert answers["child"]["parentExecutionId"] == execution_id
    assert answers["completedJob"]["output"] == OUTPUT
    assert answers["failedJob"]["error"]["details"] == DETAILS
    assert answers["openJob"]["checkpointData"] == CHECKPOINT
    assert answers["openJob"]["input"] == CONTEXT
    assert answers["jobExecution"]["job"]["jobId"] == job_ids[2]
    assert answers["jobExecution"]["job"]["progressMessage"] == "started"
    assert answers["submission"]["data"] == SUBMITTED
    assert sorted(i["status"] for i in answers["submissions"]["items"]) == [
        "accepted", "invalid", "spam"]
    assert answers["form"]["form"]["schema"]["properties"]["order_id"] == {"type": "string"}


def test_event_data_is_converted_per_its_schema_and_no_deeper() -> None:
    def event(type_: str, data: dict[str, Any]) -> Event:
        return Event(type=type_, execution_id="e", seq=1, event_id="e:1",
                     timestamp_ms=0, data=data)

    waiting = api_event_data(event("execution.waiting", {
        "step_id": "s", "kind": "time", "wake_at": 1_700_000_000_123, "extra_field": 1}))
    # the schema's fields camelCase, the point in time ISO; a field it does not know as is
    assert waiting == {"stepId": "s", "kind": "time", "wakeAt": "2023-11-14T22:13:20.123Z",
                       "extra_field": 1}
    resumed = api_event_data(event("execution.resumed", {
        "step_id": "s", "reason": "signal", "data": {"snake_case": {"step_id": 1}},
        "output_key": "answer_key"}))
    assert resumed == {"stepId": "s", "reason": "signal",
                       "data": {"snake_case": {"step_id": 1}}, "outputKey": "answer_key"}
    failed = api_event_data(event("step.completed", {
        "step_id": "s", "step_type": "t", "attempt": 1, "duration_ms": 2,
        "outcome": "failure", "error": {"code": "C", "message": "m", "step_id": "s",
                                        "timestamp": 0, "details": {"step_id": "mine"}}}))
    assert failed["error"] == {"code": "C", "message": "m", "stepId": "s",
                               "timestamp": "1970-01-01T00:00:00.000Z",
                               "details": {"step_id": "mine"}}
    # every event type the engine has a schema for is converted
    for type_, _version in EVENT_SCHEMAS:
        assert api_event_data(event(type_, {"step_id": "s"})).keys() <= {"stepId", "step_id"}
    # an event type without a schema is returned as it is
    assert api_event_data(event("some.future_type", {"a_b": 1})) == {"a_b": 1}
