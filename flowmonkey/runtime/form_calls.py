"""The engine's form calls, as commands: a definition checked (its model, its JSON
Schema against the meta-schema, its patterns with RE2) and taken into the registry,
the ``form.register`` commands sent at start, a submission's ``form.submit`` and its
answer turned into a :class:`FormAnswer`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowmonkey.errors import CommandRejected, RegistrationError
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.handlers.registry import FormRegistry
from flowmonkey.kernel.form_checks import (
    MAX_ERROR_CHARS,
    MAX_ERRORS,
    VERDICTS,
    describe,
    form_problems,
)
from flowmonkey.kernel.form_state import form_definition
from flowmonkey.kernel.forms import address_key, content_hash
from flowmonkey.log.base import OutRecord
from flowmonkey.model.form import Form
from flowmonkey.runtime.commands import raise_if_rejected
from flowmonkey.runtime.definition_topic import DefinitionTopic
from flowmonkey.runtime.definitions import checked_definition, register_records

FORMS: DefinitionTopic[Form] = DefinitionTopic(Form, "form", lambda topics: topics.forms)
"""The forms topic (``<prefix>.forms``): every process on a log knows the forms (the
API sanitises and validates submissions with them)."""


def definition_problems(form: Form) -> list[tuple[str, str]]:
    """Every problem of a valid model: its schema against the JSON Schema meta-schema
    (its ``$schema``'s dialect, Draft 2020-12 by default), what the submission
    endpoint will not run (:func:`flowmonkey.forms.validation.schema_problems`), and
    its patterns with RE2."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    schema = form.json_schema
    problems: list[tuple[str, str]] = []
    try:
        dialect = validator_for(schema, default=Draft202012Validator)
        errors = sorted(dialect(dialect.META_SCHEMA).iter_errors(schema),
                        key=lambda e: list(map(str, e.absolute_path)))
    except Exception as exc:  # a $schema or $ref the library cannot even start on
        return [("schema", f"not a JSON Schema: {type(exc).__name__}: {exc}"[:500])]
    for error in errors[:20]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                        for p in error.absolute_path)
        problems.append((f"schema{where}", error.message[:300]))
    from flowmonkey.forms.validation import schema_problems

    return problems + [("schema", p) for p in schema_problems(schema)] + form_problems(form)


def checked_form(form: Form | Mapping[str, Any]) -> Form:
    """``form`` as a model (camelCase JSON accepted), refused with
    :class:`RegistrationError` naming the form and every field at fault."""
    return checked_definition(Form, form, definition_problems, describe)


def adopt_all(registry: FormRegistry, forms: Iterable[Form | Mapping[str, Any]]) -> None:
    for form in forms:
        model = checked_form(form)
        if model.id in registry:
            raise RegistrationError(f"form {model.id!r} is given twice")
        registry.adopt(model)


def register_commands(topic: str, forms: Iterable[Form], now_ms: int,
                      by: str | None) -> list[OutRecord]:
    """The ``form.register`` records for ``forms`` (routed by their entity)."""
    return register_records(topic, n.CMD_FORM_REGISTER,
                            ((f.entity_id, form_definition(f)) for f in forms), now_ms, by)


def submit_data(form_id: str, data: Mapping[str, Any] | None, *, address: str | None,
                verdict: str, errors: Iterable[Mapping[str, Any]] | None,
                token: str | None, execution_id: str | None,
                submission_id: str | None) -> dict[str, Any]:
    """The data of a ``form.submit``: the address only as its keyed hash, the content
    hashed, the errors bounded (the first ``MAX_ERRORS``, each cut to its bound)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(sorted(VERDICTS))}, "
                         f"not {verdict!r}")
    # a spam submission (honeypot filled) and a failed captcha keep nothing of theirs
    kept = dict(data) if data is not None and verdict in ("valid", "invalid") else None
    if kept is None and verdict in ("valid", "invalid"):
        kept = {}
    out: dict[str, Any] = {
        "submission_id": submission_id or uuid.uuid4().hex,
        "verdict": verdict,
        "content_hash": content_hash(kept, token),
        "address_key": address_key(form_id, address) if address else None,
        "data": kept,
    }
    if errors:
        out["errors"] = [{"pointer": str(e.get("pointer", ""))[:MAX_ERROR_CHARS],
                          "message": str(e.get("message", ""))[:MAX_ERROR_CHARS]}
                         for e in list(errors)[:MAX_ERRORS]]
    if token is not None:
        out["token"] = token
        out["execution_id"] = execution_id
    return out


@dataclass(frozen=True, slots=True)
class FormAnswer:
    """What became of a submission.

    ``outcome``: ``accepted``, or why not: ``disabled``, ``spam``, ``invalid``,
    ``captcha_failed``, ``rate_limited``, ``duplicate``. ``submission_id``: this
    submission's. ``execution_id``: the execution it started (or, ``resumed``, the
    one it resumed); for a duplicate, the first submission's (``first_submission_id``).
    ``retry_after_ms``: rate-limited, when one more fits. ``errors``: an invalid
    submission's, as recorded."""

    outcome: str
    submission_id: str
    execution_id: str | None = None
    resumed: bool = False
    first_submission_id: str | None = None
    retry_after_ms: int | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"

    @property
    def duplicate(self) -> bool:
        return self.outcome == "duplicate"


def form_answer(event: Event, submission_id: str) -> FormAnswer:
    """The answer of a ``form.submit`` (``FORM_NOT_FOUND`` and other refusals raised
    as :class:`CommandRejected`)."""
    raise_if_rejected(event)
    d = event.data
    if event.type == n.FORM_SUBMITTED:
        return FormAnswer("accepted", submission_id, d["execution_id"],
                          resumed=bool(d.get("resumed")))
    if event.type != n.FORM_REJECTED:
        raise CommandRejected(f"unexpected answer {event.type} to {n.CMD_FORM_SUBMIT}")
    return FormAnswer(str(d["reason"]), submission_id, d.get("execution_id"),
                      first_submission_id=d.get("first_submission_id"),
                      retry_after_ms=d.get("retry_after_ms"),
                      errors=list(d.get("errors") or []))


__all__ = ["FORMS", "FormAnswer", "adopt_all", "checked_form", "definition_problems",
           "form_answer", "register_commands", "submit_data"]
