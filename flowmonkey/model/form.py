"""Form definitions: public forms whose submissions start a flow, or resume a step
that waits for one (the ``form-submit`` handler).

A form names its tenant, the flow a submission starts (none for a form that only
answers ``form-submit`` steps), a JSON Schema the submission must satisfy, how each
field is sanitised (trimmed, control characters and HTML stripped, lengths capped),
a honeypot field, rate limits per client address and per form, a duplicate window,
and an optional captcha whose secret is a vault secret's name (never the secret).

What the started execution's context is built from (``context``, an input selector
as for a step's input; without it the sanitised data is the context): ``data`` (the
sanitised submission), ``form`` (its id) and ``submission`` (``id``, ``submittedAt``).
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import Field, model_validator

from flowmonkey.model.base import FrozenModel
from flowmonkey.model.selectors import InputSelector

FORM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ENTITY_PREFIX = "form:"
"""A form's commands and events carry ``form:<id>`` where an execution's carry its id
(the key that places them on a partition; no execution id may start so)."""

DEFAULT_MAX_FIELD_CHARS = 10_000
MAX_FIELD_CHARS = 1_000_000
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_BODY_BYTES = 1_048_576
MAX_WINDOW_S = 7 * 24 * 3600


def entity_id(form_id: str) -> str:
    """The key of a form's commands and events."""
    return ENTITY_PREFIX + form_id


TOKEN_SEPARATOR = "."


def step_token(execution_id: str, secret: str) -> str:
    """A resume token for a step that waits for a form (``form-submit``): the
    execution's id (base64url) and ``secret`` (which only the execution's state
    knows, and which alone makes the token good). The submission endpoint reads the
    execution back from it (:func:`token_execution_id`) to route the resume."""
    encoded = base64.urlsafe_b64encode(execution_id.encode()).decode().rstrip("=")
    return f"{encoded}{TOKEN_SEPARATOR}{secret}"


def token_execution_id(token: str) -> str | None:
    """The execution a :func:`step_token` names; None for any other text."""
    encoded, separator, secret = token.partition(TOKEN_SEPARATOR)
    if not separator or not encoded or not secret or len(encoded) > 2_000:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        execution_id = raw.decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return execution_id if execution_id and "\x00" not in execution_id else None


class FieldRules(FrozenModel):
    """How one string field is sanitised before validation: ``trim`` whitespace at both
    ends, ``strip_control`` characters (C0/C1, except tab and newline), ``strip_html``
    tags (and decode nothing: the text stays as sent minus the tags), and
    ``max_chars`` (longer is a validation error, not a silent cut)."""

    trim: bool = True
    strip_control: bool = True
    strip_html: bool = False
    max_chars: int = Field(default=DEFAULT_MAX_FIELD_CHARS, ge=1, le=MAX_FIELD_CHARS)


class RateLimit(FrozenModel):
    """At most ``count`` submissions per ``window_s`` seconds."""

    count: int = Field(ge=1, le=1_000_000)
    window_s: int = Field(ge=1, le=MAX_WINDOW_S)


class RateLimits(FrozenModel):
    per_address: RateLimit | None = None
    per_form: RateLimit | None = None


class Captcha(FrozenModel):
    """A captcha checked before anything else: ``provider``'s verify call with the
    vault secret ``secret`` and the token the client sent in ``field`` (by default
    the provider's usual field: ``g-recaptcha-response``, ``h-captcha-response``,
    ``cf-turnstile-response``). ``on_unreachable``: ``closed`` refuses the submission
    when the provider cannot be asked (the default), ``open`` lets it through."""

    provider: Literal["recaptcha", "hcaptcha", "turnstile"]
    secret: str = Field(min_length=1, max_length=200)
    field: str | None = Field(default=None, min_length=1, max_length=100)
    on_unreachable: Literal["open", "closed"] = "closed"
    timeout_s: float = Field(default=5.0, gt=0, le=30)


class Form(FrozenModel):
    """A form definition (camelCase in files, snake_case in Python)."""

    id: str = Field(pattern=FORM_ID_PATTERN)
    tenant_id: str | None = None
    description: str | None = Field(default=None, max_length=1_000)
    flow_id: str | None = Field(default=None, min_length=1)
    flow_version: str | None = None
    enabled: bool = True
    json_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"},
                                        alias="schema")
    fields: dict[str, FieldRules] = Field(default_factory=dict, max_length=1_000)
    default_rules: FieldRules = Field(default_factory=FieldRules)
    honeypot: str | None = Field(default=None, min_length=1, max_length=100)
    rate_limit: RateLimits | None = None
    duplicate_window_s: int = Field(default=0, ge=0, le=MAX_WINDOW_S)
    captcha: Captcha | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1, le=MAX_BODY_BYTES)
    context: InputSelector | None = None

    @model_validator(mode="after")
    def _honeypot_is_not_a_field(self) -> Form:
        if self.honeypot is not None and self.honeypot in self.fields:
            raise ValueError(f"the honeypot {self.honeypot!r} must not be a real field")
        return self

    @property
    def entity_id(self) -> str:
        return entity_id(self.id)
