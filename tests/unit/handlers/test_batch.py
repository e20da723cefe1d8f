from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.batch import BatchProcessHandler

MakeParams = Callable[..., HandlerParams]


async def test_processes_all_items(make_params: MakeParams) -> None:
    result = await BatchProcessHandler().execute(make_params(
        input={"items": [1, 2, 3, 4, 5], "factor": 10},
        config={"expression": "item * input.factor + index", "batchSize": 2}))
    assert result.outcome == "success"
    out = result.output
    assert out["results"] == [10, 21, 32, 43, 54]
    assert (out["processedCount"], out["failedCount"], out["totalCount"]) == (5, 0, 5)
    assert out["errors"] == []
    assert isinstance(out["durationMs"], int)


@pytest.mark.parametrize(
    ("data", "config"),
    [
        ([1, 2], {}),
        ({"items": [1, 2]}, {}),
        ({"items": [9]}, {"items": [1, 2]}),
    ],
)
async def test_item_sources(make_params: MakeParams, data: Any, config: dict[str, Any]) -> None:
    result = await BatchProcessHandler().execute(
        make_params(input=data, config={**config, "expression": "item"}))
    assert result.output["results"] == [1, 2]


async def test_continue_on_error(make_params: MakeParams) -> None:
    result = await BatchProcessHandler().execute(make_params(
        input=[1, 0, 4], config={"expression": "12 / item"}))
    assert result.outcome == "success"
    out = result.output
    assert out["results"] == [12.0, None, 3.0]
    assert (out["processedCount"], out["failedCount"], out["totalCount"]) == (2, 1, 3)
    assert out["errors"][0]["index"] == 1
    assert "ZeroDivisionError" in out["errors"][0]["message"]


async def test_item_error_stops(make_params: MakeParams) -> None:
    result = await BatchProcessHandler().execute(make_params(
        input=[{"v": 1}, {}, {"v": 3}],
        config={"expression": "item.v", "continueOnError": False}))
    assert result.error is not None
    assert result.error.code == "ITEM_ERROR"
    assert result.error.details["index"] == 1
    assert "has no key 'v'" in result.error.message


@pytest.mark.parametrize("expression", ["item +", "item.__class__", "x = 1"])
async def test_invalid_expression(make_params: MakeParams, expression: str) -> None:
    result = await BatchProcessHandler().execute(make_params(
        input=[1], config={"expression": expression}))
    assert result.error is not None
    assert result.error.code == "INVALID_EXPRESSION"


@pytest.mark.parametrize(
    ("data", "config"),
    [
        ({"other": 1}, {"expression": "item"}),
        ([1], {}),
        ([1], {"expression": "item", "batchSize": 0}),
        ([1], {"expression": "item", "batchSize": 1001}),
        ([1], {"expression": "item", "continueOnError": "no"}),
        ({"items": "abc"}, {"expression": "item"}),
    ],
)
async def test_invalid_config(make_params: MakeParams, data: Any, config: dict[str, Any]) -> None:
    result = await BatchProcessHandler().execute(make_params(input=data, config=config))
    assert result.error is not None
    assert result.error.code == "INPUT_ERROR"


async def test_abort_between_batches(make_params: MakeParams) -> None:
    abort = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, abort.set)
    result = await BatchProcessHandler().execute(make_params(
        input=list(range(100)), abort=abort,
        config={"expression": "item", "batchSize": 10, "delayBetweenBatchesMs": 1000}))
    assert result.error is not None
    assert result.error.code == "ABORTED"
    assert result.error.details["processed"] == 10


async def test_empty_list(make_params: MakeParams) -> None:
    result = await BatchProcessHandler().execute(make_params(
        input=[], config={"expression": "item"}))
    assert result.output["totalCount"] == 0
    assert result.output["results"] == []
