"""Trigger definitions: what starts a flow without code (a signed webhook, a cron
schedule, another execution's event, a record on an external Kafka topic).

A trigger names the flow it starts (and optionally its version), the tenant the
execution belongs to, how the execution's context is built from what arrived (an
input selector, the same ``key``/``keys``/``path``/``template``/``full``/``static``
selectors and ``${path}`` templates as a step's input, read from the *arrival*
document), an optional idempotency key taken from what arrived, and ``enabled``.
Exactly one of ``webhook``, ``schedule``, ``event`` and ``topic`` holds the settings
of its ``kind``.

What each kind's arrival document holds (what ``context`` and ``idempotency_key``
select from):

* webhook: ``body`` (the parsed JSON body), ``headers`` (lower-case names; the
  signature header left out), ``query``, ``deliveryId`` (the delivery id header's
  value, if any);
* schedule: ``trigger`` (its id), ``tick`` (the tick as ISO-8601 UTC), ``tickLocal``
  (in the schedule's timezone), ``timezone``, ``scheduledAtMs``;
* event: ``event`` (``type``, ``executionId``, ``flowId``, ``seq``, ``data``) and
  ``execution`` (``id``, ``flowId``, ``context``);
* topic: ``value`` (the record's JSON value), ``key``, ``topic``, ``partition``,
  ``offset``, ``timestampMs``.

Without ``context`` the execution's context is: the body (webhook), the arrival
document (schedule), the source execution's context (event), the value (topic); a
value that is not an object is wrapped as ``{"value": ...}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flowmonkey.model.base import FrozenModel
from flowmonkey.model.selectors import InputSelector

TriggerKind = Literal["webhook", "schedule", "event", "topic"]
KINDS: tuple[TriggerKind, ...] = ("webhook", "schedule", "event", "topic")

TRIGGER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ENTITY_PREFIX = "trigger:"
"""A trigger's commands and events carry ``trigger:<id>`` where an execution's carry
its id: the key that places them on a partition (no execution id may start so)."""

DEFAULT_WEBHOOK_BODY_BYTES = 1_048_576
MAX_WEBHOOK_BODY_BYTES = 10 * 1_048_576
DEFAULT_TOLERANCE_S = 300
DEFAULT_CATCH_UP_LIMIT = 100
MAX_CATCH_UP_LIMIT = 10_000


def entity_id(trigger_id: str) -> str:
    """The key of a trigger's commands and events."""
    return ENTITY_PREFIX + trigger_id


class WebhookSettings(FrozenModel):
    """``POST /v1/hooks/{trigger_id}``. ``signature``: ``github`` (``sha256=<hex>``,
    HMAC-SHA256 of the raw body, in ``X-Hub-Signature-256`` unless ``header`` names
    another) or ``stripe`` (``t=<unix s>,v1=<hex>`` over ``"<t>.<body>"``, in
    ``Stripe-Signature``, refused past ``tolerance_s``). ``secret`` is the name of the
    vault secret (the secret itself is never in a definition or an event); a webhook
    without one must require an API key."""

    secret: str | None = Field(default=None, min_length=1, max_length=200)
    signature: Literal["github", "stripe"] = "github"
    header: str | None = Field(default=None, min_length=1, max_length=100)
    tolerance_s: int = Field(default=DEFAULT_TOLERANCE_S, ge=1, le=86_400)
    delivery_header: str | None = Field(default=None, min_length=1, max_length=100)
    require_api_key: bool = False
    max_body_bytes: int = Field(default=DEFAULT_WEBHOOK_BODY_BYTES, ge=1,
                                le=MAX_WEBHOOK_BODY_BYTES)

    @model_validator(mode="after")
    def _authenticated(self) -> WebhookSettings:
        if self.secret is None and not self.require_api_key:
            raise ValueError("a webhook needs a secret (the vault secret's name) or "
                             "requireApiKey: true")
        return self


