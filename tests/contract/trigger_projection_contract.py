"""The triggers every :class:`~flowmonkey.projections.base.Projection` backend must keep.

A backend's test module subclasses :class:`TriggerProjectionContract` and provides the
``projection`` fixture (a started, empty projection). Triggers are driven by the
events of their entities (``trigger:<id>``), written by hand here, and read through
``get_trigger``/``list_triggers``; executions' queries never show them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.model.trigger import entity_id
from flowmonkey.projections.base import Projection
from flowmonkey.projections.rows import InvalidCursorError
from tests.contract.projection_contract import T0, created, ev


def definition(trigger_id: str, *, kind: str = "webhook", flow: str = "orders",
               tenant: str | None = "acme", enabled: bool = True,
               cron: str = "0 * * * *") -> dict[str, Any]:
    settings: dict[str, Any] = {
        "webhook": {"secret": "gh-secret"},
        "schedule": {"cron": cron, "timezone": "UTC"},
        "event": {"flowId": "other"},
        "topic": {"topic": "orders-in"},
    }[kind]
    found: dict[str, Any] = {"id": trigger_id, "kind": kind, "flowId": flow,
                             "enabled": enabled, kind: settings}
    if tenant is not None:
        found["tenantId"] = tenant
    return found


def registered(trigger_id: str, seq: int = 1, *, ts: int | None = None,
               **kwargs: Any) -> Event:
    tenant = kwargs.get("tenant", "acme")
    return ev(n.TRIGGER_REGISTERED, entity_id(trigger_id), seq,
              {"definition": definition(trigger_id, **kwargs), "by": "deploy",
               "changed": seq > 1}, tenant=tenant, ts=ts)


def tev(type: str, trigger_id: str, seq: int, data: dict[str, Any] | None = None, *,
        tenant: str | None = "acme", ts: int | None = None) -> Event:
    return ev(type, entity_id(trigger_id), seq, data or {}, tenant=tenant, ts=ts)


def fired(trigger_id: str, seq: int, execution_id: str, **kwargs: Any) -> Event:
    return tev(n.TRIGGER_FIRED, trigger_id, seq, {
        "execution_id": execution_id, "flow_id": "orders", "flow_version": None,
        "source": {"kind": "webhook", "key": f"d-{seq}"}, "idempotency_key": None},
        **kwargs)


def ms(when: datetime | None) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None


class TriggerProjectionContract:
    @pytest.fixture
    async def projection(self) -> AsyncIterator[Projection]:
        raise NotImplementedError("a backend's contract test provides a started Projection")
        yield  # noqa: PT022 - an async generator, so that overrides may tear down

    async def test_a_registered_trigger_is_kept_with_its_definition(
            self, projection: Projection) -> None:
        await projection.apply_events([registered("hook")])
        record = await projection.get_trigger("hook")
        assert record is not None
        assert (record.id, record.kind, record.flow_id, record.tenant_id, record.enabled) == (
            "hook", "webhook", "orders", "acme", True)
        assert record.definition == definition("hook")
        assert record.trigger().webhook is not None
        assert (record.fired, record.failed, record.skipped) == (0, 0, 0)
        assert record.last_fired_at is None
        assert record.next_fire_at is None
        assert ms(record.created_at) == T0 + 1
        assert ms(record.updated_at) == T0 + 1

    async def test_fired_failed_and_skipped_are_counted(self, projection: Projection) -> None:
        await projection.apply_events([
            registered("hook"), fired("hook", 2, "trg-1"), fired("hook", 3, "trg-2"),
            tev(n.TRIGGER_FAILED, "hook", 4, {"code": "BAD_SIGNATURE", "message": "no",
                                              "source": {"kind": "webhook", "key": "x"}}),
            tev(n.TRIGGER_SKIPPED, "hook", 5, {"reason": "overlap", "tick": T0})])
        record = await projection.get_trigger("hook")
        assert record is not None
        assert (record.fired, record.failed, record.skipped) == (2, 1, 1)
        assert (ms(record.last_fired_at), record.last_execution_id) == (T0 + 3, "trg-2")
        assert ms(record.last_failed_at) == T0 + 4
        assert record.last_failure == {"code": "BAD_SIGNATURE", "message": "no"}
        assert ms(record.updated_at) == T0 + 5

    async def test_disable_enable_and_a_redeploy_keeps_the_pause(
            self, projection: Projection) -> None:
        await projection.apply_events([registered("hook"),
                                       tev(n.TRIGGER_DISABLED, "hook", 2, {"by": "ann"})])
        record = await projection.get_trigger("hook")
        assert record is not None
        assert record.enabled is False
        # a changed definition (registered again) does not enable it
        await projection.apply_events([registered("hook", 3, flow="invoices")])
        record = await projection.get_trigger("hook")
        assert record is not None
        assert (record.enabled, record.flow_id, ms(record.created_at)) == (
            False, "invoices", T0 + 1)
        await projection.apply_events([tev(n.TRIGGER_ENABLED, "hook", 4)])
        record = await projection.get_trigger("hook")
        assert record is not None
        assert record.enabled is True

    async def test_a_definition_registered_disabled_starts_disabled(
            self, projection: Projection) -> None:
        await projection.apply_events([registered("off", enabled=False)])
        record = await projection.get_trigger("off")
        assert record is not None
        assert record.enabled is False

    async def test_an_enabled_schedule_shows_its_next_tick(
            self, projection: Projection) -> None:
        await projection.apply_events([registered("hourly", kind="schedule")])
        record = await projection.get_trigger("hourly")
        assert record is not None
        assert record.next_fire_at is not None
        # T0 + 1 ms is 2023-11-14T22:13:20.001Z: the next whole hour
        assert record.next_fire_at == datetime(2023, 11, 14, 23, 0, tzinfo=UTC)
        await projection.apply_events([tev(n.TRIGGER_DISABLED, "hourly", 2)])
        record = await projection.get_trigger("hourly")
        assert record is not None
        assert record.next_fire_at is None

    async def test_events_apply_once_by_seq(self, projection: Projection) -> None:
        batch = [registered("hook"), fired("hook", 2, "trg-1")]
        await projection.apply_events(batch)
        await projection.apply_events(batch)
        await projection.apply_events([fired("hook", 2, "trg-1")])
        record = await projection.get_trigger("hook")
        assert record is not None
        assert record.fired == 1

    async def test_events_of_an_unregistered_trigger_change_nothing(
            self, projection: Projection) -> None:
        await projection.apply_events([fired("ghost", 1, "trg-1")])
        assert await projection.get_trigger("ghost") is None

    async def test_tenant_scoping(self, projection: Projection) -> None:
        await projection.apply_events([registered("a", tenant="acme"),
                                       registered("b", tenant="globex"),
                                       registered("c", tenant=None)])
        assert await projection.get_trigger("a", tenant_id="acme") is not None
        assert await projection.get_trigger("a", tenant_id="globex") is None
        page = await projection.list_triggers(tenant_id="globex")
        assert [t.id for t in page.items] == ["b"]
        page = await projection.list_triggers()
        assert [t.id for t in page.items] == ["a", "b", "c"]

    async def test_listing_filters_and_pages_by_id(self, projection: Projection) -> None:
        await projection.apply_events([
            registered("t3", kind="schedule"), registered("t1"),
            registered("t2", flow="invoices"), registered("t4", kind="event"),
            tev(n.TRIGGER_DISABLED, "t1", 2)])
        assert [t.id for t in (await projection.list_triggers(kind="schedule")).items] == [
            "t3"]
        assert [t.id for t in (await projection.list_triggers(flow_id="invoices")).items] \
            == ["t2"]
        assert [t.id for t in (await projection.list_triggers(enabled=False)).items] == [
            "t1"]
        first = await projection.list_triggers(limit=3)
        assert [t.id for t in first.items] == ["t1", "t2", "t3"]
        assert first.next_cursor is not None
        rest = await projection.list_triggers(limit=3, cursor=first.next_cursor)
        assert ([t.id for t in rest.items], rest.next_cursor) == (["t4"], None)
        with pytest.raises(InvalidCursorError):
            await projection.list_triggers(cursor="not-a-cursor")

    async def test_trigger_entities_are_never_executions(
            self, projection: Projection) -> None:
        await projection.apply_events([created("e1"), registered("hook"),
                                       fired("hook", 2, "trg-1")])
        page = await projection.list()
        assert [e.id for e in page.items] == ["e1"]
        assert await projection.get(entity_id("hook")) is None
        # the entity's events stay readable: the trigger's audit trail
        history = await projection.history(entity_id("hook"))
        assert [e.type for e in history] == [n.TRIGGER_REGISTERED, n.TRIGGER_FIRED]
