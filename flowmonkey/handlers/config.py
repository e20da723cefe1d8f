"""Reading handler config: one error type and the checks several handlers share."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


class ConfigError(Exception):
    """A step's config is invalid; handlers turn it into an ``INPUT_ERROR`` failure."""


def int_in(config: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """``config[key]`` as an integer in ``[low, high]`` (``default`` when absent or null)."""
    value = config.get(key, default)
    if value is None:
        return default
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value != int(value)):
        raise ConfigError(f"config.{key} must be an integer")
    if not low <= value <= high:
        raise ConfigError(f"config.{key} must be between {low} and {high}, got {value}")
    return int(value)


def config_field(path: Iterable[str | int]) -> str:
    """A path into a step's config as users write it: ``config.conditions[0].target``."""
    return "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
