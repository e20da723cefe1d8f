"""The providers' verify calls against a local fake provider over real HTTP: success,
failure, a missing token, a 5xx, a timeout and a closed port."""

from __future__ import annotations

import pytest

from flowmonkey.forms.captcha import PROVIDERS, HttpCaptchaVerifier
from tests.fake_captcha import SECRET, FakeCaptchaProvider, unreachable_url


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_solved_token_passes_and_the_provider_gets_secret_token_and_address(
        provider: str) -> None:
    async with FakeCaptchaProvider() as fake:
        verifier = HttpCaptchaVerifier({provider: fake.url})
        verdict = await verifier.verify(provider, SECRET, "pass", "203.0.113.9", 5.0)
        assert verdict.passed
        assert fake.requests == [{"secret": SECRET, "response": "pass",
                                  "remoteip": "203.0.113.9"}]


async def test_a_refused_token_fails_with_the_providers_codes() -> None:
    async with FakeCaptchaProvider() as fake:
        verdict = await HttpCaptchaVerifier({"turnstile": fake.url}).verify(
            "turnstile", SECRET, "wrong", None, 5.0)
        assert verdict.outcome == "failed"
        assert "invalid-input-response" in verdict.reason
        assert "remoteip" not in fake.requests[0]


async def test_a_wrong_secret_fails() -> None:
    async with FakeCaptchaProvider() as fake:
        verdict = await HttpCaptchaVerifier({"hcaptcha": fake.url}).verify(
            "hcaptcha", "not-the-secret", "pass", None, 5.0)
        assert verdict.outcome == "failed"
        assert "invalid-input-secret" in verdict.reason


async def test_no_token_fails_without_asking_the_provider() -> None:
    async with FakeCaptchaProvider() as fake:
        verifier = HttpCaptchaVerifier({"recaptcha": fake.url})
        assert (await verifier.verify("recaptcha", SECRET, None, None, 5.0)).outcome \
            == "failed"
        assert (await verifier.verify("recaptcha", SECRET, "", None, 5.0)).outcome == "failed"
        assert (await verifier.verify("recaptcha", SECRET, "x" * 5000, None, 5.0)).outcome \
            == "failed"
        assert fake.requests == []


async def test_a_server_error_a_timeout_and_a_closed_port_are_unreachable() -> None:
    async with FakeCaptchaProvider() as fake:
        verifier = HttpCaptchaVerifier({"recaptcha": fake.url})
        boom = await verifier.verify("recaptcha", SECRET, "boom", None, 5.0)
        assert boom.outcome == "unreachable"
        assert "500" in boom.reason
        hang = await verifier.verify("recaptcha", SECRET, "hang", None, 0.2)
        assert hang.outcome == "unreachable"
        assert "Timeout" in hang.reason
    closed = await HttpCaptchaVerifier({"recaptcha": unreachable_url()}).verify(
        "recaptcha", SECRET, "pass", None, 2.0)
    assert closed.outcome == "unreachable"
