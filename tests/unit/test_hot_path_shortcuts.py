"""Shortcuts taken for throughput give the same answers as the long way round."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import make_event
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.apply import apply
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
from flowmonkey.model.limits import ContextLimits


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize(("depth", "max_depth", "leaf"), list(itertools.product(
    range(0, 8), range(1, 6), [1, "a long string leaf " * 3])))
def test_the_nesting_check_refuses_exactly_what_the_walk_refuses(
        depth: int, max_depth: int, leaf: Any) -> None:
    value = nested(depth, leaf)
    limits = ContextLimits(max_depth=max_depth)
    too_deep = lim.depth_of(value, max_depth + 1) > max_depth

    if too_deep:
        with pytest.raises(lim.LimitViolation) as raised:
            lim.check_value("v", value, limits)
        assert raised.value.code == lim.CONTEXT_NESTING_LIMIT
    else:
        assert lim.check_value("v", value, limits) == lim.encoded_size(value)


def created(options: dict[str, Any]) -> ExecutionState:
    event = make_event(n.EXECUTION_CREATED, "e1", 1, 5, {
        "flow_id": "f", "flow_version": "1", "context": {"a": 1}, "options": options})
    state = apply(None, event)
    assert state is not None
    return state


def test_executions_with_equal_options_share_one_frozen_options_object() -> None:
    options = {"record_history": True, "max_steps": 9, "limits": {"max_keys": 5}}
    first, second = created(options), created(dict(options))

    assert first.options is second.options
    assert first.options.limits == ContextLimits(max_keys=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.options.max_steps = 1  # type: ignore[misc]


def test_options_that_only_compare_equal_are_not_shared() -> None:
    as_int = created({"max_steps": 1})
    as_bool = created({"max_steps": True})

    assert as_int.options is not as_bool.options
    assert as_int.options == as_bool.options  # both validate to max_steps == 1


def test_a_clone_has_every_field_of_the_original() -> None:
    state = created({})
    clone = state.clone()

    assert clone is not state
    assert dataclasses.astuple(clone) == dataclasses.astuple(state)


async def test_wait_for_times_out_without_leaving_a_waiter_and_wakes_on_append() -> None:
    async with EmbeddedLog() as log:
        await log.create_topics([TopicSpec("t", 1)])
        part = log._partition("t", 0)

        assert await log.wait_for("t", 0, 0, 0.01) is False
        assert part.waiters == []

        waiting = asyncio.create_task(log.wait_for("t", 0, 0, 5))
        await asyncio.sleep(0)
        await log.append([OutRecord("t", b"x", partition=0)])
        assert await waiting is True
        assert part.waiters == []
