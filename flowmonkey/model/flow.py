"""Flow and step definitions (FEATURES A1–A3, A6)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import get_close_matches
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from flowmonkey.errors import FlowValidationError
from flowmonkey.model import selectors
from flowmonkey.model.base import FlowMonkeyModel, FrozenModel
from flowmonkey.model.selectors import FullSelector, InputSelector
from flowmonkey.model.tables import ColumnDef, PipeDef, PipeMapping, TableDef

FlowStatus = Literal["draft", "published", "archived"]

DEFAULT_BACKOFF_MULTIPLIER = 2.0
DEFAULT_MAX_BACKOFF_MS = 60_000


class Transitions(FrozenModel):
    """Where to go next. ``None`` ends the flow (completed on success, failed on failure).

    ``on_resume`` says where to go after a wait ends; when absent, ``on_success`` is used.
    """

    on_success: str | None = None
    on_failure: str | None = None
    on_resume: str | None = None

    @property
    def resume_target(self) -> str | None:
        if "on_resume" in self.model_fields_set:
            return self.on_resume
        return self.on_success


class RetryConfig(FrozenModel):
    """Retries after the first try: ``max_attempts`` counts retries, not attempts."""

    max_attempts: int = Field(ge=0)
    backoff_ms: int = Field(default=0, ge=0)
    backoff_multiplier: float = Field(default=DEFAULT_BACKOFF_MULTIPLIER, ge=1.0)
    max_backoff_ms: int = Field(default=DEFAULT_MAX_BACKOFF_MS, ge=0)
    retry_on: list[str] | None = None

    def backoff_for(self, attempt: int) -> int:
        """Delay before retry number ``attempt`` (1-based)."""
        raw = self.backoff_ms * (self.backoff_multiplier ** (attempt - 1))
        return int(min(raw, self.max_backoff_ms))

    def retries(self, code: str) -> bool:
        return self.retry_on is None or code in self.retry_on


class Step(FrozenModel):
    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    input: InputSelector = Field(default_factory=FullSelector)
    output_key: str | None = None
    transitions: Transitions = Field(default_factory=Transitions)
    retry: RetryConfig | None = None
    name: str | None = None
    description: str | None = None
    timeout_ms: int | None = Field(default=None, gt=0)


class VisualMetadata(FlowMonkeyModel):
    """Editor layout (nodes, canvas, styles): stored, never used by the engine."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    canvas: dict[str, Any] = Field(default_factory=dict)
    styles: dict[str, dict[str, Any]] = Field(default_factory=dict)