class ScheduleSettings(FrozenModel):
    """A cron expression (5 fields, or 6 with seconds first) in an IANA timezone.
    ``overlap``: ``allow`` runs or ``skip`` while the previous run is active.
    ``catch_up`` after downtime: ``skip`` the missed ticks (the latest still fires if
    it is at most 60 s and half a period late), fire ``once`` for them (the latest), or
    fire ``all`` of them up to ``catch_up_limit`` (the most recent ones, oldest first;
    earlier ones are skipped).

    Daylight-saving changes (kernel/cron.py, Vixie cron's rules): a schedule with a
    fixed hour fires once for a local time in the spring-forward gap, shifted by the
    gap (a daily 02:30 fires at 03:30 that day), and once for a local time that the
    fall-back fold repeats (at its first occurrence); a schedule whose hour field is
    ``*`` has no ticks in the gap and fires in both passes of the fold (an hourly
    schedule has 23 and 25 ticks on those days). Each tick fires once, with the
    idempotency key ``trigger:<id>@<tick as ISO-8601 UTC>`` unless the trigger has an
    ``idempotency_key`` selector."""

    cron: str = Field(min_length=1, max_length=200)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    overlap: Literal["allow", "skip"] = "allow"
    catch_up: Literal["skip", "once", "all"] = "once"
    catch_up_limit: int = Field(default=DEFAULT_CATCH_UP_LIMIT, ge=1, le=MAX_CATCH_UP_LIMIT)


Operator = Literal["eq", "neq", "gt", "gte", "lt", "lte", "contains", "exists"]


class Condition(FrozenModel):
    """``path`` (a dot path into the event trigger's arrival document) compared with
    ``value`` by ``operator`` (no type coercion, as the ``conditional`` handler)."""

    path: str = Field(min_length=1, max_length=500)
    operator: Operator = "eq"
    value: Any = None


class EventSettings(FrozenModel):
    """Start the trigger's flow when an execution of ``flow_id`` emits an event of
    ``type`` (``execution.completed`` by default) and every condition of ``when``
    holds; once per source event."""

    flow_id: str = Field(min_length=1)
    type: str = Field(default="execution.completed", min_length=1, max_length=100)
    when: list[Condition] = Field(default_factory=list, max_length=20)


class TopicSettings(FrozenModel):
    """Start the trigger's flow for each record of an external Kafka ``topic`` (JSON
    values), read in the consumer ``group`` (default ``<prefix>-trigger-<id>``)."""

    topic: str = Field(min_length=1, max_length=249)
    group: str | None = Field(default=None, min_length=1, max_length=249)


class Trigger(FrozenModel):
    """A trigger definition (camelCase in files, snake_case in Python)."""

    id: str = Field(pattern=TRIGGER_ID_PATTERN)
    kind: TriggerKind
    flow_id: str = Field(min_length=1)
    flow_version: str | None = None
    tenant_id: str | None = None
    description: str | None = Field(default=None, max_length=1_000)
    enabled: bool = True
    context: InputSelector | None = None
    idempotency_key: InputSelector | None = None
    webhook: WebhookSettings | None = None
    schedule: ScheduleSettings | None = None
    event: EventSettings | None = None
    topic: TopicSettings | None = None

    @model_validator(mode="after")
    def _settings_of_its_kind(self) -> Trigger:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if given != [self.kind]:
            if self.kind not in given:
                raise ValueError(f"a {self.kind} trigger needs its settings under "
                                 f"{self.kind!r}")
            others = ", ".join(repr(k) for k in given if k != self.kind)
            raise ValueError(f"a {self.kind} trigger has no {others} settings")
        return self

    @property
    def entity_id(self) -> str:
        return entity_id(self.id)

    @property
    def settings(self) -> WebhookSettings | ScheduleSettings | EventSettings | TopicSettings:
        found = getattr(self, self.kind)
        assert found is not None  # (the validator checked it)
        return found  # type: ignore[no-any-return]
