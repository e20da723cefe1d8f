"""Prometheus metrics of the processors, the projector and the HTTP API.

The public names are imported from here (``from flowmonkey.metrics import Metrics``);
they live in :mod:`.prometheus` and are loaded on first use (PEP 562), so importing
this package does not load ``prometheus_client`` until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.metrics.prometheus import (
        CONTENT_TYPE_LATEST,
        BulkHistogram,
        Metrics,
        MetricsServer,
        default_metrics,
        serve_metrics,
    )

__all__ = ["CONTENT_TYPE_LATEST", "BulkHistogram", "Metrics", "MetricsServer",
           "default_metrics", "serve_metrics"]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        if name not in __all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.prometheus"), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
