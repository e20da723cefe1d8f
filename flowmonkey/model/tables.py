"""Data-store tables and the pipes that feed them (FEATURES D1, D3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flowmonkey.model.base import FrozenModel

ColumnType = Literal["string", "number", "boolean", "datetime", "json"]
PipeOn = Literal["success", "failure", "any"]


class ColumnDef(FrozenModel):
    id: str = Field(min_length=1)
    name: str | None = None
    type: ColumnType = "string"
    required: bool = False


class TableDef(FrozenModel):
    id: str = Field(min_length=1)
    name: str | None = None
    description: str | None = None
    columns: list[ColumnDef] = Field(default_factory=list)
    created_at: int | None = None
    updated_at: int | None = None

    def column(self, column_id: str) -> ColumnDef | None:
        for column in self.columns:
            if column.id == column_id:
                return column
        return None


class PipeMapping(FrozenModel):
    """Copy ``source_path`` (a dot path into the step's output) into ``column_id``."""

    source_path: str = Field(min_length=1)
    column_id: str = Field(min_length=1)


class PipeDef(FrozenModel):
    """Routes a step's output into a table; never affects the execution."""

    id: str = Field(min_length=1)
    step_id: str = Field(min_length=1)
    table_id: str = Field(min_length=1)
    on: PipeOn = "success"
    mappings: list[PipeMapping] = Field(default_factory=list)
    static_values: dict[str, Any] | None = None
    enabled: bool = True
