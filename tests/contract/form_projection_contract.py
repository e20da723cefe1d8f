"""The form submissions every :class:`~flowmonkey.projections.base.Projection` backend
must keep.

A backend's test module subclasses :class:`FormProjectionContract` and provides the
``projection`` fixture (a started, empty projection). Submissions are driven by the
events of their form entities (``form:<id>``), written by hand here, and read through
``get_submission``/``list_submissions``; executions' queries never show form entities.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.model.form import entity_id
from flowmonkey.projections.base import Projection
from flowmonkey.projections.rows import InvalidCursorError
from tests.contract.projection_contract import T0, created, ev


def registered(form_id: str = "signup", *, tenant: str | None = "acme") -> Event:
    return ev(n.FORM_REGISTERED, entity_id(form_id), 1,
              {"definition": {"id": form_id, "flowId": "onboard", "tenantId": tenant},
               "by": "deploy", "changed": False}, tenant=tenant)


def submitted(seq: int, submission_id: str, *, form_id: str = "signup",
              tenant: str | None = "acme", ts: int | None = None,
              data: dict[str, Any] | None = None, resumed: bool = False) -> Event:
    return ev(n.FORM_SUBMITTED, entity_id(form_id), seq, {
        "submission_id": submission_id, "execution_id": f"frm-{submission_id}",
        "data": data if data is not None else {"email": f"{submission_id}@example.com"},
        "resumed": resumed, "address_key": "k", "content_hash": f"h-{submission_id}"},
        tenant=tenant, ts=ts)


def rejected(seq: int, submission_id: str, reason: str, *, form_id: str = "signup",
             tenant: str | None = "acme", ts: int | None = None, **more: Any) -> Event:
    return ev(n.FORM_REJECTED, entity_id(form_id), seq, {
        "submission_id": submission_id, "reason": reason, "address_key": "k",
        "content_hash": f"h-{submission_id}", **more}, tenant=tenant, ts=ts)


class FormProjectionContract:
    @pytest.fixture
    async def projection(self) -> AsyncIterator[Projection]:
        raise NotImplementedError("a backend's contract test provides a started Projection")
        yield  # noqa: PT022 - an async generator, so that overrides may tear down

    async def test_an_accepted_submission_is_kept_with_its_data_and_execution(
            self, projection: Projection) -> None:
        await projection.apply_events([registered(), submitted(2, "s1", ts=T0 + 5)])
        record = await projection.get_submission("signup", "s1")
        assert record is not None
        assert (record.id, record.form_id, record.tenant_id, record.status) == (
            "s1", "signup", "acme", "accepted")
        assert record.data == {"email": "s1@example.com"}
        assert record.execution_id == "frm-s1"
        assert record.resumed is False
        assert int(record.submitted_at.timestamp() * 1000) == T0 + 5
        assert await projection.get_submission("signup", "nope") is None
        assert await projection.get_submission("other", "s1") is None

    async def test_each_refusal_is_kept_with_what_it_carries(
            self, projection: Projection) -> None:
        errors = [{"pointer": "/email", "message": "not an email"}]
        await projection.apply_events([
            registered(), submitted(2, "first"),
            rejected(3, "bad", "invalid", errors=errors, data={"email": "x"}),
            rejected(4, "bot", "spam"),
            rejected(5, "fast", "rate_limited", retry_after_ms=1500),
            rejected(6, "again", "duplicate", first_submission_id="first",
                     execution_id="frm-first"),
            rejected(7, "robot", "captcha_failed"),
            rejected(8, "late", "disabled"),
        ])
        got = {sid: await projection.get_submission("signup", sid)
               for sid in ("bad", "bot", "fast", "again", "robot", "late")}
        assert {sid: r.status for sid, r in got.items() if r is not None} == {
            "bad": "invalid", "bot": "spam", "fast": "rate_limited", "again": "duplicate",
            "robot": "captcha_failed", "late": "disabled"}
        bad, bot, fast, again = got["bad"], got["bot"], got["fast"], got["again"]
        assert bad is not None
        assert (bad.errors, bad.data) == (errors, {"email": "x"})
        assert bot is not None
        assert (bot.data, bot.errors, bot.execution_id) == (None, None, None)
        assert fast is not None
        assert fast.retry_after_ms == 1500
        assert again is not None
        assert (again.duplicate_of, again.execution_id) == ("first", "frm-first")

    async def test_a_submission_is_recorded_once_and_redelivery_changes_nothing(
            self, projection: Projection) -> None:
        await projection.apply_events([registered(), submitted(2, "s1")])
        await projection.apply_events([submitted(2, "s1", data={"changed": True})])
        # the same id again in a later event (a reused submission id): the first wins
        await projection.apply_events([rejected(3, "s1", "duplicate")])
        record = await projection.get_submission("signup", "s1")
        assert record is not None
        assert (record.status, record.data) == ("accepted", {"email": "s1@example.com"})
        page = await projection.list_submissions("signup")
        assert [s.id for s in page.items] == ["s1"]

    async def test_submissions_are_listed_newest_first_per_form_and_filtered(
            self, projection: Projection) -> None:
        await projection.apply_events([
            registered(), registered("other"),
            submitted(2, "a", ts=T0 + 10), rejected(3, "b", "spam", ts=T0 + 20),
            submitted(4, "c", ts=T0 + 30), submitted(2, "x", form_id="other", ts=T0 + 40),
        ])
        page = await projection.list_submissions("signup")
        assert [s.id for s in page.items] == ["c", "b", "a"]
        assert page.next_cursor is None
        accepted = await projection.list_submissions("signup", status="accepted")
        assert [s.id for s in accepted.items] == ["c", "a"]
        assert (await projection.list_submissions("nope")).items == []
        with pytest.raises(ValueError, match="unknown submission status"):
            await projection.list_submissions("signup", status="acepted")

    async def test_a_tenant_sees_only_its_own_forms_submissions(
            self, projection: Projection) -> None:
        await projection.apply_events([registered(), submitted(2, "s1")])
        assert await projection.get_submission("signup", "s1", tenant_id="globex") is None
        assert (await projection.list_submissions("signup", tenant_id="globex")).items == []
        mine = await projection.list_submissions("signup", tenant_id="acme")
        assert [s.id for s in mine.items] == ["s1"]
        assert await projection.get_submission("signup", "s1", tenant_id="acme") is not None

    async def test_pages_follow_the_cursor_even_with_equal_times(
            self, projection: Projection) -> None:
        events = [registered()] + [submitted(i + 2, f"s{i}", ts=T0 + (i // 2))
                                   for i in range(7)]
        await projection.apply_events(events)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await projection.list_submissions("signup", limit=3, cursor=cursor)
            seen += [s.id for s in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]
        spam_only = await projection.list_submissions("signup", status="spam", limit=1)
        assert (spam_only.items, spam_only.next_cursor) == ([], None)
        with pytest.raises(InvalidCursorError):
            await projection.list_submissions("signup", cursor="not-a-cursor")

    async def test_form_entities_are_never_executions(self, projection: Projection) -> None:
        await projection.apply_events([created("e1"), registered(), submitted(2, "s1")])
        page = await projection.list()
        assert [e.id for e in page.items] == ["e1"]
        assert await projection.get(entity_id("signup")) is None
        # the entity's events stay readable: the form's audit trail
        history = await projection.history(entity_id("signup"))
        assert [e.type for e in history] == [n.FORM_REGISTERED, n.FORM_SUBMITTED]
