"""What ``POST /v1/forms/{form_id}/submissions`` does (see
:mod:`flowmonkey.api.routes_forms` for the order of the checks and the answers).

Nothing a client sends reaches the log until it has been read within the form's
byte limit, parsed within :class:`~flowmonkey.forms.bounds.ParseBounds`, and had its
captcha checked, its honeypot looked at, its strings sanitised and its fields checked
against the schema. A submission refused before it is parsed (413, 415, 400) is only
counted; one refused after (spam, invalid, a failed captcha) is also recorded on the
form's partition with its verdict, where it counts against the rate limits. The rate
limits and the duplicate window are decided there too, so every API process sees
the same ones.
"""

from __future__ import annotations

import hmac
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from flowmonkey.api.body_limit import read_body
from flowmonkey.api.errors import ApiError, not_found
from flowmonkey.engine import Engine
from flowmonkey.errors import CommandRejected, ExecutionNotFoundError, ResumeTokenError
from flowmonkey.events import names as n
from flowmonkey.forms.addresses import Network, client_address, parse_networks
from flowmonkey.forms.bounds import BodyError, ParseBounds
from flowmonkey.forms.captcha import TOKEN_FIELDS, CaptchaVerifier
from flowmonkey.forms.parsing import coerce_form_values, parse_body
from flowmonkey.forms.sanitise import Problem, sanitise
from flowmonkey.forms.validation import SchemaUnsupported, schema_errors
from flowmonkey.handlers.form_submit import token_target
from flowmonkey.kernel.forms import submission_execution_id
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.form import Form

log = logging.getLogger("flowmonkey.api")