_VERSION_PART = re.compile(r"(\d+)|([^\d.]+)")


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key for versions: numeric parts compare as numbers (``1.10.0`` > ``1.9.0``)."""
    parts: list[tuple[int, int | str]] = []
    for number, text in _VERSION_PART.findall(version):
        parts.append((1, int(number)) if number else (0, text))
    return tuple(parts)


# How to add a handler, for Python code; the CLI names its own options instead.
ENGINE_HANDLER_HINT = "register one: Engine(handlers=[...]) or engine.register_handler(...)"


class Flow(FrozenModel):
    """A workflow definition; immutable once registered."""

    id: str = Field(min_length=1)
    version: str = "1.0.0"
    name: str | None = None
    description: str | None = None
    initial_step_id: str
    steps: dict[str, Step]
    pipes: list[PipeDef] = Field(default_factory=list)
    status: FlowStatus | None = None
    tags: list[str] = Field(default_factory=list)
    visual: VisualMetadata | None = None
    metadata: dict[str, Any] | None = None
    created_at: int | None = None
    updated_at: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _steps_from_list_or_keys(cls, data: Any) -> Any:
        """Accept steps as a list, and fill a step's ``id`` from its key when absent."""
        return _steps_by_key(data)

    @property
    def effective_status(self) -> FlowStatus:
        """A flow given without a status counts as published."""
        return self.status or "published"

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def step(self, step_id: str) -> Step | None:
        return self.steps.get(step_id)

    def problems(
        self,
        handler_types: Iterable[str] | None = None,
        tables: dict[str, TableDef] | None = None,
        *,
        handler_hint: str = ENGINE_HANDLER_HINT,
    ) -> list[tuple[str | None, str, str]]:
        """Every structural problem as ``(step_id, field, message)``; [] when valid.

        Fields are named as users write them: their camelCase JSON names.
        ``handler_hint`` ends the message about an unknown handler type: how to
        register one where the caller is (Python by default, or the CLI's options).
        """
        found: list[tuple[str | None, str, str]] = []
        known_handlers = set(handler_types) if handler_types is not None else None
        if not self.steps:
            found.append((None, "steps", "flow has no steps"))
        if self.initial_step_id not in self.steps:
            found.append((None, "initialStepId",
                          f"initial step {self.initial_step_id!r} is not one of the steps"))
        for key, step in self.steps.items():
            if step.id != key:
                found.append((key, "id", f"step key {key!r} differs from its id {step.id!r}"))
            for name in ("on_success", "on_failure", "on_resume"):
                target = getattr(step.transitions, name)
                if target is not None and target not in self.steps:
                    found.append((key, f"transitions.{to_camel(name)}",
                                  f"unknown step {target!r}"))
            if known_handlers is not None and step.type not in known_handlers:
                found.append((key, "type", f"unknown handler type {step.type!r}; "
                              + _suggestion(step.type, known_handlers, handler_hint)))
        pipe_ids: set[str] = set()
        for pipe in self.pipes:
            where = f"pipes[{pipe.id}]"
            if pipe.id in pipe_ids:
                found.append((None, where, f"duplicate pipe id {pipe.id!r}"))
            pipe_ids.add(pipe.id)
            if pipe.step_id not in self.steps:
                found.append((None, f"{where}.stepId", f"unknown step {pipe.step_id!r}"))
            if tables is not None:
                table = tables.get(pipe.table_id)
                if table is None:
                    found.append((None, f"{where}.tableId", f"unknown table {pipe.table_id!r}"))
                else:
                    for i, mapping in enumerate(pipe.mappings):
                        if table.column(mapping.column_id) is None:
                            found.append((None, f"{where}.mappings[{i}].columnId",
                                          f"table {pipe.table_id!r} has no column "
                                          f"{mapping.column_id!r}"))
        return found

    def check(
        self,
        handler_types: Iterable[str] | None = None,
        tables: dict[str, TableDef] | None = None,
        more: Iterable[tuple[str | None, str, str]] = (),
        *,
        handler_hint: str = ENGINE_HANDLER_HINT,
    ) -> None:
        """Raise :class:`FlowValidationError` naming the flow, step and field of each problem
        (``more``: problems found elsewhere, such as the handlers' checks of step configs)."""
        found = self.problems(handler_types, tables, handler_hint=handler_hint) + list(more)
        if not found:
            return
        lines = [
            f"flow {self.ref}" + (f", step {step!r}" if step else "") + f", field {field}: {msg}"
            for step, field, msg in found
        ]
        first_step, first_field, _ = found[0]
        raise FlowValidationError(
            "invalid flow: " + "; ".join(lines),
            flow_id=self.id, step_id=first_step, field=first_field, problems=lines,
        )

    @classmethod
    def parse(cls, data: Any) -> Flow:
        """Validate raw data into a Flow, turning pydantic errors into FlowValidationError."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise flow_validation_error(data, exc) from None


def _steps_by_key(data: Any) -> Any:
    """``data`` with its steps as a dict by id, each step with its ``id``."""
    if not isinstance(data, dict):
        return data
    steps = data.get("steps")
    if isinstance(steps, list):
        data = {**data, "steps": {s.get("id") if isinstance(s, dict) else s.id: s
                                  for s in steps}}
    elif isinstance(steps, dict):
        filled = {}
        for key, step in steps.items():
            if isinstance(step, dict) and "id" not in step:
                step = {**step, "id": key}
            filled[key] = step
        data = {**data, "steps": filled}
    return data


def _suggestion(handler_type: str, known: set[str], hint: str) -> str:
    close = get_close_matches(handler_type, sorted(known), n=1, cutoff=0.75)
    if close:
        return f"did you mean {close[0]!r}?"
    return ("the known types are " + ", ".join(sorted(known)) if known else
            "no handlers are registered") + f" ({hint})"


_DEFINITION_MODELS: tuple[type[BaseModel], ...] = (
    Flow, Step, Transitions, RetryConfig, VisualMetadata, PipeDef, PipeMapping,
    selectors.KeySelector, selectors.KeysSelector, selectors.PathSelector,
    selectors.TemplateSelector, selectors.FullSelector, selectors.StaticSelector,
    TableDef, ColumnDef,
)
# Python field name -> the JSON name users write (``on_success`` -> ``onSuccess``).
_JSON_NAMES = {name: info.alias or to_camel(name)
               for model in _DEFINITION_MODELS
               for name, info in model.model_fields.items() if "_" in name}
_SELECTOR_TAGS = frozenset({"key", "keys", "path", "template", "full", "static"})


def json_path(loc: Iterable[str | int]) -> str:
    """A pydantic error location as the path users would write: camelCase field names
    (pydantic reports the name the input used, which may be snake_case), list indexes
    in brackets, and no selector tag (pydantic puts the ``type`` of a discriminated
    ``input`` into the location: ``input.key.key`` is the ``key`` of ``input``)."""
    path = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif previous == "input" and part in _SELECTOR_TAGS:
            pass
        else:
            name = _JSON_NAMES.get(part, part)
            path = f"{path}.{name}" if path else name
        previous = part
    return path


def _message(err: Any) -> str:
    """Pydantic's message, with how to fix a YAML number given for a string."""
    value = err.get("input")
    if err["type"] != "string_type" or isinstance(value, bool) \
            or not isinstance(value, int | float):
        return str(err["msg"])
    if tuple(err["loc"]) == ("version",):
        return (f"must be a string, got the number {value}: quote it, e.g. "
                f'version: "{value}" or version: "1.0.0" (YAML reads an unquoted {value} '
                "as a number)")
    return f"must be a string, got the number {value}: quote it (\"{value}\") in YAML"


