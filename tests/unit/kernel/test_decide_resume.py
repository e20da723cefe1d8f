"""``execution.resume`` with a resume token (A5, B7) and ``token.revoke``."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import make_event
from flowmonkey.kernel.state import WAIT_SIGNAL
from flowmonkey.kernel.timers import SIGNAL_TIMEOUT, WAIT_TIMEOUT, next_timer
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import Result

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    make_flow,
    resume_cmd,
    revoke_cmd,
    step,
    types,
)


def signal_wait(*, output_key: str | None = None, timeout_ms: int | None = None,
                tenant_id: str | None = None, **start: Any) -> KernelDriver:
    """``e1`` waiting at step ``w`` for a signal with token ``tok``."""
    flow = make_flow("f", [step("w", on_success="next", output_key=output_key), step("next")])
    d = KernelDriver(DictEnv([flow]))
    d.start("e1", "f", tenant_id=tenant_id, **start)
    d.result("e1", Result.wait_for_signal("approve", timeout_ms=timeout_ms), at=T0 + 10,
             resume_token="tok")
    return d


def test_a_valid_token_resumes_with_the_data_at_output_key() -> None:
    d = signal_wait(output_key="approval", context={"x": 1})

    decision = d.send(resume_cmd("e1", "tok", {"ok": True}, at=T0 + 100))

    assert types(decision.events) == [n.TOKEN_USED, n.EXECUTION_RESUMED, n.TRANSITION,
                                      n.STEP_STARTED]
    assert decision.events[0].data == {"token": "tok"}
    assert decision.events[1].data == {"step_id": "w", "reason": "signal",
                                       "data": {"ok": True}, "output_key": "approval"}
    assert decision.events[2].data["to_step_id"] == "next"
    state = d.state("e1")
    assert state.context == {"x": 1, "approval": {"ok": True}}
    assert state.tokens["tok"].status == "used"
    assert state.resume_token is None
    assert state.status == ExecutionStatus.RUNNING
    assert state.current_step_id == "next"


def test_data_is_merged_into_the_context_without_output_key() -> None:
    d = signal_wait(context={"x": 1, "y": 1})

    decision = d.send(resume_cmd("e1", "tok", {"y": 2, "z": 3}, at=T0 + 100))

    assert decision.events[1].data["merge"] is True
    assert d.state("e1").context == {"x": 1, "y": 2, "z": 3}


def test_data_that_is_not_an_object_is_not_merged() -> None:
    d = signal_wait(context={"x": 1})

    d.send(resume_cmd("e1", "tok", "just text", at=T0 + 100))

    assert d.state("e1").context == {"x": 1}
    assert d.state("e1").status == ExecutionStatus.RUNNING


def test_a_used_token_is_refused() -> None:
    d = signal_wait()
    d.send(resume_cmd("e1", "tok", None, at=T0 + 100))

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 200))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_USED
    assert types(decision.events) == [n.COMMAND_REJECTED]


def test_a_revoked_token_is_refused() -> None:
    d = signal_wait()
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_REVOKED


def test_an_expired_token_is_refused() -> None:
    d = signal_wait(timeout_ms=1000)

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 1010))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_EXPIRED
    assert d.state("e1").status == ExecutionStatus.WAITING


def test_a_token_just_before_expiry_works() -> None:
    d = signal_wait(timeout_ms=1000)

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 1009))

    assert decision.rejected is None


@pytest.mark.parametrize("token", ["other-executions-token", "", None, 42, ["tok"]])
def test_a_foreign_or_bogus_token_is_refused_as_invalid(token: Any) -> None:
    d = signal_wait()

    decision = d.send(resume_cmd("e1", token, None, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_TOKEN
    assert d.state("e1").tokens["tok"].status == "active"


def test_a_token_of_another_execution_is_refused() -> None:
    d = signal_wait()
    d.start("e2", "f", at=T0 + 1)
    d.result("e2", Result.wait_for_signal(), at=T0 + 11, resume_token="tok-2")

    decision = d.send(resume_cmd("e1", "tok-2", None, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_TOKEN


def test_resuming_an_execution_not_waiting_for_a_signal_is_refused() -> None:
    # An active token on an execution that waits for time (not reachable through decide
    # alone today): the status check is the last line of defence.
    flow = make_flow("f", [step("w", on_success="next"), step("next")])
    d = KernelDriver(DictEnv([flow]))
    d.start("e1", "f")
    d.result("e1", Result.wait(1000), at=T0 + 10)
    state = d.state("e1")
    d.inject(make_event(n.TOKEN_CREATED, "e1", state.seq + 1, T0 + 11,
                        {"token": "tok", "step_id": "w"}))

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_NOT_WAITING


def test_resuming_an_unknown_execution_is_refused() -> None:
    d = signal_wait()

    decision = d.send(resume_cmd("ghost", "tok", None, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_EXECUTION_NOT_FOUND


def test_another_tenant_cannot_see_the_execution() -> None:
    d = signal_wait(tenant_id="acme")

    foreign = d.send(resume_cmd("e1", "tok", None, at=T0 + 100, tenant_id="globex"))
    own = d.send(resume_cmd("e1", "tok", None, at=T0 + 100, tenant_id="acme"))

    assert foreign.rejected is not None
    assert foreign.rejected.data["code"] == n.REJECT_EXECUTION_NOT_FOUND
    assert foreign.rejected.tenant_id == "globex"
    assert own.rejected is None


def test_resume_data_over_a_limit_is_refused_and_the_token_stays_usable() -> None:
    d = signal_wait(output_key="approval", options={"limits": {"max_size_bytes": 10}})

    refused = d.send(resume_cmd("e1", "tok", "x" * 50, at=T0 + 100))
    accepted = d.send(resume_cmd("e1", "tok", "ok", at=T0 + 200))

    assert refused.rejected is not None
    assert refused.rejected.data["code"] == "CONTEXT_VALUE_TOO_LARGE"
    assert types(refused.events) == [n.COMMAND_REJECTED]
    assert accepted.rejected is None
    assert d.state("e1").context == {"approval": "ok"}


def test_merged_resume_data_is_limit_checked_too() -> None:
    d = signal_wait(options={"limits": {"max_keys": 2}})

    decision = d.send(resume_cmd("e1", "tok", {"a": 1, "b": 2, "c": 3}, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == "CONTEXT_KEY_LIMIT"


# --------------------------------------------------------------------------- revoke


def test_revoking_an_active_token_revokes_it() -> None:
    d = signal_wait()

    decision = d.send(revoke_cmd("e1", "tok", at=T0 + 50, reason="not needed"))

    assert types(decision.events) == [n.TOKEN_REVOKED]
    assert decision.events[0].data == {"token": "tok", "reason": "not needed"}
    assert d.state("e1").tokens["tok"].status == "revoked"
    assert d.state("e1").resume_token is None


def test_revoking_an_unknown_token_is_refused() -> None:
    decision = signal_wait().send(revoke_cmd("e1", "nope", at=T0 + 50))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_TOKEN


def test_revoking_twice_is_refused_as_revoked() -> None:
    d = signal_wait()
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    decision = d.send(revoke_cmd("e1", "tok", at=T0 + 60))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_REVOKED


def test_revoking_a_used_token_is_refused_as_used() -> None:
    d = signal_wait()
    d.send(resume_cmd("e1", "tok", None, at=T0 + 50))

    decision = d.send(revoke_cmd("e1", "tok", at=T0 + 60))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_USED


def test_revoking_for_another_tenant_is_refused_as_not_found() -> None:
    d = signal_wait(tenant_id="acme")

    decision = d.send(revoke_cmd("e1", "tok", at=T0 + 50, tenant_id="globex"))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_EXECUTION_NOT_FOUND


# ------------------------------------------------------------- revoking the wait's token


def test_revoking_the_waits_token_leaves_the_execution_waiting_for_the_signal() -> None:
    d = signal_wait(timeout_ms=1000)

    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    state = d.state("e1")
    assert state.status == ExecutionStatus.WAITING
    assert state.wait_kind == WAIT_SIGNAL
    assert state.current_step_id == "w"


def test_the_signal_timeout_still_fires_after_the_waits_token_is_revoked() -> None:
    d = signal_wait(timeout_ms=1000)
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    assert next_timer(d.state("e1")) == (T0 + 10 + 1000, SIGNAL_TIMEOUT)
    decision = d.fire("e1")

    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.EXECUTION_CANCELLED]
    assert decision.events[-1].data["source"] == "timeout"
    assert decision.events[-1].data["tokens_invalidated"] == 0
    assert d.state("e1").status == ExecutionStatus.CANCELLED


def test_the_wait_timeout_still_fires_after_the_waits_token_is_revoked() -> None:
    d = signal_wait(timeout={"wait_timeout_ms": 500})
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    assert next_timer(d.state("e1")) == (T0 + 10 + 500, WAIT_TIMEOUT)
    d.fire("e1")

    assert d.state("e1").status == ExecutionStatus.CANCELLED


def test_an_execution_whose_waits_token_was_revoked_can_be_cancelled() -> None:
    d = signal_wait()
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    decision = d.send(cancel_cmd("e1", at=T0 + 60, reason="no longer needed"))

    assert decision.rejected is None
    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.EXECUTION_CANCELLED]
    assert d.state("e1").status == ExecutionStatus.CANCELLED


def test_resuming_with_the_revoked_token_says_the_execution_still_waits() -> None:
    d = signal_wait(timeout_ms=1000)
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))

    decision = d.send(resume_cmd("e1", "tok", {"ok": True}, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_REVOKED
    reason = decision.rejected.data["reason"]
    assert "revoked" in reason
    assert "still waiting" in reason
    assert d.state("e1").status == ExecutionStatus.WAITING


def test_a_later_signal_wait_gets_its_own_timeout() -> None:
    # The deadline belongs to the wait: the next wait's token sets a new one.
    flow = make_flow("f", [step("w", on_success="w2"), step("w2")])
    d = KernelDriver(DictEnv([flow]))
    d.start("e1", "f")
    d.result("e1", Result.wait_for_signal(timeout_ms=1000), at=T0 + 10, resume_token="t1")
    d.send(resume_cmd("e1", "t1", None, at=T0 + 20))

    d.result("e1", Result.wait_for_signal(timeout_ms=5000), at=T0 + 30, resume_token="t2")

    assert next_timer(d.state("e1")) == (T0 + 30 + 5000, SIGNAL_TIMEOUT)


def test_a_token_whose_wait_timed_out_is_refused_as_expired_not_revoked() -> None:
    d = signal_wait(timeout_ms=1000)
    fired = d.fire("e1")  # the signal timeout: the token expires, the wait is cancelled
    assert types(fired.events)[0] == n.TOKENS_CLEANED
    assert d.state("e1").tokens["tok"].status == "expired"

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 2000))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_EXPIRED
    assert "timed out" in decision.rejected.data["reason"]
    revoked = d.send(revoke_cmd("e1", "tok", at=T0 + 2001))
    assert revoked.rejected is not None
    assert revoked.rejected.data["code"] == n.REJECT_TOKEN_EXPIRED


def test_a_token_whose_wait_hit_the_wait_timeout_is_refused_as_expired() -> None:
    d = signal_wait(timeout={"wait_timeout_ms": 500})
    fired = d.fire("e1")
    assert types(fired.events) == [n.TOKENS_CLEANED, n.EXECUTION_CANCELLING,
                                   n.EXECUTION_CANCELLED]

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 2000))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_EXPIRED


def test_a_token_revoked_before_its_wait_timed_out_stays_revoked() -> None:
    d = signal_wait(timeout_ms=1000)
    d.send(revoke_cmd("e1", "tok", at=T0 + 50))
    fired = d.fire("e1")
    assert n.TOKENS_CLEANED not in types(fired.events)

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 2000))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_REVOKED


def test_a_user_cancel_still_revokes_the_token() -> None:
    d = signal_wait(timeout_ms=1000)
    d.send(cancel_cmd("e1", at=T0 + 50))

    decision = d.send(resume_cmd("e1", "tok", None, at=T0 + 100))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_TOKEN_REVOKED
