"""The executions list's filters, read from a query string and written back into links.

Every value is checked and bounded here, so a page never passes the projection
something the API would refuse: a status must be one of the statuses, ids and the
search are at most :data:`MAX_TEXT` characters, times are ISO-8601 (a time without a
zone is UTC, as the browser's ``datetime-local`` input sends it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from flowmonkey.api.auth import valid_tenant_id
from flowmonkey.api.ui.errors import UiError
from flowmonkey.model.execution import ExecutionStatus

MAX_TEXT = 500
STATUSES = tuple(s.value for s in ExecutionStatus)


def _invalid(message: str) -> UiError:
    return UiError(400, "Invalid filter", message, code="INVALID_REQUEST")


def _text(params: QueryParams, name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > MAX_TEXT:
        raise _invalid(f"{name} is longer than {MAX_TEXT} characters")
    return value


def parse_time(value: str, name: str) -> int | None:
    """An ISO-8601 time (no zone: UTC) as epoch milliseconds; None for ''."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"{name} is not a date and time (e.g. 2026-01-31T12:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ExecutionFilters:
    status: str = ""
    flow: str = ""
    version: str = ""
    tenant: str = ""
    parent: str = ""
    created_from: str = ""
    created_to: str = ""
    q: str = ""
    cursor: str = ""

    @classmethod
    def of(cls, params: QueryParams, *, admin: bool) -> ExecutionFilters:
        values = {f.name: _text(params, f.name) for f in fields(cls)}
        if values["status"] and values["status"] not in STATUSES:
            raise _invalid(f"status must be one of {', '.join(STATUSES)}")
        if not admin:
            values["tenant"] = ""  # a tenant key's own tenant always applies
        elif values["tenant"] and not valid_tenant_id(values["tenant"]):
            raise _invalid("a tenant id is 1-200 letters, digits and '._:@-'")
        filters = cls(**values)
        filters.range_ms()  # refuse a bad time now, not when listing
        return filters

    def range_ms(self) -> tuple[int | None, int | None]:
        return (parse_time(self.created_from, "from"), parse_time(self.created_to, "to"))

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` (empty values left out)."""
        values = {f.name: getattr(replace(self, **changes), f.name) for f in fields(self)}
        return urlencode({k: v for k, v in values.items() if v})

    def without_paging(self) -> ExecutionFilters:
        return replace(self, cursor="")

    @property
    def active(self) -> bool:
        """Any filter besides paging is set."""
        return any(getattr(self, f.name) for f in fields(self) if f.name != "cursor")

    def list_args(self, tenant_id: str | None) -> dict[str, Any]:
        """Keyword arguments of ``Engine.list`` / ``count_by_status`` (no status, cursor
        or search: the caller adds what it needs)."""
        start, end = self.range_ms()
        return {"tenant_id": tenant_id, "flow_id": self.flow or None,
                "flow_version": self.version or None,
                "parent_execution_id": self.parent or None,
                "created_from_ms": start, "created_before_ms": end}
