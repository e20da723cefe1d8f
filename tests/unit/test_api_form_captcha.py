"""Captcha on the submission endpoint, against a local fake provider over HTTP:
solved, refused, missing, and the provider unreachable with the form failing closed
or open."""

from __future__ import annotations

from tests.fake_captcha import FakeCaptchaProvider, unreachable_url
from tests.unit.forms_support import captcha_form, forms_api


async def test_a_solved_captcha_is_taken_and_its_field_is_not_data() -> None:
    async with FakeCaptchaProvider() as fake, forms_api(
            captcha_form("t", "turnstile"), captcha_urls={"turnstile": fake.url}) as api:
        response = await api.post("t", {"name": "Ann", "cf-turnstile-response": "pass"},
                                   address="203.0.113.4")
        assert response.status_code == 201, response.text
        execution = await api.harness.get(response.json()["executionId"])
        assert execution is not None
        assert "cf-turnstile-response" not in execution.context
        assert fake.requests[0]["remoteip"] == "203.0.113.4"


async def test_a_refused_or_missing_captcha_is_a_400_recorded_and_starts_nothing() -> None:
    async with FakeCaptchaProvider() as fake, forms_api(
            captcha_form("r", "recaptcha"), captcha_urls={"recaptcha": fake.url}) as api:
        wrong = await api.post("r", {"name": "Ann", "g-recaptcha-response": "wrong"})
        missing = await api.post("r", {"name": "Ann"})
        for response in (wrong, missing):
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "CAPTCHA_FAILED"
        assert await api.executions() == []
        assert api.reasons("r") == ["captcha_failed", "captcha_failed"]
        assert len(fake.requests) == 1  # a missing token is not sent
        assert api.metric("r", "captcha_failed") == 2


async def test_an_unreachable_provider_refuses_when_the_form_fails_closed() -> None:
    async with FakeCaptchaProvider() as fake, forms_api(
            captcha_form("closed", "hcaptcha", timeout_s=0.2),
            captcha_form("down", "recaptcha"),
            captcha_urls={"hcaptcha": fake.url, "recaptcha": unreachable_url()}) as api:
        hung = await api.post("closed", {"name": "Ann", "h-captcha-response": "hang"})
        down = await api.post("down", {"name": "Ann", "g-recaptcha-response": "pass"})
        for response in (hung, down):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "CAPTCHA_UNAVAILABLE"
            assert response.headers["Retry-After"] == "30"
        assert await api.executions() == []
        assert api.reasons("closed") == api.reasons("down") == ["captcha_failed"]


async def test_an_unreachable_provider_lets_the_submission_through_when_open() -> None:
    async with FakeCaptchaProvider() as fake, forms_api(
            captcha_form("open", "hcaptcha", on_unreachable="open"),
            captcha_urls={"hcaptcha": unreachable_url()}) as api:
        response = await api.post("open", {"name": "Ann", "h-captcha-response": "pass"})
        assert response.status_code == 201, response.text
        assert len(await api.executions()) == 1
        assert fake.requests == []


async def test_a_captcha_secret_missing_from_the_vault_is_a_503() -> None:
    form = captcha_form("nosecret", "turnstile")
    form["captcha"]["secret"] = "not/in/the/vault"
    async with FakeCaptchaProvider() as fake, forms_api(
            form, captcha_urls={"turnstile": fake.url}) as api:
        response = await api.post("nosecret", {"cf-turnstile-response": "pass"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "CAPTCHA_SECRET_UNAVAILABLE"
        assert await api.executions() == []
