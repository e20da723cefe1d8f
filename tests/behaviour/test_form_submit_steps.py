"""The ``form-submit`` step end to end: a step waits for a form, a valid submission
through its submission URL resumes it with the sanitised data, an invalid one leaves
it waiting, a token works once and for its own form only, and the wait times out."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from flowmonkey.errors import FlowValidationError
from flowmonkey.handlers.form_submit import FormSubmitHandler, form_token, token_target
from flowmonkey.model.execution import Execution
from flowmonkey.model.form import step_token
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step
from tests.unit.api_support import greet
from tests.unit.forms_support import APPROVAL_FORM, APPROVE, CONTACT, FormsApi, forms_api


async def waiting(api: FormsApi) -> tuple[Execution, str]:
    """A started approval execution, waiting, and its submission URL."""
    created = await api.harness.create("approve-by-form", {"order": 7})
    execution = await api.harness.get(created.execution.id)
    assert execution is not None
    assert execution.status == "waiting"
    url = execution.context["decision"]["submissionUrl"]
    assert execution.context["decision"]["formId"] == "approval"
    return execution, url


async def test_a_valid_submission_resumes_the_step_with_the_sanitised_data() -> None:
    async with forms_api(APPROVAL_FORM, flows=(APPROVE,)) as api:
        execution, url = await waiting(api)
        assert url.startswith("/v1/forms/approval/submissions?token=")
        response = await api.client.post(url, json={"approved": True, "comment": " ok "})
        assert response.status_code == 201, response.text
        assert response.json()["executionId"] == execution.id
        done = await api.harness.get(execution.id)
        assert done is not None
        assert done.status == "completed"
        assert done.context["decision"] == {"approved": True, "comment": "ok"}
        assert done.context["order"] == 7
        [submitted] = api.recorded("approval")
        assert submitted.data["resumed"] is True


async def test_an_invalid_submission_leaves_the_step_waiting() -> None:
    async with forms_api(APPROVAL_FORM, flows=(APPROVE,)) as api:
        execution, url = await waiting(api)
        invalid = await api.client.post(url, json={"approved": "yes"})
        assert invalid.status_code == 422
        assert invalid.json()["errors"] == [
            {"pointer": "/approved", "message": "value is not of type 'boolean'"}]
        still = await api.harness.get(execution.id)
        assert still is not None
        assert still.status == "waiting"
        # the token is still good: a form post of the same step resumes it
        token = parse_qs(urlsplit(url).query)["token"][0]
        form = await api.client.post("/v1/forms/approval/submissions",
                                     data={"approved": "on", "token": token})
        assert form.status_code == 201, form.text
        done = await api.harness.get(execution.id)
        assert done is not None
        assert done.context["decision"] == {"approved": True}


async def test_a_token_works_once_and_for_its_own_form_only() -> None:
    async with forms_api(APPROVAL_FORM, CONTACT, flows=(APPROVE,)) as api:
        execution, url = await waiting(api)
        token = parse_qs(urlsplit(url).query)["token"][0]
        other_form = await api.client.post(
            f"/v1/forms/contact/submissions?token={token}",
            json={"name": "Ann", "email": "ann@example.com"})
        assert (other_form.status_code, other_form.json()["error"]["code"]) == (
            404, "TOKEN_NOT_FOUND")
        assert (await api.client.post(url, json={"approved": False})).status_code == 201
        again = await api.client.post(url, json={"approved": True})
        assert (again.status_code, again.json()["error"]["code"]) == (410, "TOKEN_USED")
        done = await api.harness.get(execution.id)
        assert done is not None
        assert done.context["decision"] == {"approved": False}
        # the refused one is recorded as submitted; its resume was what failed
        assert [e.data.get("resumed") for e in api.recorded("approval")] == [True, True]
        forged = form_token("approval", execution.id)  # right shape, wrong secret
        refused = await api.client.post(f"/v1/forms/approval/submissions?token={forged}",
                                        json={"approved": True})
        assert (refused.status_code, refused.json()["error"]["code"]) == (404,
                                                                          "INVALID_TOKEN")
        # a forged token for a step that waits is refused before anything is recorded
        second, _ = await waiting(api)
        recorded = len(api.recorded("approval"))
        forged = form_token("approval", second.id)
        refused = await api.client.post(f"/v1/forms/approval/submissions?token={forged}",
                                        json={"approved": True})
        assert (refused.status_code, refused.json()["error"]["code"]) == (404,
                                                                          "INVALID_TOKEN")
        assert len(api.recorded("approval")) == recorded
        still = await api.harness.get(second.id)
        assert still is not None
        assert still.status == "waiting"
        nowhere = form_token("approval", "no-such-execution")
        missing = await api.client.post(f"/v1/forms/approval/submissions?token={nowhere}",
                                        json={"approved": True})
        assert missing.status_code == 404


async def test_the_wait_times_out_and_a_late_submission_is_gone() -> None:
    async with forms_api(APPROVAL_FORM, flows=(APPROVE,)) as api:
        execution, url = await waiting(api)
        await api.harness.advance(3_600_001)
        cancelled = await api.harness.get(execution.id)
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        assert cancelled.cancellation is not None
        assert cancelled.cancellation.source == "timeout"
        late = await api.client.post(url, json={"approved": True})
        assert late.status_code == 410, late.text


def test_the_token_names_its_form_and_execution() -> None:
    token = form_token("approval", "exec-1")
    assert token_target(token) == ("approval", "exec-1")
    assert token_target(step_token("exec-1", "plain-secret")) is None
    assert token_target("x" * 2000) is None


async def test_the_submission_url_starts_with_the_public_url() -> None:
    handler = FormSubmitHandler(public_url="https://forms.example.com/")
    async with TestHarness(flows=[APPROVE], handlers=[handler, greet],
                           forms=[APPROVAL_FORM]) as t:
        run = await t.run("approve-by-form")
        url = run.execution.context["decision"]["submissionUrl"]
        assert url.startswith("https://forms.example.com/v1/forms/approval/submissions?token=")


def test_a_step_without_a_form_id_is_refused_when_the_flow_is_registered() -> None:
    bad = flow("bad", step("ask", "form-submit", config={"timeoutMs": 5}))
    with pytest.raises(FlowValidationError, match=r"config.formId: is required"):
        TestHarness(flows=[bad])
