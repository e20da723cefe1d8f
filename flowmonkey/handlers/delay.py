"""The ``delay`` handler: wait for a duration, as a timer.

The step returns a timed wait instead of sleeping in the handler (which would hold a
worker for the whole delay and lose it on a restart); the engine records the wake
time in the log, so the delay survives restarts and the test harness can skip it.
The config names ``ms``/``delayMs``, ``seconds``, ``minutes`` and ``hours`` are all
accepted and summed (docs/compatibility.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.model.result import Result, StepResult

UNITS_MS: dict[str, int] = {
    "ms": 1, "delayMs": 1, "seconds": 1000, "minutes": 60_000, "hours": 3_600_000,
}
MAX_DELAY_MS = 10 * 365 * 24 * 3_600_000
"""Ten years: far beyond any sensible delay, and well inside datetime's range."""

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The delay is the sum of all given fields; with none it is 0.",
    "properties": {
        name: {"type": "number", "minimum": 0, "description": f"{name} to wait"}
        for name in UNITS_MS
    },
}


class DelayHandler:
    """Wait for a duration before the next step (type ``delay``)."""

    metadata = HandlerMetadata(
        type="delay",
        name="Delay",
        description="Wait for ms/seconds/minutes/hours (summed) as a durable timer.",
        category="control",
        config_schema=CONFIG_SCHEMA,
    )

    async def execute(self, params: HandlerParams) -> StepResult:
        try:
            total = delay_ms(params.config)
        except ValueError as exc:
            return Result.failure("INPUT_ERROR", f"delay: {exc}")
        return Result.wait(total, reason=f"delay {total} ms", output={"delayedMs": total})


def delay_ms(config: Mapping[str, Any]) -> int:
    """The total delay in whole milliseconds; ValueError names a bad field."""
    total = 0.0
    for name, factor in UNITS_MS.items():
        value = config.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"config.{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"config.{name} must be a finite number >= 0, got {value}")
        total += value * factor
    if total > MAX_DELAY_MS:
        raise ValueError(f"total delay {int(total)} ms is longer than ten years")
    return round(total)
