"""Forms in the kernel: every decision of a form entity (register; a submission's
disabled form, verdicts, rate limits per address and per form with sliding windows,
duplicates, a token's resume, a start), the bounds of its state, and the command
checks that keep form ids and execution ids apart."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.events.types import FormRejected, FormSubmitted, payload
from flowmonkey.kernel.decide import Decision
from flowmonkey.kernel.form_state import FormState, form_definition, form_from_json, form_to_json
from flowmonkey.kernel.forms import (
    REJECT_FORM_NOT_FOUND,
    address_key,
    content_hash,
    submission_execution_id,
)
from flowmonkey.model.form import Form, entity_id
from flowmonkey.model.result import Result
from flowmonkey.processors.snapshot_codec import decode_partition_state, encode_snapshot_state

from .support import T0, DictEnv, KernelDriver, make_flow, start_cmd, step, types

MINUTE = 60_000
_ids = itertools.count(1)


def form(id: str = "signup", **more: Any) -> Form:
    return Form.model_validate({"id": id, "flowId": "onboard", **more})


def limited(per_address: int | None = None, per_form: int | None = None,
            window_s: int = 60, **more: Any) -> Form:
    limits: dict[str, Any] = {}
    if per_address is not None:
        limits["perAddress"] = {"count": per_address, "windowS": window_s}
    if per_form is not None:
        limits["perForm"] = {"count": per_form, "windowS": window_s}
    return form(rateLimit=limits, **more)


def cmd(type: str, form_id: str, at: int = T0, tenant_id: str | None = None,
        **data: Any) -> Command:
    return Command(type=type, command_id=f"{type}#{next(_ids)}", execution_id=entity_id(form_id),
                   timestamp_ms=at, tenant_id=tenant_id, data=data)


def driver() -> KernelDriver:
    flows = [make_flow("onboard", [step("welcome")]),
             make_flow("approval", [step("ask", on_resume=None, output_key="answer")])]
    return KernelDriver(DictEnv(flows))


def register(d: KernelDriver, model: Form, at: int = T0, **data: Any) -> Decision:
    return d.send(cmd(n.CMD_FORM_REGISTER, model.id, at, definition=form_definition(model),
                      **data))


def submit(d: KernelDriver, form_id: str = "signup", data: dict[str, Any] | None = None, *,
           at: int = T0, address: str | None = "1.2.3.4", verdict: str = "valid",
           submission: str | None = None, **more: Any) -> Decision:
    body = {"email": "a@example.com"} if data is None else data
    fields: dict[str, Any] = {
        "submission_id": submission or f"sub-{next(_ids)}", "verdict": verdict,
        "content_hash": content_hash(body, more.get("token")),
        "address_key": address_key(form_id, address) if address else None,
        **more}
    if verdict in ("valid", "invalid"):
        fields["data"] = body
    return d.send(cmd(n.CMD_FORM_SUBMIT, form_id, at, **fields))


def state(d: KernelDriver, form_id: str = "signup") -> FormState:
    return d.partition.forms[entity_id(form_id)]


def rejected(decision: Decision) -> str:
    event = decision.rejected
    assert event is not None, types(decision.events)
    return str(event.data["code"])


def outcome(decision: Decision) -> str:
    """``accepted``, or the reason of the ``form.rejected``."""
    assert types(decision.events) in ([n.FORM_SUBMITTED], [n.FORM_REJECTED]), \
        types(decision.events)
    data = payload(decision.events[0])
    return "accepted" if isinstance(data, FormSubmitted) else str(data.reason)  # type: ignore[attr-defined]


def rejection(decision: Decision) -> FormRejected:
    data = payload(decision.events[0])
    assert isinstance(data, FormRejected)
    return data


# --------------------------------------------------------------------------- register


def test_a_new_form_is_registered_with_its_definition_and_a_seq_of_its_own() -> None:
    d = driver()
    decision = register(d, form(), by="deploy")
    assert types(decision.events) == [n.FORM_REGISTERED]
    event = decision.events[0]
    assert (event.execution_id, event.seq) == ("form:signup", 1)
    assert event.data["changed"] is False
    assert event.data["by"] == "deploy"
    fs = state(d)
    assert fs.enabled
    assert fs.definition["flowId"] == "onboard"
    payload(event)


def test_an_identical_registration_is_ignored_and_a_changed_one_recorded() -> None:
    d = driver()
    register(d, form())
    assert register(d, form()).ignored == "identical form definition"
    changed = register(d, form(description="now with words"))
    assert types(changed.events) == [n.FORM_REGISTERED]
    assert changed.events[0].data["changed"] is True
    assert state(d).seq == 2


def test_enabled_comes_from_the_definition_and_a_disabled_form_refuses_submissions() -> None:
    d = driver()
    register(d, form(enabled=False))
    decision = submit(d)
    assert outcome(decision) == "disabled"
    assert decision.commands == []
    register(d, form())
    assert outcome(submit(d)) == "accepted"


@pytest.mark.parametrize(("definition", "message"), [
    ({"id": "bad id!"}, "id"),
    ({"id": "signup", "schema": {"type": "object", "properties": {
        "name": {"type": "string", "pattern": "(a)\\1"}}}}, "RE2"),
    ({"id": "signup", "schema": {"patternProperties": {"(?=x)": {}}}}, "RE2"),
])
def test_a_definition_the_kernel_cannot_use_is_refused_with_what_is_wrong(
        definition: dict[str, Any], message: str) -> None:
    d = driver()
    decision = d.send(cmd(n.CMD_FORM_REGISTER, "signup", definition=definition))
    assert rejected(decision) == n.REJECT_INVALID_COMMAND
    assert message in decision.events[0].data["reason"]
    assert entity_id("signup") not in d.partition.forms


def test_a_property_named_pattern_is_a_schema_not_a_pattern() -> None:
    d = driver()
    model = form(schema={"type": "object", "properties": {"pattern": {"type": "string"}},
                         "enum": [{"pattern": "(?=not a schema)"}]})
    assert types(register(d, model).events) == [n.FORM_REGISTERED]


def test_a_form_registered_on_another_entity_or_tenant_is_refused() -> None:
    d = driver()
    wrong = d.send(cmd(n.CMD_FORM_REGISTER, "other", definition=form_definition(form())))
    assert rejected(wrong) == n.REJECT_INVALID_COMMAND
    assert "form:signup" in wrong.events[0].data["reason"]
    tenant = d.send(cmd(n.CMD_FORM_REGISTER, "signup", tenant_id="acme",
                        definition=form_definition(form(tenantId="globex"))))
    assert rejected(tenant) == n.REJECT_INVALID_COMMAND


# --------------------------------------------------------------------------- submissions


def test_an_accepted_submission_starts_the_forms_flow_once_with_its_data() -> None:
    d = driver()
    register(d, form(tenantId="acme"))
    decision = submit(d, data={"email": "x@example.com"}, submission="s-1")
    assert outcome(decision) == "accepted"
    execution_id = submission_execution_id("signup", "s-1")
    assert decision.events[0].data["execution_id"] == execution_id
    assert execution_id.startswith("frm-")
    [start] = decision.commands
    assert (start.type, start.execution_id, start.tenant_id) == (n.CMD_START, execution_id,
                                                                 "acme")
    assert start.data["context"] == {"email": "x@example.com"}
    assert start.data["metadata"] == {"form": {"id": "signup", "submission": "s-1"}}
    d.deliver()
    st = d.state(execution_id)
    assert (st.flow_id, st.tenant_id) == ("onboard", "acme")
    assert st.context == {"email": "x@example.com"}
    assert state(d).counts == {"accepted": 1}


def test_the_context_selector_picks_from_the_data_the_form_and_the_submission() -> None:
    d = driver()
    register(d, form(context={"type": "template", "template": {
        "who": "${data.email}", "form": "${form}", "submission": "${submission.id}"}}))
    decision = submit(d, data={"email": "x@example.com"}, submission="s-9")
    assert decision.commands[0].data["context"] == {
        "who": "x@example.com", "form": "signup", "submission": "s-9"}


def test_a_context_over_the_limits_is_recorded_as_invalid_and_starts_nothing() -> None:
    d = driver()
    register(d, form())
    decision = submit(d, data={f"k{i}": i for i in range(1_001)})
    assert outcome(decision) == "invalid"
    assert "context" in rejection(decision).errors[0].message  # type: ignore[index]
    assert decision.commands == []


def test_a_form_without_a_flow_takes_only_submissions_with_a_token() -> None:
    d = driver()
    register(d, Form.model_validate({"id": "signup"}))
    decision = submit(d)
    assert outcome(decision) == "invalid"
    assert "token" in rejection(decision).errors[0].message  # type: ignore[index]


def test_an_unknown_form_or_another_tenants_is_not_found() -> None:
    d = driver()
    assert rejected(submit(d, "nope")) == REJECT_FORM_NOT_FOUND
    register(d, form(tenantId="acme"))
    assert rejected(d.send(cmd(n.CMD_FORM_SUBMIT, "signup", tenant_id="globex",
                               submission_id="s", verdict="spam",
                               content_hash="h"))) == REJECT_FORM_NOT_FOUND


@pytest.mark.parametrize("verdict", ["spam", "invalid", "captcha_failed"])
def test_a_refused_verdict_is_recorded_and_starts_nothing(verdict: str) -> None:
    d = driver()
    register(d, form())
    errors = [{"pointer": "/email", "message": "not an email"}]
    decision = submit(d, data={"email": "nope"}, verdict=verdict, errors=errors)
    assert outcome(decision) == verdict
    assert decision.commands == []
    got = rejection(decision)
    assert got.errors is not None
    assert got.errors[0].pointer == "/email"
    # the data of an invalid submission is kept for the record; spam keeps nothing
    assert got.data == ({"email": "nope"} if verdict == "invalid" else None)
    assert state(d).counts == {verdict: 1}


# --------------------------------------------------------------------------- rate limits


def test_the_per_address_limit_refuses_with_retry_after_and_slides() -> None:
    d = driver()
    register(d, limited(per_address=2))
    assert outcome(submit(d, data={"n": 1}, at=T0)) == "accepted"
    assert outcome(submit(d, data={"n": 2}, at=T0 + 10_000)) == "accepted"
    third = submit(d, data={"n": 3}, at=T0 + 20_000)
    assert outcome(third) == "rate_limited"
    assert rejection(third).retry_after_ms == 40_000  # when the first leaves the window
    assert third.commands == []
    # another address is not limited by this one's
    assert outcome(submit(d, data={"n": 4}, at=T0 + 20_000, address="5.6.7.8")) == "accepted"
    # the window slides: once the first submission left it, one more fits
    assert outcome(submit(d, data={"n": 5}, at=T0 + MINUTE - 1)) == "rate_limited"
    assert outcome(submit(d, data={"n": 6}, at=T0 + MINUTE)) == "accepted"
    # ... and the second is still in it
    later = submit(d, data={"n": 7}, at=T0 + MINUTE + 1)
    assert outcome(later) == "rate_limited"
    assert rejection(later).retry_after_ms == 10_000 - 1


def test_the_per_form_limit_holds_across_addresses() -> None:
    d = driver()
    register(d, limited(per_form=2))
    assert outcome(submit(d, data={"n": 1}, address="1.1.1.1")) == "accepted"
    assert outcome(submit(d, data={"n": 2}, address="2.2.2.2")) == "accepted"
    refused = submit(d, data={"n": 3}, address="3.3.3.3", at=T0 + 1_000)
    assert outcome(refused) == "rate_limited"
    assert rejection(refused).retry_after_ms == MINUTE - 1_000


def test_refused_verdicts_count_against_the_limit_and_rate_limited_ones_do_not() -> None:
    d = driver()
    register(d, limited(per_address=2))
    assert outcome(submit(d, verdict="spam")) == "spam"
    assert outcome(submit(d, data={"x": 1}, verdict="invalid")) == "invalid"
    for _ in range(5):
        assert outcome(submit(d, data={"n": 1}, at=T0 + 1_000)) == "rate_limited"
    # the refusals did not push the window on: it ends a minute after the first two
    assert outcome(submit(d, data={"n": 1}, at=T0 + MINUTE)) == "accepted"
    assert state(d).counts == {"spam": 1, "invalid": 1, "rate_limited": 5, "accepted": 1}


def test_a_submission_without_an_address_is_limited_per_form_only() -> None:
    d = driver()
    register(d, limited(per_address=1, per_form=3))
    assert outcome(submit(d, data={"n": 1}, address=None)) == "accepted"
    assert outcome(submit(d, data={"n": 2}, address=None)) == "accepted"
    assert state(d).addresses == {}


def test_ipv6_clients_share_their_64_network_window() -> None:
    d = driver()
    register(d, limited(per_address=1))
    assert outcome(submit(d, data={"n": 1}, address="2001:db8:1:2::1")) == "accepted"
    assert outcome(submit(d, data={"n": 2}, address="2001:db8:1:2::ffff")) == "rate_limited"
    assert outcome(submit(d, data={"n": 3}, address="2001:db8:1:3::1")) == "accepted"
    assert address_key("f", "::ffff:1.2.3.4") == address_key("f", "1.2.3.4")


def test_the_address_is_never_kept_only_its_keyed_hash() -> None:
    d = driver()
    register(d, limited(per_address=5))
    decision = submit(d, address="203.0.113.7")
    assert "203.0.113.7" not in str(decision.events[0].data)
    assert "203.0.113.7" not in str(form_to_json(state(d)))
    assert address_key("signup", "203.0.113.7") != address_key("other", "203.0.113.7")


def test_the_addresses_a_form_keeps_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flowmonkey.kernel.form_apply.MAX_ADDRESSES", 3)
    d = driver()
    register(d, limited(per_address=1))
    for i in range(6):
        assert outcome(submit(d, data={"n": i}, address=f"10.0.0.{i}", at=T0 + i)) == "accepted"
    kept = state(d).addresses
    assert len(kept) == 3
    # the least recently seen were forgotten: address 0 may submit again
    assert address_key("signup", "10.0.0.5") in kept
    assert outcome(submit(d, data={"n": 9}, address="10.0.0.0", at=T0 + 10)) == "accepted"
    assert outcome(submit(d, data={"n": 9}, address="10.0.0.5", at=T0 + 10)) == "rate_limited"


def test_windows_that_ended_are_forgotten_and_dropped_limits_clear_them() -> None:
    d = driver()
    register(d, limited(per_address=1, per_form=5))
    submit(d, data={"n": 1}, address="1.1.1.1")
    submit(d, data={"n": 2}, address="2.2.2.2", at=T0 + 2 * MINUTE)
    assert list(state(d).addresses) == [address_key("signup", "2.2.2.2")]
    assert state(d).recent == (T0 + 2 * MINUTE,)
    register(d, form())
    assert (state(d).addresses, state(d).recent) == ({}, ())


# --------------------------------------------------------------------------- duplicates


def test_a_duplicate_within_the_window_is_answered_with_the_first() -> None:
    d = driver()
    register(d, form(duplicateWindowS=30))
    first = submit(d, data={"email": "a@b.c"}, submission="s-1")
    again = submit(d, data={"email": "a@b.c"}, submission="s-2", at=T0 + 29_999)
    assert outcome(again) == "duplicate"
    got = rejection(again)
    assert got.first_submission_id == "s-1"
    assert got.execution_id == first.events[0].data["execution_id"]
    assert again.commands == []
    # other content is no duplicate; after the window the same content is new again
    assert outcome(submit(d, data={"email": "x@b.c"}, at=T0 + 29_999)) == "accepted"
    assert outcome(submit(d, data={"email": "a@b.c"}, at=T0 + 30_000)) == "accepted"


def test_without_a_duplicate_window_the_same_content_is_accepted_twice() -> None:
    d = driver()
    register(d, form())
    assert outcome(submit(d)) == "accepted"
    assert outcome(submit(d)) == "accepted"
    assert state(d).duplicates == {}


def test_a_refused_submission_is_no_first_for_duplicates() -> None:
    d = driver()
    register(d, form(duplicateWindowS=30))
    submit(d, data={"email": "a@b.c"}, verdict="invalid")
    assert outcome(submit(d, data={"email": "a@b.c"})) == "accepted"


def test_the_duplicates_a_form_remembers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flowmonkey.kernel.form_apply.MAX_DUPLICATES", 2)
    d = driver()
    register(d, form(duplicateWindowS=600))
    for i in range(4):
        submit(d, data={"n": i}, at=T0 + i)
    assert len(state(d).duplicates) == 2
    assert outcome(submit(d, data={"n": 0}, at=T0 + 10)) == "accepted"  # forgotten
    assert outcome(submit(d, data={"n": 3}, at=T0 + 10)) == "duplicate"


def test_content_hashes_tell_tokens_apart_and_ignore_key_order() -> None:
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"ok": True}, "t-1") != content_hash({"ok": True}, "t-2")


# --------------------------------------------------------------------------- tokens


def waiting_execution(d: KernelDriver) -> tuple[str, str]:
    d.send(start_cmd("ex-1", "approval"))
    d.result("ex-1", Result.wait_for_signal("form", resume_token="tok-1"), at=T0 + 1)
    assert d.state("ex-1").status.value == "waiting"
    return "ex-1", "tok-1"


def test_a_submission_with_a_token_resumes_the_waiting_execution_with_its_data() -> None:
    d = driver()
    register(d, Form.model_validate({"id": "approve"}))
    execution_id, token = waiting_execution(d)
    decision = submit(d, "approve", {"approved": True}, at=T0 + 2, token=token,
                      execution_id=execution_id)
    assert outcome(decision) == "accepted"
    assert decision.events[0].data["resumed"] is True
    [resume] = decision.commands
    assert (resume.type, resume.execution_id) == (n.CMD_RESUME, execution_id)
    assert resume.data == {"token": token, "data": {"approved": True}}
    d.deliver()
    assert d.state(execution_id).context["answer"] == {"approved": True}


def test_a_wrong_token_is_recorded_by_the_form_and_refused_by_the_execution() -> None:
    d = driver()
    register(d, Form.model_validate({"id": "approve"}))
    execution_id, _ = waiting_execution(d)
    decision = submit(d, "approve", {"approved": True}, at=T0 + 2, token="forged",
                      execution_id=execution_id)
    assert outcome(decision) == "accepted"
    [answer] = d.deliver()
    assert rejected(answer) == n.REJECT_INVALID_TOKEN
    assert d.state(execution_id).status.value == "waiting"


def test_an_invalid_submission_with_a_token_leaves_the_execution_waiting() -> None:
    d = driver()
    register(d, Form.model_validate({"id": "approve"}))
    execution_id, token = waiting_execution(d)
    decision = submit(d, "approve", {"approved": "maybe"}, verdict="invalid", token=token,
                      execution_id=execution_id)
    assert outcome(decision) == "invalid"
    assert decision.commands == []


# --------------------------------------------------------------------------- checks


@pytest.mark.parametrize(("fields", "problem"), [
    ({"verdict": "valid", "content_hash": "h", "submission_id": "s"}, "has no data"),
    ({"verdict": "valid", "content_hash": "h", "submission_id": "s", "data": {},
      "token": "t"}, "no execution_id"),
    ({"verdict": "maybe", "content_hash": "h", "submission_id": "s"}, "verdict"),
    ({"verdict": "spam", "content_hash": "h" * 200, "submission_id": "s"}, "content_hash"),
    ({"verdict": "invalid", "content_hash": "h", "submission_id": "s", "data": {},
      "errors": [{"pointer": "/a"}]}, "errors"),
    ({"verdict": "invalid", "content_hash": "h", "submission_id": "s", "data": {},
      "errors": [{"pointer": "", "message": "m"}] * 101}, "errors"),
    ({"verdict": "spam", "content_hash": "h"}, "submission_id"),
])
def test_a_malformed_submit_is_refused_before_it_is_decided(fields: dict[str, Any],
                                                           problem: str) -> None:
    d = driver()
    register(d, form())
    decision = d.send(cmd(n.CMD_FORM_SUBMIT, "signup", **fields))
    assert rejected(decision) == n.REJECT_INVALID_COMMAND
    assert problem in decision.events[0].data["reason"]
    assert state(d).seq == 1


def test_form_ids_and_execution_ids_never_meet() -> None:
    d = driver()
    register(d, form())
    start = d.send(start_cmd("form:signup", "onboard"))
    assert rejected(start) == n.REJECT_INVALID_COMMAND
    assert "reserved for forms" in start.events[0].data["reason"]
    submit_to_execution = d.send(Command(
        type=n.CMD_FORM_SUBMIT, command_id="c-1", execution_id="ex-1", timestamp_ms=T0,
        tenant_id=None, data={"submission_id": "s", "verdict": "spam", "content_hash": "h"}))
    assert rejected(submit_to_execution) == n.REJECT_INVALID_COMMAND
    timer = d.send(Command(type=n.CMD_TIMER, command_id="c-2", execution_id="form:signup",
                           timestamp_ms=T0, tenant_id=None,
                           data={"due_at": T0, "kind": "x"}))
    assert rejected(timer) == n.REJECT_INVALID_COMMAND


# --------------------------------------------------------------------------- state


def test_a_redelivered_submit_is_decided_once() -> None:
    d = driver()
    register(d, form())
    command = cmd(n.CMD_FORM_SUBMIT, "signup", submission_id="s-1", verdict="valid",
                  content_hash="h", data={"a": 1})
    assert outcome(d.send(command)) == "accepted"
    assert d.send(command).ignored == "duplicate command"


def test_form_state_survives_its_json_and_a_snapshot() -> None:
    d = driver()
    register(d, limited(per_address=3, per_form=5, duplicateWindowS=60))
    submit(d, data={"n": 1})
    submit(d, data={"n": 2}, verdict="spam")
    fs = state(d)
    assert fs.duplicates
    assert fs.addresses
    assert fs.recent
    assert form_from_json(form_to_json(fs)) == fs
    data = encode_snapshot_state(d.partition, topic="t", partition=0, events_offset=5,
                                 anchor_crc=1)
    restored = decode_partition_state(data, topic="t", partition=0, events_offset=5).state
    assert restored.forms == d.partition.forms
    # a restored form decides as the original would
    assert outcome(submit(d, data={"n": 1})) == "duplicate"

