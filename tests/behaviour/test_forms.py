"""Forms through the engine: definitions checked when given, submissions decided by
the form's partition (starts, rate limits that slide on the clock, duplicates answered
with the first, a token's resume), form entities kept out of the executions, and a
form's windows kept across a restart."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.errors import CommandRejected, RegistrationError, ResumeTokenError
from flowmonkey.events import names as n
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.form import step_token, token_execution_id
from flowmonkey.processors.snapshots_memory import MemorySnapshotStore
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step

MINUTE = 60_000


@handler("welcome")
async def welcome(p: HandlerParams) -> StepResult:
    return Result.success({"greeted": p.input.get("email") if isinstance(p.input, dict)
                           else None})


@handler("ask")
async def ask(p: HandlerParams) -> StepResult:
    # as a form-submit step makes its token: the execution can be read back from it
    token = step_token(p.execution.id, secrets.token_urlsafe(16))
    return Result.wait_for_signal("approval form", resume_token=token, timeout_ms=MINUTE)


FLOWS = [flow("onboard", step("hello", "welcome", output_key="hello")),
         flow("approval", step("ask", "ask", output_key="answer"))]

SIGNUP: dict[str, Any] = {
    "id": "signup", "flowId": "onboard", "tenantId": "acme",
    "schema": {"type": "object", "properties": {"email": {"type": "string"}}},
    "rateLimit": {"perAddress": {"count": 2, "windowS": 60}},
    "duplicateWindowS": 30,
}
APPROVE: dict[str, Any] = {"id": "approve"}


def harness(*forms: dict[str, Any]) -> TestHarness:
    return TestHarness(flows=FLOWS, handlers=[welcome, ask], forms=forms or (SIGNUP, APPROVE))


async def status(t: TestHarness, execution_id: str) -> ExecutionStatus:
    execution = await t.engine.get(execution_id)
    assert execution is not None
    return execution.status


async def test_an_accepted_submission_starts_the_forms_flow_with_its_data() -> None:
    async with harness() as t:
        answer = await t.engine.submit_form("signup", {"email": "ada@example.com"},
                                            address="198.51.100.1")
        assert answer.accepted
        assert answer.execution_id is not None
        execution = await t.engine.wait(answer.execution_id)
        assert execution.status == ExecutionStatus.COMPLETED
        assert execution.tenant_id == "acme"
        assert execution.context["hello"] == {"greeted": "ada@example.com"}
        assert execution.metadata == {"form": {"id": "signup",
                                               "submission": answer.submission_id}}


async def test_rate_limits_slide_on_the_clock_and_refusals_say_when_to_retry() -> None:
    async with harness() as t:
        submit = t.engine.submit_form
        assert (await submit("signup", {"n": 1}, address="198.51.100.1")).accepted
        await t.advance(20_000)
        assert (await submit("signup", {"n": 2}, address="198.51.100.1")).accepted
        refused = await submit("signup", {"n": 3}, address="198.51.100.1")
        assert refused.outcome == "rate_limited"
        assert refused.retry_after_ms == 40_000
        assert refused.execution_id is None
        assert (await submit("signup", {"n": 3}, address="198.51.100.2")).accepted
        await t.advance(40_000)
        assert (await submit("signup", {"n": 4}, address="198.51.100.1")).accepted


async def test_a_duplicate_is_answered_with_the_first_submission() -> None:
    async with harness() as t:
        first = await t.engine.submit_form("signup", {"email": "a@b.c"}, address="10.0.0.1")
        again = await t.engine.submit_form("signup", {"email": "a@b.c"}, address="10.0.0.2")
        assert again.duplicate
        assert again.first_submission_id == first.submission_id
        assert again.execution_id == first.execution_id
        assert len((await t.engine.list()).items) == 1
        await t.advance(30_000)
        assert (await t.engine.submit_form("signup", {"email": "a@b.c"},
                                           address="10.0.0.3")).accepted


async def test_verdicts_are_recorded_as_given_and_start_nothing() -> None:
    async with harness() as t:
        errors = [{"pointer": "/email", "message": "is not a string"}]
        invalid = await t.engine.submit_form("signup", {"email": 1}, address="10.0.0.1",
                                             verdict="invalid", errors=errors)
        assert invalid.outcome == "invalid"
        assert invalid.errors == errors
        spam = await t.engine.submit_form("signup", {"website": "x"}, address="10.0.0.2",
                                          verdict="spam")
        assert spam.outcome == "spam"
        assert (await t.engine.list()).items == []
        rejected = [e for e in t.events if e.type == n.FORM_REJECTED]
        assert [e.data.get("data") for e in rejected] == [{"email": 1}, None]


async def test_an_unknown_form_is_refused_with_its_code() -> None:
    async with harness() as t:
        with pytest.raises(CommandRejected) as caught:
            await t.engine.submit_form("nope", {}, address="10.0.0.1")
        assert caught.value.code == "FORM_NOT_FOUND"


async def test_a_submission_with_the_steps_token_resumes_it_and_a_used_token_fails() -> None:
    async with harness() as t:
        run = await t.run("approval")
        token = run.execution.resume_token
        assert token is not None
        assert token_execution_id(token) == run.execution.id
        answer = await t.engine.submit_form("approve", {"approved": True},
                                            address="10.0.0.1", token=token)
        assert answer.accepted
        assert answer.resumed
        assert answer.execution_id == run.execution.id
        done = await t.engine.wait(run.execution.id)
        assert done.status == ExecutionStatus.COMPLETED
        assert done.context["answer"] == {"approved": True}
        with pytest.raises(ResumeTokenError) as caught:
            await t.engine.submit_form("approve", {"approved": False}, address="10.0.0.1",
                                       token=token)
        assert caught.value.code == n.REJECT_TOKEN_USED
        # refused by the execution, recorded by the form
        assert caught.value.details["submission_id"]
        submitted = [e for e in t.events if e.type == n.FORM_SUBMITTED]
        assert len(submitted) == 2


async def test_an_invalid_submission_leaves_the_step_waiting_and_its_timeout_applies() -> None:
    async with harness() as t:
        run = await t.run("approval")
        token = run.execution.resume_token
        assert token is not None
        invalid = await t.engine.submit_form("approve", {"approved": "?"}, address="1.1.1.1",
                                             verdict="invalid", token=token,
                                             errors=[{"pointer": "/approved",
                                                      "message": "must be a boolean"}])
        assert invalid.outcome == "invalid"
        assert await status(t, run.execution.id) == ExecutionStatus.WAITING
        await t.advance(MINUTE)  # the wait's timeout ends it (as any signal wait's)
        assert await status(t, run.execution.id) == ExecutionStatus.CANCELLED


async def test_a_token_that_names_no_execution_is_refused_before_anything_is_sent() -> None:
    async with harness() as t:
        with pytest.raises(ResumeTokenError):
            await t.engine.submit_form("approve", {}, address="1.1.1.1", token="made-up")
        assert not [e for e in t.events if e.type.startswith("form.s")]


async def test_form_entities_are_never_listed_or_read_as_executions() -> None:
    async with harness() as t:
        await t.engine.submit_form("signup", {"email": "a@b.c"}, address="10.0.0.1")
        await t.settle()
        assert [e.flow_id for e in (await t.engine.list()).items] == ["onboard"]
        assert await t.engine.get("form:signup") is None
        with pytest.raises(CommandRejected):
            await t.engine.create("onboard", execution_id="form:mine")


async def test_a_changed_definition_is_decided_on_registration() -> None:
    async with harness() as t:
        await t.engine.register_form({**SIGNUP, "enabled": False}, by="ops")
        answer = await t.engine.submit_form("signup", {}, address="10.0.0.1")
        assert answer.outcome == "disabled"
        registered = [e for e in t.events if e.type == n.FORM_REGISTERED]
        assert [e.data["by"] for e in registered][-1] == "ops"


@pytest.mark.parametrize(("definition", "named"), [
    ({"id": "bad", "schema": {"type": "objekt"}}, "schema.type"),
    ({"id": "bad", "schema": {"properties": {"a": {"pattern": "(?<=x)y"}}}}, "RE2"),
    ({"id": "bad", "rateLimit": {"perAddress": {"count": 0, "windowS": 60}}},
     "rateLimit.perAddress.count"),
    ({"id": "bad", "honeypot": "email", "fields": {"email": {}}}, "honeypot"),
])
def test_a_definition_is_refused_when_given_naming_the_form_and_field(
        definition: dict[str, Any], named: str) -> None:
    with pytest.raises(RegistrationError) as caught:
        Engine(forms=[definition])
    assert "'bad'" in str(caught.value)
    assert named in str(caught.value)


def test_a_form_given_twice_is_refused() -> None:
    with pytest.raises(RegistrationError, match="given twice"):
        Engine(forms=[SIGNUP, SIGNUP])


async def test_a_forms_windows_and_duplicates_survive_a_restart(tmp_path: Path) -> None:
    store = MemorySnapshotStore()

    def engine() -> Engine:
        return Engine(flows=FLOWS, handlers=[welcome, ask], forms=[SIGNUP],
                      log=EmbeddedLog(tmp_path, partitions=2, fsync=False),
                      snapshots=store, snapshot_every=3)

    async with engine() as e:
        first = await e.submit_form("signup", {"email": "a@b.c"}, address="10.0.0.1")
        assert (await e.submit_form("signup", {"n": 2}, address="10.0.0.1")).accepted
    async with engine() as e:
        again = await e.submit_form("signup", {"email": "a@b.c"}, address="10.0.0.2")
        assert again.first_submission_id == first.submission_id
        limited = await e.submit_form("signup", {"n": 3}, address="10.0.0.1")
        assert limited.outcome == "rate_limited"
