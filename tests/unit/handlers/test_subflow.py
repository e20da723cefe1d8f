from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.subflow import SubFlowHandler
from flowmonkey.model import ChildSpec

MakeParams = Callable[..., HandlerParams]
REGISTERED = {("child", None), ("child", "2.0")}


def exists(flow_id: str, version: str | None) -> bool:
    return (flow_id, version) in REGISTERED


async def test_waiting_child_spec(make_params: MakeParams) -> None:
    result = await SubFlowHandler(exists).execute(
        make_params(input={"order": 1}, config={"flowId": "child"}))
    assert result.outcome == "wait"
    assert result.child == ChildSpec("child", {"order": 1}, wait=True, flow_version=None)


async def test_fire_and_forget_with_version(make_params: MakeParams) -> None:
    result = await SubFlowHandler(exists).execute(make_params(
        input=None, config={"flowId": "child", "flowVersion": "2.0",
                            "waitForCompletion": False}))
    assert result.outcome == "success"
    assert result.child == ChildSpec("child", {}, wait=False, flow_version="2.0")


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({}, "MISSING_FLOW_ID"),
        ({"flowId": ""}, "MISSING_FLOW_ID"),
        ({"flowId": 5}, "INPUT_ERROR"),
        ({"flowId": "child", "waitForCompletion": "yes"}, "INPUT_ERROR"),
        ({"flowId": "child", "flowVersion": 2}, "INPUT_ERROR"),
        ({"flowId": "nope"}, "SUB_FLOW_ERROR"),
        ({"flowId": "child", "flowVersion": "9"}, "SUB_FLOW_ERROR"),
    ],
)
async def test_config_errors(make_params: MakeParams, config: dict[str, Any], code: str) -> None:
    result = await SubFlowHandler(exists).execute(make_params(input={}, config=config))
    assert result.error is not None
    assert result.error.code == code
    assert result.child is None


async def test_unknown_flow_is_named(make_params: MakeParams) -> None:
    result = await SubFlowHandler(exists).execute(make_params(config={"flowId": "nope"}))
    assert result.error is not None
    assert "'nope'" in result.error.message
    assert result.error.message.startswith("sub-flow: flow 'nope'")


async def test_missing_flow_id_message(make_params: MakeParams) -> None:
    result = await SubFlowHandler(exists).execute(make_params(config={}))
    assert result.error is not None
    assert result.error.message == "Sub-flow config must include flowId"
