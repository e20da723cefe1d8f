"""Step events (kernel/step_events.py): an ``email-reply`` attempt's ``email.sent``
recorded before its outcome, only from that step type, bounded; and the inbound email a
resume carries recorded as ``email.received``."""

from __future__ import annotations

from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, trusted_command
from flowmonkey.kernel.step_events import MAX_HEADER_CHARS, step_event_problem
from flowmonkey.model.flow import Step
from flowmonkey.model.result import HandlerEvent, Result

from .support import T0, DictEnv, KernelDriver, make_flow, resume_cmd, step, types

SENT = HandlerEvent(n.EMAIL_SENT, {"to": ["ann@example.com"], "subject": "Order o-1",
                                   "message_id": "<m-1@example.com>"})


def mail_driver(step_type: str = "email-reply") -> KernelDriver:
    flow = make_flow("f", [step("mail", step_type, on_success="next", output_key="reply"),
                           step("next")])
    d = KernelDriver(DictEnv([flow]))
    d.start("e1", "f")
    return d


def test_the_mail_sent_is_recorded_just_before_the_attempts_outcome() -> None:
    d = mail_driver()

    decision = d.result("e1", Result.success({"messageId": "<m-1@example.com>"},
                                             events=(SENT,)), at=T0 + 10)

    assert types(decision.events)[:2] == [n.EMAIL_SENT, n.STEP_COMPLETED]
    assert decision.events[0].data == {"step_id": "mail", "to": ["ann@example.com"],
                                       "subject": "Order o-1",
                                       "message_id": "<m-1@example.com>"}


def test_a_step_of_another_type_reporting_a_mail_sent_records_nothing() -> None:
    d = mail_driver("task")

    decision = d.result("e1", Result.success(events=(SENT,)), at=T0 + 10)

    assert n.EMAIL_SENT not in types(decision.events)


def email_step(type: str = "email-reply") -> Step:
    return Step(id="mail", type=type)


def test_the_runner_is_told_what_is_wrong_with_a_results_events() -> None:
    assert step_event_problem(email_step(), (SENT,)) is None
    assert "may not report" in (step_event_problem(email_step("task"), (SENT,)) or "")
    odd: list[tuple[dict[str, Any], str]] = [
        ({"to": [], "subject": "s", "message_id": "m"}, "to must be a list"),
        ({"to": ["a@b.io"], "subject": "x" * (MAX_HEADER_CHARS + 1), "message_id": "m"},
         "subject must be"),
        ({"to": ["a@b.io"], "subject": "s"}, "message_id must be"),
    ]
    for data, problem in odd:
        found = step_event_problem(email_step(), (HandlerEvent(n.EMAIL_SENT, data),))
        assert found is not None
        assert problem in found
    unknown = HandlerEvent(n.EXECUTION_COMPLETED, {})
    assert "may not report" in (step_event_problem(email_step(), (unknown,)) or "")
    assert "at most" in (step_event_problem(email_step(), (SENT,) * 5) or "")


def resume_with_email(email: Any, *, token: str = "tok") -> Command:
    command = resume_cmd("e1", token, {"text": "yes"}, at=T0 + 100)
    return trusted_command(command.type, command.command_id, command.execution_id,
                           command.timestamp_ms, {**command.data, "email": email}, None)


def waiting_for_reply() -> KernelDriver:
    d = mail_driver()
    d.result("e1", Result.wait_for_signal("reply", events=(SENT,)), at=T0 + 10,
             resume_token="tok")
    return d


def test_a_resume_carrying_an_inbound_email_records_it_after_the_token() -> None:
    d = waiting_for_reply()

    decision = d.send(resume_with_email({"from": "ann@example.com", "subject": "Re: o-1"}))

    assert types(decision.events)[:3] == [n.TOKEN_USED, n.EMAIL_RECEIVED,
                                          n.EXECUTION_RESUMED]
    assert decision.events[1].data == {"step_id": "mail", "from": "ann@example.com",
                                       "subject": "Re: o-1"}


def test_the_recorded_inbound_email_is_bounded() -> None:
    d = waiting_for_reply()

    decision = d.send(resume_with_email({"from": 42, "subject": "s" * 5000 + "\x00"}))

    received = decision.events[1].data
    assert received["from"] is None
    assert len(received["subject"]) == MAX_HEADER_CHARS


def test_a_refused_resume_records_no_inbound_email() -> None:
    d = waiting_for_reply()

    decision = d.send(resume_with_email({"from": "eve@example.com"}, token="wrong"))

    assert types(decision.events) == [n.COMMAND_REJECTED]


def test_an_inbound_email_that_is_not_an_object_is_an_invalid_command() -> None:
    d = waiting_for_reply()

    decision = d.send(resume_with_email("ann@example.com"))

    assert types(decision.events) == [n.COMMAND_REJECTED]
    assert decision.events[0].data["code"] == n.REJECT_INVALID_COMMAND
