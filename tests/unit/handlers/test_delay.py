from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.delay import DelayHandler

MakeParams = Callable[..., HandlerParams]


@pytest.mark.parametrize(
    ("config", "total"),
    [
        ({"ms": 250}, 250),
        ({"delayMs": 1000}, 1000),
        ({"seconds": 2}, 2000),
        ({"minutes": 1, "seconds": 1.5}, 61500),
        ({"hours": 1}, 3_600_000),
        ({"ms": 1, "seconds": 1, "minutes": 1, "hours": 1}, 3_661_001),
        ({}, 0),
    ],
)
async def test_delay_waits_as_a_timer(make_params: MakeParams, config: dict[str, Any],
                                      total: int) -> None:
    result = await DelayHandler().execute(make_params(config=config))
    assert result.outcome == "wait"
    assert result.wait_ms == total
    assert result.wait_reason == f"delay {total} ms"
    assert result.output == {"delayedMs": total}
    assert not result.for_signal


@pytest.mark.parametrize(
    "config", [{"ms": -1}, {"seconds": "5"}, {"ms": True}, {"hours": 10**9},
               {"ms": float("inf")}])
async def test_invalid_delay(make_params: MakeParams, config: dict[str, Any]) -> None:
    result = await DelayHandler().execute(make_params(config=config))
    assert result.error is not None
    assert result.error.code == "INPUT_ERROR"


def test_metadata() -> None:
    meta = DelayHandler.metadata
    assert (meta.type, meta.category) == ("delay", "control")
    assert meta.config_schema is not None