_REQUIRED_FIELDS = frozenset({"id", "initialStepId", "initial_step_id", "steps", "type"})


def _salvage(data: Any, exc: ValidationError) -> Flow | None:
    """``data`` parsed with each invalid field set aside (an optional one dropped, a
    number given for a string read as text), so that the checks of a parsed flow can
    still run; None when an invalid field cannot be set aside (a required one)."""
    if not isinstance(data, dict):
        return None
    raw = _steps_by_key(dict(data))
    steps = raw.get("steps")
    if isinstance(steps, dict):
        raw["steps"] = steps = {k: dict(v) if isinstance(v, dict) else v
                                for k, v in steps.items()}
    for err in exc.errors():
        loc = list(err["loc"])
        owner: Any = raw
        if len(loc) >= 3 and loc[0] == "steps" and isinstance(steps, dict):
            owner, loc = steps.get(loc[1]), loc[2:]
        if not loc or not isinstance(owner, dict) or loc[0] in _REQUIRED_FIELDS:
            return None
        value = owner.get(loc[0])
        if len(loc) == 1 and err["type"] == "string_type" \
                and isinstance(value, int | float) and not isinstance(value, bool):
            owner[loc[0]] = str(value)
        else:
            owner.pop(loc[0], None)
    try:
        return Flow.model_validate(raw)
    except ValidationError:
        return None


def problem_lines(flow_name: str, found: Iterable[tuple[str | None, str, str]]) -> list[str]:
    """``flow NAME[, step 'S'], field F: message`` for each (step, field, message)."""
    return [f"flow {flow_name}" + (f", step {step!r}" if step else "") + f", field {field}: {msg}"
            for step, field, msg in found]


def flow_validation_error(data: Any, exc: ValidationError) -> FlowValidationError:
    """Name the flow, step and field of each pydantic error.

    The error keeps the flow with the invalid fields set aside (``salvaged``), and lists
    that flow's structural problems too (steps, transitions, pipes), so that one try
    reports every problem; :func:`with_more_problems` adds those found with handlers."""
    flow_id = data.get("id") if isinstance(data, dict) else None
    found: list[tuple[str | None, str, str]] = []
    for err in exc.errors():
        loc = list(err["loc"])
        step_id: str | None = None
        if len(loc) >= 2 and loc[0] == "steps":
            step_id, loc = str(loc[1]), loc[2:]
        field = json_path(loc) or ("(step)" if step_id else "(flow)")
        found.append((step_id, field, _message(err)))
    salvaged = _salvage(data, exc)
    if salvaged is not None:
        found += salvaged.problems()
    first_step, first_field, _ = found[0]
    lines = problem_lines(repr(flow_id), found)
    return FlowValidationError(
        "invalid flow: " + "; ".join(lines),
        flow_id=flow_id if isinstance(flow_id, str) else None,
        step_id=first_step, field=first_field, problems=lines, salvaged=salvaged,
    )


def with_more_problems(exc: FlowValidationError, handler_types: Iterable[str] | None,
                       tables: dict[str, TableDef] | None,
                       more: Iterable[tuple[str | None, str, str]] = (), *,
                       handler_hint: str = ENGINE_HANDLER_HINT) -> FlowValidationError:
    """``exc`` (from :meth:`Flow.parse`) with the problems of its salvaged flow that need
    handlers or tables to find: unknown handler types (``handler_hint`` as in
    :meth:`Flow.problems`) and tables, and ``more`` (the handlers' checks of the
    salvaged flow's step configs)."""
    flow = exc.salvaged
    if not isinstance(flow, Flow):
        return exc
    structural = set(flow.problems())
    found = [p for p in flow.problems(handler_types, tables, handler_hint=handler_hint)
             if p not in structural]
    found += list(more)
    if not found:
        return exc
    lines = exc.problems + problem_lines(repr(flow.id), found)
    return FlowValidationError(
        "invalid flow: " + "; ".join(lines), flow_id=exc.flow_id, step_id=exc.step_id,
        field=exc.field, problems=lines, salvaged=flow,
    )
