"""Form definitions as users write them (a flow file's ``forms:`` section, a file of
forms, an ``--app`` module's ``forms``): parsed and validated with every problem at
once, each naming the form and the field (``form 'signup': schema.properties.email.
pattern: ...``), like flows and triggers.

Beyond the model: the JSON Schema against its meta-schema, its patterns with RE2
(:func:`~flowmonkey.runtime.form_calls.definition_problems`), a form id given twice,
and a flow that is not known (when the known flows are given).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from flowmonkey.model.form import Form
from flowmonkey.runtime.definitions import parse_definitions, twice_problems, unique
from flowmonkey.runtime.form_calls import definition_problems

#: the most forms one definition source may hold (a file, a module's list)
MAX_FORMS = 10_000


def parse_forms(raw: Iterable[Any]) -> tuple[list[Form], list[str]]:
    """The forms of ``raw`` (definitions as written, camelCase, or ``Form``s) that are
    valid, and the problems of the others."""
    return parse_definitions(raw, Form, "form", "id (and flowId, schema, ...)",
                             definition_problems, MAX_FORMS)


def cross_problems(forms: Sequence[Form], flow_ids: Collection[str] | None = None
                   ) -> list[str]:
    """Problems among forms: an id given twice (with different definitions), and, with
    ``flow_ids``, a flow to start that is not among them."""
    found = twice_problems(forms, "form")
    if flow_ids is not None:
        known = ", ".join(sorted(flow_ids)) or "none"
        found += [f"form {form.id!r}: flowId: flow {form.flow_id!r} is not registered "
                  f"(registered flows: {known})"
                  for form in unique(forms)
                  if form.flow_id is not None and form.flow_id not in flow_ids]
    return found


__all__ = ["MAX_FORMS", "cross_problems", "parse_forms", "unique"]
