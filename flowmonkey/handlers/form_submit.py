"""The ``form-submit`` handler: a step that waits for a form to be submitted.

The step waits for a signal whose resume token is bound to its form and execution;
its output (at the step's ``outputKey`` while it waits) carries ``formId`` and
``submissionUrl``, ``/v1/forms/<formId>/submissions?token=<token>`` (prefixed with
``FLOWMONKEY_PUBLIC_URL`` when set), the address to send someone. A valid
submission there resumes the step with the sanitised data, which replaces that output;
an invalid one is answered 422 and leaves the step waiting. ``timeoutMs`` bounds the
wait (the execution is cancelled with source ``timeout`` when it passes), and the
execution's own wait timeout applies as to any wait.

The token is :func:`~flowmonkey.model.form.step_token`'s, ``<execution id>.<secret>``,
with ``<form id>.<random>`` as the secret (ids base64url-encoded): the API reads which
execution and form it is for, so it refuses a token sent to another form (whose
schema might let anything through) and routes the resume to the execution's
partition, where the whole token is checked (unknown, used, expired: refused there).
The random part, 192 bits from :mod:`secrets`, is what makes it unguessable.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from typing import Any
from urllib.parse import quote

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.handlers.config import ConfigError, int_in
from flowmonkey.model.form import FORM_ID_PATTERN, TOKEN_SEPARATOR, step_token, token_execution_id
from flowmonkey.model.result import Result, StepResult

TYPE = "form-submit"
ENV_PUBLIC_URL = "FLOWMONKEY_PUBLIC_URL"
MAX_TIMEOUT_MS = 365 * 24 * 3_600_000
#: a token longer than this is no token of this handler's (the form's is at most 136
#: characters encoded, an execution id's 683, the random part 32)
MAX_TOKEN_CHARS = 1_000
_FORM_ID = re.compile(FORM_ID_PATTERN)

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["formId"],
    "properties": {
        "formId": {"type": "string", "pattern": FORM_ID_PATTERN,
                   "description": "the form whose submission resumes the step"},
        "timeoutMs": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS,
                      "description": "how long to wait for the submission"},
    },
}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def form_token(form_id: str, execution_id: str) -> str:
    """A fresh resume token for a step of ``execution_id`` waiting for ``form_id``."""
    return step_token(execution_id, _b64(form_id) + TOKEN_SEPARATOR
                      + secrets.token_urlsafe(24))


def token_target(token: str) -> tuple[str, str] | None:
    """``(form id, execution id)`` a token of this handler names, else None."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    execution_id = token_execution_id(token)
    encoded, _, random = token.partition(TOKEN_SEPARATOR)[2].partition(TOKEN_SEPARATOR)
    form_id = _unb64(encoded)
    if execution_id is None or not random or not _FORM_ID.fullmatch(form_id):
        return None
    return form_id, execution_id


def submission_url(form_id: str, token: str, public_url: str | None) -> str:
    path = f"/v1/forms/{quote(form_id, safe='')}/submissions?token={quote(token, safe='')}"
    return (public_url or "").rstrip("/") + path


class FormSubmitHandler:
    """Wait for a submission of a form (type ``form-submit``)."""

    metadata = HandlerMetadata(
        type=TYPE,
        name="Form submission",
        description="Wait until the form `formId` is submitted through the step's "
                    "submission URL; resumes with the sanitised, validated data.",
        category="control",
        config_schema=CONFIG_SCHEMA,
    )

    def __init__(self, public_url: str | None = None) -> None:
        """``public_url``: the API's base URL in submission URLs (default: the
        ``FLOWMONKEY_PUBLIC_URL`` variable; unset: URLs are paths)."""
        self.public_url = public_url if public_url is not None else \
            (os.environ.get(ENV_PUBLIC_URL, "").strip() or None)

    async def execute(self, params: HandlerParams) -> StepResult:
        form_id = params.config.get("formId")
        if not isinstance(form_id, str) or not _FORM_ID.fullmatch(form_id):
            return Result.failure("INPUT_ERROR", "form-submit: config.formId must be a "
                                  "form id (letters, digits, '._-')")
        try:
            timeout_ms = int_in(params.config, "timeoutMs", 0, 0, MAX_TIMEOUT_MS)
        except ConfigError as exc:
            return Result.failure("INPUT_ERROR", f"form-submit: {exc}")
        token = form_token(form_id, params.execution.id)
        return Result.wait_for_signal(
            f"waiting for a submission of form {form_id!r}", resume_token=token,
            timeout_ms=timeout_ms or None,
            output={"formId": form_id,
                    "submissionUrl": submission_url(form_id, token, self.public_url)})
