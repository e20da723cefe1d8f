"""An execution's JSON answer, written without a second pydantic model.

``ExecutionOut.of(execution)`` validates the whole execution again (``from_attributes``)
only to change how its points in time are written; on ``GET /v1/executions/{id}`` that
cost more CPU than reading the execution (docs/performance.md). :func:`execution_dict`
gives the same JSON from the engine's own model: its pydantic JSON dump, with the
points in time :class:`~flowmonkey.api.schemas.ExecutionOut` declares as
:data:`~flowmonkey.api.times.UtcDateTime` written as the API writes them. The routes
keep ``ExecutionOut`` as their declared response model (the OpenAPI schema), and
tests/unit/test_api_execution_json.py holds the two forms equal byte for byte.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from flowmonkey.api.times import iso_utc
from flowmonkey.model.execution import Execution

#: ExecutionOut's top-level UtcDateTime fields: (JSON key, attribute)
_TIMES = (("wakeAt", "wake_at"), ("waitStartedAt", "wait_started_at"),
          ("idempotencyExpiresAt", "idempotency_expires_at"), ("createdAt", "created_at"),
          ("updatedAt", "updated_at"))


def execution_dict(execution: Execution) -> dict[str, Any]:
    """What ``ExecutionOut.of(execution)`` writes as JSON, as JSON-ready values."""
    out = execution.model_dump(mode="json", by_alias=True)
    for key, attribute in _TIMES:
        when = getattr(execution, attribute)
        if when is not None:
            out[key] = iso_utc(when)
    error, cancellation = execution.error, execution.cancellation
    if error is not None and error.timestamp is not None:
        out["error"]["timestamp"] = iso_utc(error.timestamp)
    if cancellation is not None:
        out["cancellation"]["cancelledAt"] = iso_utc(cancellation.cancelled_at)
    for entry, written in zip(execution.history, out["history"], strict=True):
        written["startedAt"] = iso_utc(entry.started_at)
        written["completedAt"] = iso_utc(entry.completed_at)
    return out


def json_response(content: Any, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """JSON-ready ``content`` as FastAPI answers a response model: compact UTF-8."""
    return Response(orjson.dumps(content), status_code=status_code, headers=headers,
                    media_type="application/json")
