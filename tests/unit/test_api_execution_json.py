"""The executions routes' JSON written from the engine's model (execution_json) is
byte for byte what their declared response model, ExecutionOut, writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson

from flowmonkey.api.execution_json import execution_dict, json_response
from flowmonkey.api.schemas import ExecutionOut
from flowmonkey.model.execution import (
    Cancellation,
    Execution,
    ExecutionError,
    ExecutionStatus,
    HistoryEntry,
)
from flowmonkey.model.job import JobStatus, JobSummary
from flowmonkey.model.limits import TimeoutConfig

T0 = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)


def written(execution: Execution) -> bytes:
    return ExecutionOut.of(execution).model_dump_json(by_alias=True).encode()


def everything() -> Execution:
    """An execution with every optional part set, times in and out of UTC and naive."""
    entry = HistoryEntry(step_id="s1", handler_type="echo", outcome="success", attempt=2,
                         input={"snake_key": [1, 2.5, None, True]}, output={"ü": "✓"},
                         error={"code": "X", "details": {"inner_key": 1}},
                         started_at=T0, completed_at=T0 + timedelta(milliseconds=7),
                         duration_ms=7)
    return Execution(
        id="e-1", flow_id="f", flow_version="2", status=ExecutionStatus.WAITING,
        current_step_id="s2",
        context={"user_key": {"nested_key": [1, 2**64 - 1, -(2**63), 1e300, 0.1, "x"]},
                 "empty": {}, "unicode": "ça ✓ \u2028"},
        history=[entry, entry.model_copy(update={"started_at": datetime(2026, 2, 1)})],
        retry_attempts={"s1": 1}, wake_at=T0 + timedelta(hours=1),
        wait_reason="approval",
        wait_started_at=datetime(2026, 1, 31, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        resume_token="tok",
        job=JobSummary(job_id="j", type="t", status=JobStatus.CLAIMED, epoch=3,
                       worker_id="w", progress_percent=12.5, progress_message="half"),
        error=ExecutionError(code="E", message="m", step_id="s1", details={"a_b": 1},
                             timestamp=T0),
        metadata={"meta_key": "v"}, idempotency_key="k", idempotency_expires_at=T0,
        tenant_id="tenant-a", parent_execution_id="p", children=["c1", "c2"],
        cancellation=Cancellation(source="user", reason="r", cancelled_at=T0),
        timeout_config=TimeoutConfig(execution_timeout_ms=1000, wait_timeout_ms=10),
        step_count=4, created_at=T0, updated_at=T0 + timedelta(seconds=1), seq=9)


def test_every_field_is_written_as_the_response_model_writes_it() -> None:
    execution = everything()
    assert orjson.dumps(execution_dict(execution)) == written(execution)


def test_a_bare_execution_is_written_as_the_response_model_writes_it() -> None:
    execution = Execution(id="e-2", flow_id="f", flow_version="1",
                          status=ExecutionStatus.PENDING, created_at=T0, updated_at=T0)
    assert orjson.dumps(execution_dict(execution)) == written(execution)


def test_an_error_without_a_timestamp_and_no_cancellation() -> None:
    execution = everything().model_copy(update={
        "error": ExecutionError(code="E", message="m"), "cancellation": None,
        "wake_at": None, "status": ExecutionStatus.FAILED})
    assert orjson.dumps(execution_dict(execution)) == written(execution)


def test_the_response_is_compact_json_with_its_status_and_headers() -> None:
    response = json_response({"a": [1, "é"]}, 201, {"Location": "/x"})
    assert response.body == '{"a":[1,"é"]}'.encode()
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["location"] == "/x"
