"""The HTTP API (FastAPI): ``create_app(engine, auth)``; served by ``flowmonkey api``.

The names are loaded on first use (PEP 562), so importing a module of this package
(e.g. :mod:`.auth`) does not load FastAPI or the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.api.app import create_app
    from flowmonkey.api.auth import ApiAuth, Principal

_WHERE = {"ApiAuth": "auth", "Principal": "auth", "create_app": "app"}

__all__ = ["ApiAuth", "Principal", "create_app"]


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
