"""``POST /v1/inbound/email``: a reply to an ``email-reply`` step's mail resumes it.

No API key: the post is signed (HMAC-SHA256 over the raw body, as webhooks are); see
:mod:`flowmonkey.api.inbound_email` for the order of the checks and the answers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from flowmonkey.api.inbound_email import InboundEmails
from flowmonkey.api.schemas import InboundEmailResumed, errors

router = APIRouter(prefix="/v1/inbound", tags=["inbound email"])


def inbound_emails_of(request: Request) -> InboundEmails:
    found: InboundEmails = request.app.state.inbound_emails
    return found


@router.post("/email", response_model=InboundEmailResumed,
             responses={**errors(400, 401, 404, 409, 413, 422, 503),
                        200: {"description": "the reply resumed the step waiting for it"}},
             openapi_extra={"requestBody": {
                 "description": "the inbound mail service's JSON post (`from`, `to`, "
                                "`subject`, `text`, `html`, `headers`; other fields are "
                                "ignored), read raw: its signature is checked over the "
                                "exact bytes",
                 "content": {"application/json": {"schema": {}}}}})
async def receive_email(request: Request) -> InboundEmailResumed:
    """Receive a reply to a mail an ``email-reply`` step sent: no API key; authenticated
    by its signature header (`X-Hub-Signature-256`, or `Stripe-Signature`)."""
    return await inbound_emails_of(request).receive(request)
