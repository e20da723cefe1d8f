"""``POST /v1/hooks/{trigger_id}``: a webhook delivery starts its trigger's flow.

Senders carry no API key (unless the trigger's ``requireApiKey`` asks for one), so
the delivery authenticates itself: an HMAC-SHA256 signature over the raw body with the
trigger's secret, read from the API's vault (:mod:`flowmonkey.api.signatures`). What
happens, in order:

1. an unknown trigger, or one that is not a webhook: 404;
2. ``requireApiKey``: a key with access to the trigger's tenant, else 401 (or 404 for
   another tenant's key, as its other resources);
3. the body, read raw and counted while it streams: 413 past ``maxBodyBytes``;
4. the signature (and a Stripe-style timestamp's tolerance): 401 with no detail. A
   ``trigger.fire`` with the failure ``BAD_SIGNATURE`` is recorded on the trigger at
   most once a second (a flood must not flood the log; metrics count every one);
5. the body as JSON: 400 if it is not;
6. ``trigger.fire`` is sent and answered: 202 ``{executionId, triggerId, duplicate}``;
   a disabled trigger 409 (its ``trigger.failed`` recorded), a context the mapping
   cannot build 422.

The delivery's source key, which the started execution's id derives from, is the
delivery header's value (``deliveryHeader``), else the ``idempotencyKey`` selector's
value, else a fresh id: a retried delivery maps to the first execution (``duplicate``).
The arrival document holds the body, the query and the headers, less the signature,
API-key, cookie and authorization headers (the events keep the arrival).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from flowmonkey.api.schemas import WebhookAccepted, errors
from flowmonkey.api.webhooks import Webhooks

router = APIRouter(prefix="/v1/hooks", tags=["webhooks"])


def webhooks_of(request: Request) -> Webhooks:
    found: Webhooks = request.app.state.webhooks
    return found


@router.post("/{trigger_id}", status_code=202, response_model=WebhookAccepted,
             responses={**errors(400, 401, 404, 409, 413, 422),
                        202: {"description": "the execution started (or had started, for "
                                             "a delivery seen before)"}},
             openapi_extra={"requestBody": {
                 "description": "any JSON body, read raw: its signature is checked over "
                                "the exact bytes",
                 "content": {"application/json": {"schema": {}}}}})
async def deliver(trigger_id: str, request: Request) -> WebhookAccepted:
    """Deliver a webhook to a trigger: no API key needed unless the trigger requires one;
    authenticated by its signature header."""
    return await webhooks_of(request).deliver(trigger_id, request)
