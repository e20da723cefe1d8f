"""FlowMonkey projections: the read side, built from the events.

The public names are imported from here (``from flowmonkey.projections import
PostgresProjection``). They are loaded on first use (PEP 562), so importing this
package loads neither asyncpg nor the log backends until a name that needs them is
asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.projections.base import (
        Page,
        Projection,
        Row,
        RowFilter,
        RowOrder,
        RowPage,
        RowQuery,
        WalEntry,
        WalReplayResult,
    )
    from flowmonkey.projections.memory import MemoryProjection
    from flowmonkey.projections.postgres import (
        OffsetConflictError,
        PostgresProjection,
        ProjectionNotStartedError,
        ProjectionStoreError,
    )
    from flowmonkey.projections.service import ProjectorService

_WHERE = {
    "Page": "base",
    "Projection": "base",
    "Row": "base",
    "RowFilter": "base",
    "RowOrder": "base",
    "RowPage": "base",
    "RowQuery": "base",
    "WalEntry": "base",
    "WalReplayResult": "base",
    "MemoryProjection": "memory",
    "OffsetConflictError": "postgres",
    "PostgresProjection": "postgres",
    "ProjectionNotStartedError": "postgres",
    "ProjectionStoreError": "postgres",
    "ProjectorService": "service",
}

__all__ = [
    "MemoryProjection",
    "OffsetConflictError",
    "Page",
    "PostgresProjection",
    "Projection",
    "ProjectionNotStartedError",
    "ProjectionStoreError",
    "ProjectorService",
    "Row",
    "RowFilter",
    "RowOrder",
    "RowPage",
    "RowQuery",
    "WalEntry",
    "WalReplayResult",
]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
