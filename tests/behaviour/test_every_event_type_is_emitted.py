"""Every event type ``flowmonkey/events/names.py`` defines is emitted by a scenario
here, or is listed in ``NOT_EMITTED`` with the reason. A name added without anything
that emits it fails this test (add the scenario that emits it, or the reason)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from flowmonkey import EngineOptions, HandlerParams, Result, StepResult, handler
from flowmonkey.errors import CommandRejected
from flowmonkey.events import names as n
from flowmonkey.events.types import payload
from flowmonkey.model.form import Form
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.model.trigger import Trigger
from flowmonkey.testing import TestHarness
from flowmonkey.testing.smtp import SmtpSink
from tests.behaviour.flows import flow, step
from tests.behaviour.job_commands import JobCommands
from tests.behaviour.smtp_support import CONTEXT, mail_config

NOT_EMITTED: dict[str, str] = {
    # name -> why nothing emits it
}

attempts: dict[str, int] = {}


@handler("ok")
async def ok(p: HandlerParams) -> StepResult:
    return Result.success({"id": "o-1"})


@handler("flaky")
async def flaky(p: HandlerParams) -> StepResult:
    attempts[p.execution.id] = attempts.get(p.execution.id, 0) + 1
    if attempts[p.execution.id] == 1:
        return Result.failure("BUSY", "try again")
    return Result.success()


@handler("slow")
async def slow(p: HandlerParams) -> StepResult:
    await asyncio.sleep(5)
    return Result.success()


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval", timeout_ms=60_000)


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait(1_000)


@handler("export", stateful=True, heartbeat_ms=1_000, job_timeout_ms=60_000)
async def export(p: HandlerParams) -> StepResult:
    return Result.success()  # (run by a worker: here the test sends the job commands)


ORDERS = TableDef(id="orders", columns=[ColumnDef(id="id", type="string")])
NUMBERS = TableDef(id="numbers", columns=[ColumnDef(id="id", type="number")])
STRICT = TableDef(id="strict", columns=[ColumnDef(id="id", type="string"),
                                        ColumnDef(id="must", type="string", required=True)])


def _pipe(id: str, table_id: str) -> dict[str, Any]:
    return {"id": id, "stepId": "a", "tableId": table_id,
            "mappings": [{"sourcePath": "id", "columnId": "id"}]}


SMTP = SmtpSink()

FLOWS = [
    # (its own timeout: an SMTP conversation may take longer than the 50 ms the others get)
    flow("mail", {**step("a", "email-reply", config=mail_config(SMTP.port, waitForReply=True)),
                  "timeoutMs": 30_000}),
    flow("piped", step("a", "ok", output_key="a"),
         pipes=[_pipe("to-orders", "orders"), _pipe("to-numbers", "numbers"),
                _pipe("to-strict", "strict")]),
    flow("retried", step("a", "flaky", retry={"maxAttempts": 2, "backoffMs": 0})),
    flow("timed-out", step("a", "slow")),
    flow("signal", step("a", "approval", to="b"), step("b", "nap")),
    flow("parent", step("call", "sub-flow", config={"flowId": "retried"}, to="wait"),
         step("wait", "approval")),
    flow("job", step("a", "export")),
]


TRIGGERS = [
    Trigger.model_validate({"id": "hook", "kind": "webhook", "flowId": "retried",
                            "webhook": {"secret": "hook-secret"}}),
    # its runs wait for a signal, so the next tick is skipped (overlap)
    Trigger.model_validate({"id": "minutely", "kind": "schedule", "flowId": "signal",
                            "schedule": {"cron": "* * * * *", "overlap": "skip"}}),
]


FORMS = [Form.model_validate({"id": "signup", "flowId": "retried",
                             "rateLimit": {"perAddress": {"count": 1, "windowS": 60}}})]


def _defined_event_types() -> set[str]:
    return {value for name, value in vars(n).items()
            if name.isupper() and isinstance(value, str)
            and not name.startswith(("CMD_", "REJECT_"))}


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SMTP:
        yield SMTP


async def test_every_event_type_in_names_is_emitted_or_listed_with_a_reason(
        smtp: SmtpSink) -> None:
    async with TestHarness(handlers=[ok, flaky, slow, approval, nap, export], flows=FLOWS,
                           tables=[ORDERS, NUMBERS, STRICT],
                           options=EngineOptions(timeout_ms=50), triggers=TRIGGERS,
                           forms=FORMS, workers=0) as t:  # its jobs are driven by hand
        # pipes: one row lands, two go to the WAL; one is replayed once its column
        # takes text, the other given up
        await t.run("piped", idempotency_key="once")
        await t.run("piped", idempotency_key="once")
        projection = t.projection
        await projection.remove_column("numbers", "id")
        await projection.add_column("numbers", ColumnDef(id="id", type="string"))
        assert (await projection.wal_replay(max_attempts=1)).discarded == 1
        await projection.wal_compact()
        # rows and tables by hand
        row_id = await projection.insert_row("orders", {"id": "x"})
        await projection.update_row("orders", row_id, {"id": "y"})
        await projection.delete_row("orders", row_id)
        await projection.create_table(TableDef(id="scratch", columns=[]))
        await projection.delete_table("scratch")
        # a retry, a handler timeout (a failure)
        await t.run("retried")
        await t.run("timed-out")
        # a signal resumed (then a timed wait), a token revoked, a wait timed out
        resumed = await t.run("signal")
        assert resumed.execution.resume_token is not None
        await t.resume(resumed.execution.id, resumed.execution.resume_token, {})
        await t.advance(1_000)
        revoked = await t.run("signal")
        assert revoked.execution.resume_token is not None
        await t.engine.revoke_token(revoked.execution.id, revoked.execution.resume_token)
        await t.run("signal")
        await t.advance(60_000)
        # children: a sub-flow step's, and one a caller attaches; the parent cancelled
        parent = await t.run("parent")
        await t.run("signal", parent_execution_id=parent.execution.id)
        await t.settle()
        await t.cancel(parent.execution.id)
        # jobs: one claimed, worked on, released, claimed again and completed; one
        # failed; one whose lease ran out (its worker then superseded) and that timed
        # out; one cancelled with its execution
        jobs = JobCommands(t.engine)
        done = (await t.run("job")).execution.id
        first = await jobs.claim(done, (await jobs.pending(done))["job_id"])
        await jobs.write(n.CMD_JOB_HEARTBEAT, first)
        await jobs.write(n.CMD_JOB_PROGRESS, first, percent=10)
        await jobs.write(n.CMD_JOB_CHECKPOINT, first, data={"next": 1})
        await jobs.write(n.CMD_JOB_RELEASE, first, reason="stopping")
        await jobs.write(n.CMD_JOB_COMPLETE, await jobs.claim(done, first["job_id"]))
        failed = (await t.run("job")).execution.id
        claimed = await jobs.claim(failed, (await jobs.pending(failed))["job_id"])
        await jobs.write(n.CMD_JOB_FAIL, claimed, error={"code": "NO", "message": "no"})
        lapsed = (await t.run("job")).execution.id
        claimed = await jobs.claim(lapsed, (await jobs.pending(lapsed))["job_id"])
        await t.advance(3_000)
        await jobs.write(n.CMD_JOB_HEARTBEAT, claimed)
        await t.advance(60_000)
        cancelled = (await t.run("job")).execution.id
        await jobs.pending(cancelled)
        await t.cancel(cancelled)
        # triggers: registered at start; fired by hand (its run ends), paused (a fire
        # then fails), resumed; a schedule fires, then skips a tick while its run waits
        await t.engine.fire_trigger("hook", {"body": {}}, "delivery-1", kind="webhook")
        await t.settle()
        await t.engine.pause_trigger("hook", by="test")
        with pytest.raises(CommandRejected):
            await t.engine.fire_trigger("hook", {"body": {}}, "delivery-2", kind="webhook")
        await t.engine.resume_trigger("hook", by="test")
        await t.advance(3 * 60_000)
        # forms: registered at start; a submission accepted, the next rate-limited
        assert (await t.engine.submit_form("signup", {}, address="1.2.3.4")).accepted
        limited = await t.engine.submit_form("signup", {}, address="1.2.3.4")
        assert limited.outcome == "rate_limited"
        # a mail sent by an email-reply step, and the reply that resumes it
        mailed = await t.run("mail", CONTEXT)
        await smtp.wait_for(1)
        assert mailed.execution.resume_token is not None
        await t.engine.resume(mailed.execution.id, mailed.execution.resume_token,
                              {"text": "yes"}, email={"from": "ann@example.com",
                                                      "subject": "Re: Order o-1"})
        await t.settle()
        # a refused command
        await t.cancel("no-such-execution")
        t.engine.handlers.unregister("nap")

        emitted = {e.type for e in t.events}
        for event in t.events:  # the trigger, form and email events hold to their schemas
            if event.type.startswith(("trigger.", "form.", "email.")):
                payload(event)

    defined = _defined_event_types()
    assert set(NOT_EMITTED) <= defined, "NOT_EMITTED names a type names.py lacks"
    assert not set(NOT_EMITTED) & emitted, "a type listed as not emitted is emitted"
    never = defined - emitted - set(NOT_EMITTED)
    assert not never, (f"event types defined in names.py that no scenario emits: "
                       f"{sorted(never)}; emit them here or list them in NOT_EMITTED "
                       "with the reason")
