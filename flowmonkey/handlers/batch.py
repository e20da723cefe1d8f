"""The ``batch-process`` handler: evaluate a safe expression for every item of a list.

One call processes every item, batch by batch (docs/compatibility.md says how this
differs from one batch per call), and is cooperative: between batches it yields
to the event loop, honours ``delayBetweenBatchesMs`` and stops with ``ABORTED`` when
the engine aborts the step. The expression (see :mod:`.expressions`) sees ``item``,
``index`` and ``input`` and is parsed once up front. The items share one expression
budget (what they build together is bounded), and an item's evaluation past the
step's deadline fails the step with ``HANDLER_TIMEOUT``.

``results`` has one entry per item, in order; a failed item's entry is ``None`` and
its index and message are in ``errors``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.handlers.config import ConfigError, int_in
from flowmonkey.handlers.expressions import (
    Expression,
    ExpressionBudget,
    ExpressionError,
    expression_problems,
)
from flowmonkey.model.result import Result, StepResult

MAX_DELAY_BETWEEN_BATCHES_MS = 600_000

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["expression"],
    "properties": {
        "items": {"type": "array",
                  "description": "the items; else the input's `items`, else the input "
                                 "itself when it is a list"},
        "expression": {"type": "string", "maxLength": 10000,
                       "description": "safe expression over `item`, `index` and `input`"},
        "batchSize": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
        "continueOnError": {"type": "boolean", "default": True,
                            "description": "record failed items and go on, or fail the "
                                           "step with ITEM_ERROR at the first one"},
        "delayBetweenBatchesMs": {"type": "integer", "minimum": 0,
                                  "maximum": MAX_DELAY_BETWEEN_BATCHES_MS, "default": 0},
        "delayBetweenBatches": {"type": "integer", "minimum": 0,
                                "maximum": MAX_DELAY_BETWEEN_BATCHES_MS, "deprecated": True,
                                "description": "the original's name for "
                                               "delayBetweenBatchesMs"},
    },
}




class BatchProcessHandler:
    """Map a safe expression over a list of items (type ``batch-process``)."""

    metadata = HandlerMetadata(
        type="batch-process",
        name="Batch process",
        description="Evaluate an expression for each item, in batches; collects results "
                    "and per-item errors.",
        category="data",
        config_schema=CONFIG_SCHEMA,
    )

    def check_config(self, config: Mapping[str, Any],
                     step_ids: frozenset[str]) -> list[tuple[str, str]]:
        """An expression that does not parse is refused with the flow, not at run time."""
        return expression_problems(config)

    async def execute(self, params: HandlerParams) -> StepResult:
        started = time.monotonic()
        config = params.config
        try:
            items = _items(config, params.input)
            batch_size = int_in(config, "batchSize", 10, 1, 1000)
            delay_ms = int_in(config, "delayBetweenBatchesMs",
                               int_in(config, "delayBetweenBatches", 0, 0,
                                       MAX_DELAY_BETWEEN_BATCHES_MS),
                               0, MAX_DELAY_BETWEEN_BATCHES_MS)
            continue_on_error = config.get("continueOnError", True)
            if not isinstance(continue_on_error, bool):
                raise ConfigError("config.continueOnError must be true or false")
            source = config.get("expression")
            if not isinstance(source, str) or not source.strip():
                raise ConfigError("config.expression is required")
        except ConfigError as exc:
            return Result.failure("INPUT_ERROR", f"batch-process: {exc}")
        try:
            expression = Expression(source)
        except ExpressionError as exc:
            return Result.failure("INVALID_EXPRESSION",
                                  f"batch-process: invalid expression: {exc.message}",
                                  details={"expression": source})

        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        # one budget for every item: what they build together is bounded like one
        # evaluation's (expressions.MAX_BUILT_UNITS), not once per item
        budget = ExpressionBudget()
        for start in range(0, len(items), batch_size):
            if params.abort.is_set():
                return _aborted(start, len(items))
            # Yield between batches even without a delay, so a long list does not
            # starve the event loop (heartbeats, other steps, the abort itself).
            if start and await _sleep_unless_aborted(delay_ms / 1000, params.abort):
                return _aborted(start, len(items))
            for index in range(start, min(start + batch_size, len(items))):
                try:
                    results.append(expression.evaluate(
                        {"item": items[index], "index": index, "input": params.input},
                        budget))
                except ExpressionError as exc:
                    if not continue_on_error:
                        return Result.failure(
                            "ITEM_ERROR", f"batch-process: item {index} failed: {exc.message}",
                            details={"index": index, "message": exc.message,
                                     "processedCount": index})
                    results.append(None)
                    errors.append({"index": index, "message": exc.message})
        return Result.success({
            "processedCount": len(items) - len(errors),
            "failedCount": len(errors),
            "totalCount": len(items),
            "results": results,
            "errors": errors,
            "durationMs": int((time.monotonic() - started) * 1000),
        })


def _aborted(done: int, total: int) -> StepResult:
    return Result.failure("ABORTED", f"batch-process: aborted after {done} of {total} items",
                          details={"processed": done, "totalCount": total})


async def _sleep_unless_aborted(seconds: float, abort: asyncio.Event) -> bool:
    """Sleep (at least one loop turn); True when ``abort`` was set first."""
    if seconds <= 0:
        await asyncio.sleep(0)
        return abort.is_set()
    try:
        await asyncio.wait_for(abort.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _items(config: Mapping[str, Any], data: Any) -> list[Any]:
    if config.get("items") is not None:
        items = config["items"]
    elif isinstance(data, Mapping) and data.get("items") is not None:
        items = data["items"]
    elif isinstance(data, list):
        items = data
    else:
        raise ConfigError("items are required: config.items, the input's items, or a list "
                           "input")
    if not isinstance(items, list):
        raise ConfigError(f"items must be a list, got {type(items).__name__}")
    return items

