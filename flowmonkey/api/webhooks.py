"""What ``POST /v1/hooks/{trigger_id}`` does (see :mod:`flowmonkey.api.routes_hooks`
for the order of the checks and the answers).

Secrets come from the API's vault provider by the name the definition gives; a
secret is never logged, stored or put in an event. A bad signature is recorded on
the trigger's audit trail (``trigger.fire`` with a failure) at most once per
``bad_signature_every_s`` per trigger; every one is counted in the metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Request

from flowmonkey.api.auth import Principal
from flowmonkey.api.body_limit import read_body
from flowmonkey.api.errors import ApiError, not_found
from flowmonkey.api.schemas import WebhookAccepted
from flowmonkey.api.signatures import check, default_header
from flowmonkey.engine import Engine
from flowmonkey.errors import CommandRejected
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.kernel.inputs import resolve_input
from flowmonkey.kernel.triggers import triggered_execution_id
from flowmonkey.model.trigger import Trigger, WebhookSettings
from flowmonkey.runtime.commands import command_record

log = logging.getLogger("flowmonkey.api")

#: headers never put in the arrival document (it is stored in events): credentials
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8_192
MAX_SOURCE_KEY_CHARS = 500
BAD_SIGNATURE = "BAD_SIGNATURE"
#: the executions this process's deliveries fired, newest last (see Webhooks._fire)
MAX_RECENT_FIRED = 10_000

UNAUTHORIZED = ApiError(401, "UNAUTHENTICATED", "unauthorized")
"""The answer to any refused signature: the same, whatever was wrong."""


class _BadSignature(ApiError):
    outcome = "bad_signature"


class Webhooks:
    """The webhook deliveries of one API app."""

    def __init__(self, engine: Engine, *, bad_signature_every_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.bad_signature_every_s = bad_signature_every_s
        self._monotonic = monotonic
        self._last_recorded: dict[str, float] = {}  # trigger id -> when (known ids only)
        self._fired: OrderedDict[str, None] = OrderedDict()

    def _count(self, trigger_id: str, outcome: str) -> None:
        self.engine.metrics.trigger_webhooks.labels(trigger_id, outcome).inc()

    async def _trigger(self, trigger_id: str) -> tuple[Trigger, WebhookSettings]:
        # the projection holds what the kernel registered (the latest definition); the
        # registry what this process was given or read from the triggers topic
        record = await self.engine.projection.get_trigger(trigger_id)
        trigger = record.trigger() if record is not None else \
            self.engine.triggers.get(trigger_id)
        if trigger is None or trigger.webhook is None:
            raise not_found("trigger", trigger_id)
        return trigger, trigger.webhook

    async def deliver(self, trigger_id: str, request: Request) -> WebhookAccepted:
        trigger, settings = await self._trigger(trigger_id)
        try:
            return await self._deliver(trigger, settings, request)
        except ApiError as exc:
            self._count(trigger.id, getattr(exc, "outcome", None)
                        or _OUTCOMES.get(exc.code, "failed"))
            raise

    async def _deliver(self, trigger: Trigger, settings: WebhookSettings,
                       request: Request) -> WebhookAccepted:
        if settings.require_api_key:
            self._authorize(trigger, request)
        body = await read_body(request, settings.max_body_bytes)
        header_name = settings.header or default_header(settings.signature)
        if settings.secret is not None:
            secret = await self._secret(trigger, settings.secret)
            verdict = check(settings.signature, secret, body, request.headers.get(header_name),
                            now_s=time.time(), tolerance_s=settings.tolerance_s)
            del secret
            if not verdict.ok:
                await self._record_bad_signature(trigger, verdict.reason or "mismatch")
                raise _BadSignature(UNAUTHORIZED.status, UNAUTHORIZED.code,
                                    UNAUTHORIZED.message)
        arrival = _arrival(request, body, header_name, settings)
        source_key = _source_key(trigger, arrival)
        accepted = await self._fire(trigger, arrival, source_key)
        self._count(trigger.id, "duplicate" if accepted.duplicate else "accepted")
        return accepted

    def _authorize(self, trigger: Trigger, request: Request) -> None:
        principal: Principal = request.app.state.authenticate(request)
        if principal.tenant_id is not None and principal.tenant_id != trigger.tenant_id:
            raise not_found("trigger", trigger.id)

    async def _secret(self, trigger: Trigger, name: str) -> str:
        vault = self.engine.vault
        secret = await vault.get_secret(name) if vault is not None else None
        if not secret:
            log.error("webhook trigger %r: its secret %r is not in the vault%s", trigger.id,
                      name, "" if vault is not None else " (the API has no vault provider)")
            raise ApiError(503, "TRIGGER_SECRET_UNAVAILABLE",
                           "the webhook's secret is not available; the server log says "
                           "which")
        return secret

    async def _record_bad_signature(self, trigger: Trigger, reason: str) -> None:
        now = self._monotonic()
        last = self._last_recorded.get(trigger.id)
        if last is not None and now - last < self.bad_signature_every_s:
            return
        self._last_recorded[trigger.id] = now
        engine = self.engine
        command = Command(
            type=n.CMD_TRIGGER_FIRE, command_id=uuid.uuid4().hex,
            execution_id=trigger.entity_id, timestamp_ms=engine.clock.now_ms(),
            tenant_id=None, data={
                "source": {"kind": "webhook", "key": "refused:" + uuid.uuid4().hex},
                "failure": {"code": BAD_SIGNATURE,
                            "message": f"a webhook delivery's signature was refused "
                                       f"({reason})"}})
        try:
            # not waited for: the 401 does not depend on it
            await engine.log.publish([command_record(engine.topics.commands, command,
                                                     trigger.entity_id)])
        except Exception:  # the 401 is the answer whatever the log does
            log.warning("could not record a refused webhook signature of trigger %r",
                        trigger.id, exc_info=True)

    async def _fire(self, trigger: Trigger, arrival: dict[str, Any],
                    source_key: str) -> WebhookAccepted:
        # the execution's id derives from the source: one that exists already is a
        # retried delivery's (the kernel refuses to start it twice)
        expected = triggered_execution_id(trigger.id, "webhook", source_key)
        # A 202 is answered once the trigger fired, before the execution's start is
        # projected: a retry arriving in between is told it is one by this process's
        # memory of what it fired (retries to another process are told by the
        # projection, once the start is applied there)
        seen = expected in self._fired or \
            await self.engine.projection.get(expected) is not None
        try:
            execution_id = await self.engine.fire_trigger(trigger.id, arrival, source_key,
                                                          kind="webhook")
        except CommandRejected as exc:
            if exc.code == "TRIGGER_DISABLED":
                raise ApiError(409, "TRIGGER_DISABLED",
                               f"trigger {trigger.id!r} is paused") from None
            if exc.code == "MAPPING_ERROR":
                raise ApiError(422, "MAPPING_ERROR", exc.message) from None
            raise
        self._fired[execution_id] = None
        self._fired.move_to_end(execution_id)
        if len(self._fired) > MAX_RECENT_FIRED:
            self._fired.popitem(last=False)
        return WebhookAccepted(execution_id=execution_id, trigger_id=trigger.id,
                               duplicate=seen)


_OUTCOMES = {"UNAUTHENTICATED": "unauthorized", "BODY_TOO_LARGE": "too_large",
             "INVALID_BODY": "invalid_body", "TRIGGER_DISABLED": "disabled",
             "TRIGGER_NOT_FOUND": "unauthorized", "FORBIDDEN": "unauthorized"}


def _arrival(request: Request, body: bytes, signature_header: str,
             settings: WebhookSettings) -> dict[str, Any]:
    """The webhook arrival document (see :mod:`flowmonkey.model.trigger`)."""
    try:
        parsed = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        raise ApiError(400, "INVALID_BODY", "the webhook body is not JSON") from None
    left_out = SECRET_HEADERS | {signature_header.lower()}
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if len(headers) >= MAX_HEADERS:
            break
        if name not in left_out:
            headers[name] = value[:MAX_HEADER_CHARS]
    query = {k: v[:MAX_HEADER_CHARS] for k, v in list(request.query_params.items())[:MAX_HEADERS]}
    arrival: dict[str, Any] = {"body": parsed, "headers": headers, "query": query}
    if settings.delivery_header is not None:
        delivery = request.headers.get(settings.delivery_header)
        if delivery:
            arrival["deliveryId"] = delivery[:MAX_SOURCE_KEY_CHARS]
    return arrival


def _source_key(trigger: Trigger, arrival: dict[str, Any]) -> str:
    """The delivery's dedup key: its delivery id, else the idempotency key selected
    from what arrived, else a fresh one (every delivery then starts an execution)."""
    delivery = arrival.get("deliveryId")
    if isinstance(delivery, str) and delivery:
        return "delivery:" + delivery
    if trigger.idempotency_key is not None:
        try:
            value = resolve_input(trigger.idempotency_key, arrival)
        except Exception:  # the kernel reports the mapping error itself
            value = None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return "key:" + str(value)[:MAX_SOURCE_KEY_CHARS]
    return "request:" + uuid.uuid4().hex
