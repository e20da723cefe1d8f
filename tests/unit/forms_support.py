"""Shared pieces of the form API tests: forms, a harness with the API in front of it,
and readers of what the form's partition recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from flowmonkey import DictVaultProvider
from flowmonkey.api import create_app
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.forms.captcha import PROVIDERS, HttpCaptchaVerifier
from flowmonkey.model.execution import Execution
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step
from tests.fake_captcha import SECRET
from tests.unit.api_support import AUTH, GREET, greet

#: the test client's connection comes from 127.0.0.1: trusted, so each test picks its
#: client address with X-Forwarded-For
PROXIES = ("127.0.0.1/32",)

CONTACT: dict[str, Any] = {
    "id": "contact", "tenantId": "tenant-a", "flowId": "greet",
    "schema": {
        "type": "object", "required": ["name", "email"],
        "properties": {"name": {"type": "string", "minLength": 1},
                       "email": {"type": "string", "format": "email"},
                       "age": {"type": "integer", "minimum": 18},
                       "message": {"type": "string"},
                       "tags": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False},
    "fields": {"message": {"stripHtml": True, "maxChars": 50}},
    "honeypot": "website",
    "duplicateWindowS": 600,
    "maxBodyBytes": 16_384,
}

LIMITED: dict[str, Any] = {
    "id": "limited", "tenantId": "tenant-b", "flowId": "greet",
    "rateLimit": {"perAddress": {"count": 2, "windowS": 60},
                  "perForm": {"count": 4, "windowS": 60}},
}

OFF: dict[str, Any] = {"id": "off", "flowId": "greet", "enabled": False}

APPROVAL_FORM: dict[str, Any] = {
    "id": "approval",
    "schema": {"type": "object", "required": ["approved"],
               "properties": {"approved": {"type": "boolean"},
                              "comment": {"type": "string", "maxLength": 200}},
               "additionalProperties": False},
}

APPROVE = flow("approve-by-form",
               step("ask", "form-submit", output_key="decision", to="done",
                    config={"formId": "approval", "timeoutMs": 3_600_000}),
               step("done", "greet", output_key="greeting"))


def captcha_form(form_id: str, url_provider: str, on_unreachable: str = "closed",
                 timeout_s: float = 5.0) -> dict[str, Any]:
    return {"id": form_id, "flowId": "greet",
            "captcha": {"provider": url_provider, "secret": "captcha/secret",
                        "onUnreachable": on_unreachable, "timeoutS": timeout_s}}


@dataclass
class FormsApi:
    harness: TestHarness
    client: httpx.AsyncClient

    async def post(self, form_id: str, body: Any = None, *, address: str = "198.51.100.1",
                   **kwargs: Any) -> httpx.Response:
        headers = {"X-Forwarded-For": address, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return await self.client.post(f"/v1/forms/{form_id}/submissions", headers=headers,
                                      **kwargs)

    def recorded(self, form_id: str) -> list[Event]:
        """The form's form.submitted and form.rejected events, oldest first."""
        return [e for e in self.harness.events if e.execution_id == f"form:{form_id}"
                and e.type in (n.FORM_SUBMITTED, n.FORM_REJECTED)]

    def reasons(self, form_id: str) -> list[str]:
        return [e.data.get("reason", "accepted") for e in self.recorded(form_id)]

    async def executions(self) -> list[Execution]:
        await self.harness.settle()
        return list((await self.harness.engine.list(limit=1000)).items)

    def metric(self, form_id: str, outcome: str) -> float:
        value = self.harness.engine.metrics.registry.get_sample_value(
            "flowmonkey_form_submissions_total", {"form": form_id, "outcome": outcome})
        return value or 0.0


@asynccontextmanager
async def forms_api(*forms: dict[str, Any], captcha_urls: dict[str, str] | None = None,
                    flows: tuple[Any, ...] = (GREET,),
                    trusted_proxies: tuple[str, ...] = PROXIES) -> AsyncIterator[FormsApi]:
    from flowmonkey.metrics import Metrics

    harness = TestHarness(flows=list(flows), handlers=[greet], forms=list(forms),
                          vault=DictVaultProvider({"captcha/secret": SECRET}))
    harness.engine.metrics = Metrics()  # counted apart from other tests
    async with harness:
        verifier = HttpCaptchaVerifier(captcha_urls or dict.fromkeys(PROVIDERS, "http://127.0.0.1:9/"))
        app = create_app(harness.engine, AUTH, trusted_proxies=trusted_proxies,
                         captcha=verifier)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield FormsApi(harness, client)
