"""The explorer's page routers, in the order they are included.

Each page module adds its router here (one line each, so branches merge cleanly).
"""

from __future__ import annotations

from fastapi import APIRouter

from flowmonkey.api.ui import (
    pages_executions,
    pages_flows,
    pages_forms,
    pages_health,
    pages_jobs,
    pages_login,
    pages_tables,
    pages_triggers,
    pages_wal,
)

ROUTERS: list[APIRouter] = [
    pages_login.router,
    pages_executions.router,
    pages_flows.router,
    pages_tables.router,
    pages_wal.router,
    pages_jobs.router,
    pages_triggers.router,
    pages_forms.router,
    pages_health.router,
]
