"""The explorer's page routers, in the order they are included.

Each page module adds its router here (one line each, so branches merge cleanly).
"""

from __future__ import annotations

from fastapi import APIRouter

from flowmonkey.api.ui import pages_executions, pages_login

ROUTERS: list[APIRouter] = [
    pages_login.router,
    pages_executions.router,
]
