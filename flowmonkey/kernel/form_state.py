"""A form's state on its partition: what ``kernel/form_apply.py`` builds from the form's
events and ``kernel/forms.py`` decides from.

A form is an entity on the log like a trigger: its commands and events carry
``form:<id>`` (``model.form.entity_id``) and it has a seq of its own. Every submission
to a form is decided by the form's one partition, so its rate-limit windows and its
duplicate window hold for any number of API processes.

What a form remembers is bounded whatever its submitters do: per client address (only
a keyed hash of it, never the address) the times of its last submissions, at most the
per-address limit's count of them, for at most ``MAX_ADDRESSES`` addresses (the least
recently seen is forgotten first); the form's own last submission times (at most the
per-form count); and the content hashes of accepted submissions within the duplicate
window, at most ``MAX_DUPLICATES`` (the oldest forgotten first).

As with executions, appliers replace containers instead of changing them in place,
so a ``clone()`` is shallow and independent.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Any

from flowmonkey.kernel.entities import ModelCache, definition_json
from flowmonkey.model.form import Form

MAX_ADDRESSES = 10_000
"""Client addresses whose windows a form keeps; past this the least recently seen one
is forgotten (its next submission starts a fresh window). The per-form limit bounds
what many addresses together can send."""
MAX_DUPLICATES = 10_000
"""Accepted submissions a form remembers for its duplicate window; past this the oldest
is forgotten (a duplicate of it is accepted again)."""


@dataclass(slots=True)
class FormState:
    entity_id: str  # "form:<id>"
    form_id: str
    definition: dict[str, Any]  # form_definition(Form): camelCase JSON
    tenant_id: str | None
    enabled: bool
    seq: int = 0
    created_at: int = 0
    updated_at: int = 0
    # address key -> submit times (ms, ascending), least recently seen address first
    addresses: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # the form's own last submit times (ms, ascending), for its per-form limit
    recent: tuple[int, ...] = ()
    # content hash -> (submission id, execution id, expires at ms), oldest first
    duplicates: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)
    # outcome ("accepted", or a rejection's reason) -> submissions
    counts: dict[str, int] = field(default_factory=dict)
    last_submitted_at: int | None = None

    def clone(self) -> FormState:
        return FormState(*_all_fields(self))

    def model(self) -> Form:
        """The definition as a model (validated when it was registered)."""
        return form_model(self.definition)


_all_fields = operator.attrgetter(*(f.name for f in fields(FormState)))
_FIELDS = frozenset(f.name for f in fields(FormState))

_MODELS = ModelCache(Form)


def form_model(definition: dict[str, Any]) -> Form:
    """The model of a stored definition, cached per form id (every submission reads
    it; a changed definition replaces the cached one)."""
    return _MODELS.model(definition)


def form_definition(form: Form) -> dict[str, Any]:
    """The stored (JSON) form of a definition, as ``form.register`` carries it."""
    return definition_json(form)


def form_to_json(state: FormState) -> dict[str, Any]:
    out = {name: getattr(state, name) for name in _FIELDS}
    out["addresses"] = [[key, list(times)] for key, times in state.addresses.items()]
    out["recent"] = list(state.recent)
    out["duplicates"] = [[key, *entry] for key, entry in state.duplicates.items()]
    out["counts"] = dict(state.counts)
    return out


def form_from_json(raw: dict[str, Any]) -> FormState:
    """The state :func:`form_to_json` wrote (unknown keys ignored: a newer writer's
    extra fields do not stop an older reader)."""
    values = {k: v for k, v in raw.items() if k in _FIELDS}
    values["addresses"] = {key: tuple(times) for key, times in values.get("addresses") or ()}
    values["recent"] = tuple(values.get("recent") or ())
    values["duplicates"] = {key: (submission, execution, expires)
                            for key, submission, execution, expires
                            in values.get("duplicates") or ()}
    values["counts"] = dict(values.get("counts") or {})
    return FormState(**values)


__all__ = ["MAX_ADDRESSES", "MAX_DUPLICATES", "FormState", "form_definition",
           "form_from_json", "form_model", "form_to_json"]
