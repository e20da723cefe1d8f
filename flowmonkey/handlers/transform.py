"""The ``transform`` handler: reshape data with a safe expression or a legacy operation.

With ``expression`` it evaluates the expression (see :mod:`.expressions`: a safe
language, never arbitrary code) with the names ``input`` and ``context`` and
outputs ``{"result": value}``. Without it, the legacy ``operation`` is
applied: ``pick``/``omit`` with ``keys``, ``map`` with ``mapping``; anything else,
and any non-object input, passes through unchanged.

``map`` strips a leading ``$.`` from paths, so JSONPath-style mappings
(``"$.user.id"``) work (docs/compatibility.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.handlers.expressions import Expression, ExpressionError, expression_problems
from flowmonkey.kernel.paths import MISSING, get_path
from flowmonkey.model.result import Result, StepResult

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "expression": {
            "type": "string", "maxLength": 10000,
            "description": "safe expression over `input` and `context`, e.g. "
                           "`input.price * input.qty`; output is {result}",
        },
        "operation": {
            "type": "string",
            "enum": ["pick", "omit", "map", "filter", "reduce", "merge"],
            "description": "legacy operation when there is no expression; filter, reduce "
                           "and merge pass the input through",
        },
        "keys": {"type": "array", "items": {"type": "string"},
                 "description": "keys for pick and omit"},
        "mapping": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "for map: output key -> dot path into the input "
                                   "(`{{ }}` and a leading `$.` are stripped)"},
    },
}


class TransformHandler:
    """Reshape the step input (type ``transform``)."""

    metadata = HandlerMetadata(
        type="transform",
        name="Transform",
        description="Evaluate a safe expression over input and context, or pick/omit/map "
                    "keys of the input.",
        category="data",
        config_schema=CONFIG_SCHEMA,
    )

    def check_config(self, config: Mapping[str, Any],
                     step_ids: frozenset[str]) -> list[tuple[str, str]]:
        """An expression that does not parse is refused with the flow, not at run time."""
        return expression_problems(config)

    async def execute(self, params: HandlerParams) -> StepResult:
        config = params.config
        if "expression" in config and config["expression"] is not None:
            return _run_expression(config["expression"], params)
        try:
            return Result.success(apply_operation(config, params.input))
        except (TypeError, ValueError) as exc:
            return Result.failure("TRANSFORM_ERROR", f"transform: {exc}",
                                  details={"operation": config.get("operation")})


def _run_expression(source: Any, params: HandlerParams) -> StepResult:
    try:
        value = Expression(source).evaluate({"input": params.input, "context": params.context})
    except ExpressionError as exc:
        return Result.failure("TRANSFORM_ERROR", f"transform expression failed: {exc.message}",
                              details={"expression": source if isinstance(source, str) else None,
                                       **exc.details})
    return Result.success({"result": value})


def apply_operation(config: Mapping[str, Any], data: Any) -> Any:
    """The legacy operations; TypeError/ValueError for malformed config."""
    operation = config.get("operation")
    if not isinstance(data, Mapping):
        return data
    if operation in ("pick", "omit"):
        keys = config.get("keys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TypeError(f"config.keys for {operation} must be a list of strings")
        wanted = set(keys)
        if operation == "pick":
            return {k: data[k] for k in keys if k in data}
        return {k: v for k, v in data.items() if k not in wanted}
    if operation == "map":
        mapping = config.get("mapping") or {}
        if not isinstance(mapping, Mapping):
            raise TypeError("config.mapping for map must be an object of key -> path")
        out: dict[str, Any] = {}
        for key, path in mapping.items():
            if not isinstance(path, str):
                raise TypeError(f"config.mapping[{key!r}] must be a path string")
            value = get_path(data, _clean_path(path))
            # a missing path gives no key at all (not a null)
            if value is not MISSING:
                out[str(key)] = value
        return out
    return data


def _clean_path(path: str) -> str:
    cleaned = path.replace("{{", "").replace("}}", "").strip()
    if cleaned.startswith("$."):
        cleaned = cleaned[2:]
    return cleaned
