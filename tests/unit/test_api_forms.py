"""``POST /v1/forms/{id}/submissions``: taken, invalid, sanitised, honeypot, duplicates,
rate limits, unknown and disabled forms, and the GET endpoints' tenant scoping."""

from __future__ import annotations

from flowmonkey.kernel.forms import submission_execution_id
from tests.unit.api_support import ADMIN, KEY_A, KEY_B, bearer
from tests.unit.forms_support import CONTACT, LIMITED, OFF, forms_api

VALID = {"name": "  Ann ", "email": "ann@example.com", "age": 30,
         "message": "<b>Hello</b> there"}


async def test_a_valid_submission_starts_the_flow_with_the_sanitised_data() -> None:
    async with forms_api(CONTACT) as api:
        response = await api.post("contact", VALID)
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"submissionId", "executionId", "duplicate"}
        assert body["duplicate"] is False
        execution = await api.harness.get(body["executionId"])
        assert execution is not None
        assert execution.status == "completed"
        assert execution.tenant_id == "tenant-a"
        assert execution.context["name"] == "Ann"
        assert execution.context["message"] == "Hello there"
        assert execution.context["greeting"] == {"hello": "Ann"}
        assert execution.metadata == {"form": {"id": "contact",
                                               "submission": body["submissionId"]}}
        assert api.reasons("contact") == ["accepted"]
        assert api.metric("contact", "accepted") == 1


async def test_urlencoded_and_multipart_submissions_are_taken_with_schema_types() -> None:
    async with forms_api(CONTACT) as api:
        form = await api.post("contact", content=b"name=Bo&email=bo%40example.com&age=21"
                              b"&tags=a&tags=b",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 201, form.text
        multipart = await api.post("contact", files={"name": (None, "Cy"),
                                                     "email": (None, "cy@example.com"),
                                                     "age": (None, "40")})
        assert multipart.status_code == 201, multipart.text
        first = await api.harness.get(form.json()["executionId"])
        second = await api.harness.get(multipart.json()["executionId"])
        assert first is not None
        assert second is not None
        assert first.context == {"name": "Bo", "email": "bo@example.com", "age": 21,
                                 "tags": ["a", "b"], "greeting": {"hello": "Bo"}}
        assert second.context["age"] == 40


async def test_schema_errors_are_a_422_listing_each_by_pointer_and_start_nothing() -> None:
    async with forms_api(CONTACT) as api:
        response = await api.post("contact", {"email": "nope", "age": "x", "extra": 1,
                                              "message": "m" * 51})
        assert response.status_code == 422
        body = response.json()
        expected = [
            {"pointer": "", "message": "'name' is a required property"},
            {"pointer": "/age", "message": "value is not of type 'integer'"},
            {"pointer": "/email", "message": "value is not a 'email'"},
            {"pointer": "/extra", "message": "is not allowed (no such field)"},
            {"pointer": "/message", "message": "is longer than 50 characters"},
        ]
        assert sorted(body["errors"], key=lambda e: e["pointer"]) == expected
        assert body["error"]["code"] == "SUBMISSION_INVALID"
        assert body["error"]["details"] == body["errors"]
        assert await api.executions() == []
        [recorded] = api.recorded("contact")
        assert recorded.data["reason"] == "invalid"
        assert sorted(recorded.data["errors"], key=lambda e: e["pointer"]) == expected
        assert api.metric("contact", "invalid") == 1


async def test_a_filled_honeypot_answers_as_taken_but_starts_nothing() -> None:
    async with forms_api(CONTACT) as api:
        response = await api.post("contact", {**VALID, "website": "http://spam.example"})
        assert response.status_code == 201
        body = response.json()
        assert body["executionId"] == submission_execution_id("contact",
                                                              body["submissionId"])
        assert await api.harness.get(body["executionId"]) is None
        assert await api.executions() == []
        [recorded] = api.recorded("contact")
        assert recorded.data["reason"] == "spam"
        assert "data" not in recorded.data
        assert api.metric("contact", "spam") == 1
        # an empty honeypot is a person's submission: taken, without the field
        taken = await api.post("contact", {**VALID, "website": ""})
        assert taken.status_code == 201
        execution = await api.harness.get(taken.json()["executionId"])
        assert execution is not None
        assert "website" not in execution.context


async def test_the_same_content_within_the_window_answers_with_the_first() -> None:
    async with forms_api(CONTACT) as api:
        first = await api.post("contact", VALID)
        # the same after sanitising: a duplicate, even from another address
        again = await api.post("contact", {**VALID, "name": "Ann"}, address="198.51.100.2")
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == {**first.json(), "duplicate": True}
        assert len(await api.executions()) == 1
        await api.harness.advance(601_000)
        later = await api.post("contact", VALID)
        assert later.status_code == 201
        assert later.json()["executionId"] != first.json()["executionId"]
        assert api.reasons("contact") == ["accepted", "duplicate", "accepted"]


async def test_past_a_rate_limit_the_answer_is_429_with_retry_after() -> None:
    async with forms_api(LIMITED) as api:
        statuses = [(await api.post("limited", {"n": i})).status_code for i in range(2)]
        limited = await api.post("limited", {"n": 2})
        assert statuses == [201, 201]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # another address has its own window, until the form's is full
        other = [(await api.post("limited", {"n": i}, address="203.0.113.7")).status_code
                 for i in range(3)]
        assert other == [201, 201, 429]
        await api.harness.advance(61_000)
        assert (await api.post("limited", {"n": 9})).status_code == 201
        assert len(await api.executions()) == 5


async def test_unknown_and_disabled_forms_start_nothing() -> None:
    async with forms_api(CONTACT, OFF) as api:
        unknown = await api.post("nope", VALID)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404,
                                                                          "FORM_NOT_FOUND")
        off = await api.post("off", {"a": 1})
        assert (off.status_code, off.json()["error"]["code"]) == (409, "FORM_DISABLED")
        assert await api.executions() == []