TOKEN_FIELD = "token"


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to a submission taken (201), or a duplicate of one (200)."""

    submission_id: str
    execution_id: str
    duplicate: bool = False
    resumed: bool = False
    outcome: str = "accepted"  # counted as: accepted, duplicate, spam


class Refused(ApiError):
    """An error answer, with the outcome it is counted as."""

    def __init__(self, outcome: str, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None,
                 problems: Sequence[Problem] = ()) -> None:
        super().__init__(status, code, message, headers=headers)
        self.outcome = outcome
        self.problems = list(problems)


class FormSubmissions:
    """The submission endpoint of one API app."""

    def __init__(self, engine: Engine, captcha: CaptchaVerifier,
                 trusted_proxies: Sequence[str] = (),
                 bounds: ParseBounds | None = None) -> None:
        self.engine = engine
        self.captcha = captcha
        self.proxies: tuple[Network, ...] = parse_networks(trusted_proxies)
        self.bounds = bounds or ParseBounds()

    def _count(self, form_id: str, outcome: str) -> None:
        self.engine.metrics.form_submissions.labels(form_id, outcome).inc()

    def form(self, form_id: str) -> Form:
        form = self.engine.forms.get(form_id)
        if form is None:
            raise not_found("form", form_id)
        return form

    async def submit(self, form_id: str, request: Request) -> Submitted:
        form = self.form(form_id)
        try:
            submitted = await self._submit(form, request)
        except Refused as exc:
            self._count(form.id, exc.outcome)
            raise
        except ApiError as exc:
            self._count(form.id, "failed" if exc.status >= 500 else "refused")
            raise
        self._count(form.id, submitted.outcome)
        return submitted

    def address(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.getlist("x-forwarded-for"), self.proxies)

    async def _submit(self, form: Form, request: Request) -> Submitted:
        if not form.enabled:
            raise Refused("disabled", 409, "FORM_DISABLED", f"form {form.id!r} is disabled")
        try:
            body = await read_body(request, form.max_body_bytes)
        except ApiError as exc:
            raise Refused("too_large", exc.status, exc.code, exc.message) from None
        try:
            data, form_encoded = parse_body(request.headers.get("content-type"), body,
                                            self.bounds)
        except BodyError as exc:
            outcome = {415: "unsupported_media_type"}.get(exc.status, "bad_body")
            raise Refused(outcome, exc.status, exc.code, exc.message) from None
        submission = _Submission(self, form, request, data)
        token = submission.take_token()
        await submission.check_token_waits()
        await submission.check_captcha()
        if submission.honeypot_filled():
            return await submission.spam()
        if form_encoded:
            submission.data = coerce_form_values(submission.data, form.json_schema)
        sanitised = sanitise(form, submission.data)
        try:
            found = schema_errors(form.json_schema, sanitised.data)
        except SchemaUnsupported as exc:
            log.error("form %r: its schema cannot check submissions: %s", form.id, exc)
            raise Refused("failed", 500, "FORM_SCHEMA_UNUSABLE", "the form's schema cannot "
                          "be used; the server log says why") from None
        problems = _unique([*sanitised.problems, *found])
        if problems:
            await submission.record("invalid", sanitised.data, problems)
            raise Refused("invalid", 422, "SUBMISSION_INVALID",
                          f"the submission does not fit form {form.id!r}: "
                          + "; ".join(f"{p.pointer or '(submission)'}: {p.message}"
                                      for p in problems[:5]), problems=problems)
        return await submission.send(sanitised.data, token)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for problem in problems:
        key = (problem.pointer, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out


class _Submission:
    """One submission on its way through the checks."""

    def __init__(self, owner: FormSubmissions, form: Form, request: Request,
                 data: dict[str, Any]) -> None:
        self.owner = owner
        self.engine = owner.engine
        self.form = form
        self.request = request
        self.data = data
        self.id = uuid.uuid4().hex
        self.address = owner.address(request)
        self.token: str | None = None
        self.execution_id: str | None = None

    def take_token(self) -> str | None:
        """The resume token of a ``form-submit`` step (``?token=``, or a ``token``
        field), checked to name this form; it is not part of the data."""
        # a form whose schema has a field "token" keeps it as data
        field = self.data.pop(TOKEN_FIELD, None) if TOKEN_FIELD not in \
            self.form.json_schema.get("properties", {}) else None
        token: Any = self.request.query_params.get(TOKEN_FIELD) or field
        if token is None:
            return None
        target = token_target(token) if isinstance(token, str) else None
        if target is None or target[0] != self.form.id:
            raise Refused("token_refused", 404, "TOKEN_NOT_FOUND",
                          f"the token is not one of form {self.form.id!r}'s waiting steps")
        self.token, self.execution_id = str(token), target[1]
        return self.token

    async def check_token_waits(self) -> None:
        """Refuse, before anything is recorded, a token whose execution does not exist
        or waits on another token (as the projection shows it): a forged token leaves
        no submission behind. A token whose step no longer waits goes on to the
        execution's partition, which answers why (used, expired, revoked)."""
        if self.token is None or self.execution_id is None:
            return
        execution = await self.engine.projection.get(self.execution_id,
                                                     tenant_id=self.form.tenant_id)
        if execution is None:
            raise Refused("token_refused", 404, "TOKEN_NOT_FOUND",
                          "the token's execution does not exist")
        current = execution.resume_token
        if execution.status == ExecutionStatus.WAITING and current is not None and \
                not hmac.compare_digest(current.encode(), self.token.encode()):
            raise Refused("token_refused", 404, n.REJECT_INVALID_TOKEN,
                          f"the token is not one of form {self.form.id!r}'s waiting steps")

    async def check_captcha(self) -> None:
        captcha = self.form.captcha
        if captcha is None:
            return
        field = captcha.field or TOKEN_FIELDS[captcha.provider]
        sent = self.data.pop(field, None)
        secret = await self._secret(captcha.secret)
        verdict = await self.owner.captcha.verify(
            captcha.provider, secret, sent if isinstance(sent, str) else None,
            self.address, captcha.timeout_s)
        del secret
        if verdict.passed:
            return
        if verdict.outcome == "unreachable":
            if captcha.on_unreachable == "open":
                log.warning("form %r: captcha not checked, the provider is unreachable "
                            "(onUnreachable: open): %s", self.form.id, verdict.reason)
                return
            await self.record("captcha_failed", None,
                              [Problem("", f"captcha not checked: {verdict.reason}")])
            raise Refused("captcha_unavailable", 503, "CAPTCHA_UNAVAILABLE",
                          "the captcha could not be checked; try again later",
                          headers={"Retry-After": "30"})
        await self.record("captcha_failed", None, [Problem("/" + field, verdict.reason)])
        raise Refused("captcha_failed", 400, "CAPTCHA_FAILED",
                      f"the captcha was not solved: {verdict.reason}")

    async def _secret(self, name: str) -> str:
        vault = self.engine.vault
        secret = await vault.get_secret(name) if vault is not None else None
        if not secret:
            log.error("form %r: its captcha secret %r is not in the vault%s", self.form.id,
                      name, "" if vault is not None else " (the API has no vault provider)")
            raise Refused("failed", 503, "CAPTCHA_SECRET_UNAVAILABLE",
                          "the form's captcha cannot be checked; the server log says why")
        return secret

    def honeypot_filled(self) -> bool:
        name = self.form.honeypot
        if name is None or name not in self.data:
            return False
        value = self.data.pop(name)
        return value not in (None, "", [])

    async def spam(self) -> Submitted:
        """Recorded as spam and answered as if taken: a bot learns nothing from it."""
        await self.record("spam", None, ())
        return Submitted(self.id, self.execution_id
                         or submission_execution_id(self.form.id, self.id), outcome="spam")

    async def record(self, verdict: str, data: dict[str, Any] | None,
                     problems: Sequence[Problem]) -> None:
        """Have the form's partition record a refused submission (its answer changes
        nothing of ours: the refusal is decided here)."""
        try:
            await self.engine.submit_form(
                self.form.id, data, address=self.address, verdict=verdict,
                errors=[p.to_dict() for p in problems], submission_id=self.id)
        except CommandRejected as exc:
            if exc.code != "FORM_NOT_FOUND":
                raise
            raise not_found("form", self.form.id) from None

    async def send(self, data: dict[str, Any], token: str | None) -> Submitted:
        try:
            answer = await self.engine.submit_form(
                self.form.id, data, address=self.address, token=token,
                execution_id=self.execution_id, submission_id=self.id)
        except ResumeTokenError as exc:
            status = 404 if exc.code == n.REJECT_INVALID_TOKEN else 410
            raise Refused("token_refused", status, exc.code, exc.message) from None
        except ExecutionNotFoundError:
            raise Refused("token_refused", 404, "TOKEN_NOT_FOUND",
                          "the token's execution does not exist") from None
        except CommandRejected as exc:
            if exc.code == "FORM_NOT_FOUND":
                raise not_found("form", self.form.id) from None
            if exc.code == n.REJECT_NOT_WAITING:
                raise Refused("token_refused", 410, exc.code, exc.message) from None
            raise
        if answer.accepted:
            assert answer.execution_id is not None
            return Submitted(answer.submission_id, answer.execution_id,
                             resumed=answer.resumed)
        if answer.duplicate:
            assert answer.first_submission_id is not None
            return Submitted(answer.first_submission_id, answer.execution_id or "",
                             duplicate=True, outcome="duplicate")
        if answer.outcome == "rate_limited":
            seconds = max(1, math.ceil((answer.retry_after_ms or 1000) / 1000))
            raise Refused("rate_limited", 429, "RATE_LIMITED",
                          f"too many submissions; try again in {seconds} s",
                          headers={"Retry-After": str(seconds)})
        if answer.outcome == "disabled":
            raise Refused("disabled", 409, "FORM_DISABLED",
                          f"form {self.form.id!r} is disabled")
        problems = [Problem(str(e.get("pointer", "")), str(e.get("message", "")))
                    for e in answer.errors]
        raise Refused("invalid", 422, "SUBMISSION_INVALID",
                      "; ".join(p.message for p in problems) or "the submission was refused",
                      problems=problems)
