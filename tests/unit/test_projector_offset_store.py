"""A projection that stores offsets with its rows must implement all of ``OffsetStore``:
one lacking a part is refused by name, never taken for a plain projection (which would
run without the offsets' checks and stored positions)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.projector import offset_store


class _HalfStore(MemoryProjection):
    async def apply_events_with_offsets(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not called")

    async def committed_offset(self, group: str, topic: str, partition: int) -> int | None:
        return None


def test_a_projection_storing_offsets_without_the_whole_protocol_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="lacks committed_offsets, connections_opened"):
        offset_store(_HalfStore())


def test_a_plain_projection_is_no_offset_store() -> None:
    assert offset_store(MemoryProjection()) is None