async def test_submitting_needs_no_key_but_reading_forms_does_and_is_tenant_scoped() -> None:
    async with forms_api(CONTACT, LIMITED, OFF) as api:
        client = api.client
        assert (await client.get("/v1/forms")).status_code == 401
        assert (await client.get("/v1/forms", headers=bearer(ADMIN))).json() == {"items": [
            {"id": "contact", "tenantId": "tenant-a", "description": None,
             "flowId": "greet", "enabled": True},
            {"id": "limited", "tenantId": "tenant-b", "description": None,
             "flowId": "greet", "enabled": True},
            {"id": "off", "tenantId": None, "description": None, "flowId": "greet",
             "enabled": False}]}
        mine = (await client.get("/v1/forms", headers=bearer(KEY_A))).json()["items"]
        assert [f["id"] for f in mine] == ["contact"]
        got = await client.get("/v1/forms/contact", headers=bearer(KEY_A))
        assert got.status_code == 200
        assert got.json()["form"]["schema"]["required"] == ["name", "email"]
        assert got.json()["form"]["honeypot"] == "website"
        assert (await client.get("/v1/forms/contact", headers=bearer(KEY_B))).status_code \
            == 404


async def test_submissions_are_listed_newest_first_by_status_and_tenant() -> None:
    async with forms_api(CONTACT) as api:
        taken = (await api.post("contact", VALID)).json()
        await api.harness.advance(1000)
        await api.post("contact", {"name": ""})
        await api.harness.advance(1000)
        await api.post("contact", VALID)  # a duplicate
        page = await api.client.get("/v1/forms/contact/submissions", headers=bearer(KEY_A))
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert [i["status"] for i in items] == ["duplicate", "invalid", "accepted"]
        assert items[2]["id"] == taken["submissionId"]
        assert items[2]["executionId"] == taken["executionId"]
        assert items[2]["data"]["message"] == "Hello there"
        assert items[0]["duplicateOf"] == taken["submissionId"]
        assert {"pointer": "/name", "message": "value should be non-empty"} in items[1]["errors"]
        invalid = await api.client.get("/v1/forms/contact/submissions",
                                       params={"status": "invalid", "limit": 1},
                                       headers=bearer(ADMIN))
        assert [i["status"] for i in invalid.json()["items"]] == ["invalid"]
        one = await api.client.get(f"/v1/forms/contact/submissions/{taken['submissionId']}",
                                   headers=bearer(KEY_A))
        assert one.json()["status"] == "accepted"
        for url in ("/v1/forms/contact/submissions",
                    f"/v1/forms/contact/submissions/{taken['submissionId']}"):
            assert (await api.client.get(url, headers=bearer(KEY_B))).status_code == 404
            assert (await api.client.get(url)).status_code == 401
        bad = await api.client.get("/v1/forms/contact/submissions", params={"status": "x"},
                                   headers=bearer(KEY_A))
        assert bad.status_code == 422


async def test_submission_metrics_are_served_by_form_and_outcome() -> None:
    async with forms_api(CONTACT) as api:
        await api.post("contact", VALID)
        await api.post("contact", {"name": ""})
        await api.post("contact", content=b"x", headers={"Content-Type": "text/plain"})
        text = (await api.client.get("/metrics")).text
        for outcome in ("accepted", "invalid", "unsupported_media_type"):
            assert f'flowmonkey_form_submissions_total{{form="contact",outcome="{outcome}"}} ' \
                   "1.0" in text
