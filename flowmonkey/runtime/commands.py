"""Commands out and their refusals back: the record a command is published as, a
fresh execution id routed like a key, and the error a rejection raises."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flowmonkey.errors import (
    CommandRejected,
    ExecutionNotFoundError,
    FlowMonkeyError,
    FlowNotFoundError,
    ResumeTokenError,
    UnstorableValueError,
)
from flowmonkey.events import names as n
from flowmonkey.events.codec import encode_command, headers_for
from flowmonkey.events.envelope import Command, Event
from flowmonkey.kernel.decide import idempotency_scope
from flowmonkey.log.base import OutRecord
from flowmonkey.log.partitioner import partition_for
from flowmonkey.model.limits import TimeoutConfig
from flowmonkey.model.storable import LOG_MAX_DEPTH, UnstorableValue, check_body

TOKEN_CODES = frozenset({n.REJECT_INVALID_TOKEN, n.REJECT_TOKEN_USED,
                         n.REJECT_TOKEN_EXPIRED, n.REJECT_TOKEN_REVOKED})


def command_record(topic: str, command: Command, key: str) -> OutRecord:
    """The record that carries ``command`` on the commands ``topic``, routed by ``key``."""
    return OutRecord(topic, encoded(command), key=key.encode(),
                     headers=headers_for(command.type, command.version))


def encoded(command: Command) -> bytes:
    """The command's record value; a value the log cannot carry is the caller's error,
    named by its path, and nothing is sent (the HTTP API refuses such bodies earlier)."""
    try:
        return encode_command(command)
    except (TypeError, ValueError) as exc:  # orjson's encode errors are TypeErrors
        try:
            check_body(command.data, max_depth=LOG_MAX_DEPTH)
        except UnstorableValue as found:
            raise UnstorableValueError(f"{command.type}: {found}", field=found.path) from None
        raise UnstorableValueError(f"{command.type}: a value the log cannot carry: {exc}",
                                   field="(command)") from None


def start_data(flow_id: str, flow_version: str | None, context: Mapping[str, Any] | None,
               options: Mapping[str, Any], *, idempotency_key: str | None,
               idempotency_window_ms: int | None, parent_execution_id: str | None,
               metadata: Mapping[str, Any] | None,
               timeout: TimeoutConfig | Mapping[str, Any] | None,
               allow_unpublished: bool) -> dict[str, Any]:
    """The data of a start command (``options``: what the execution is pinned to)."""
    timeout_data = (timeout.model_dump(exclude_none=True) if isinstance(timeout, TimeoutConfig)
                    else TimeoutConfig.model_validate(timeout).model_dump(exclude_none=True)
                    if timeout else None)
    return {
        "flow_id": flow_id, "flow_version": flow_version,
        "context": dict(context or {}),
        "options": dict(options),
        "idempotency_key": idempotency_key,
        "idempotency_window_ms": idempotency_window_ms,
        "parent_execution_id": parent_execution_id,
        "metadata": dict(metadata) if metadata is not None else None,
        "timeout": timeout_data or None,
        "allow_unpublished": allow_unpublished,
    }


def start_route(execution_id: str | None, idempotency_key: str | None, tenant_id: str | None,
                flow_id: str, partitions: int) -> tuple[str, str]:
    """A start's execution id and the key it is routed by: with an idempotency key, the
    key's scope (a duplicate start lands on the partition that decided the first)."""
    if idempotency_key:
        key = idempotency_scope(tenant_id, flow_id, idempotency_key)
        return execution_id or id_in_partition_of(key, partitions), key
    new_id = execution_id or str(uuid.uuid4())
    return new_id, new_id


def id_in_partition_of(key: str, partitions: int) -> str:
    """A fresh execution id that routes to the same partition as ``key``."""
    target = partition_for(key.encode(), partitions)
    while True:
        candidate = str(uuid.uuid4())
        if partition_for(candidate.encode(), partitions) == target:
            return candidate


def raise_if_rejected(answer: Event) -> Event:
    """``answer``, unless it is a ``command.rejected``: then its error is raised."""
    if answer.type == n.COMMAND_REJECTED:
        raise rejection_error(answer)
    return answer


def rejection_error(event: Event) -> FlowMonkeyError:
    """The error a ``command.rejected`` answer raises for the caller."""
    code = str(event.data.get("code", "COMMAND_REJECTED"))
    reason = str(event.data.get("reason", "command rejected"))
    if code == n.REJECT_FLOW_NOT_FOUND:
        return FlowNotFoundError(reason)
    if code == n.REJECT_EXECUTION_NOT_FOUND:
        return ExecutionNotFoundError(reason)
    if code in TOKEN_CODES:
        return ResumeTokenError(reason, code=code)
    return CommandRejected(reason, code=code)
