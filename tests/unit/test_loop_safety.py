"""Nothing a tenant sends can block the event loop (issue 10, findings 11 to 13).

Each test runs the hostile input while a ticker task measures how long the loop was
held (tests/loop_lag.py) and asserts the loop stayed responsive.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from flowmonkey import (
    ColumnDef,
    Engine,
    FlowValidationError,
    HandlerParams,
    Result,
    StepResult,
    TableDef,
    handler,
)
from flowmonkey.handlers import builtin
from tests.behaviour.flows import flow, step
from tests.loop_lag import LoopLag
from tests.unit.api_support import KEY_A, api_client, bearer, until_status

# The old code held the loop 0.85 s (matches) to 9 s (like); a healthy loop stalls for a
# few ms, but a loaded 2-core machine can deschedule the process for ~0.2 s on its own:
# half a second tells the two apart without flaking.
MAX_LAG_S = 0.5

CARRIERS = TableDef(id="shipments", columns=[ColumnDef(id="carrier", type="string")])


@handler("ship")
async def ship(p: HandlerParams) -> StepResult:
    return Result.success(p.input)


SHIP = flow("ship", step("ship", "ship", output_key="shipped"), pipes=[
    {"id": "p-ship", "stepId": "ship", "tableId": "shipments",
     "mappings": [{"sourcePath": "carrier", "columnId": "carrier"}]}])


async def test_a_like_filter_with_many_percent_signs_does_not_block_the_loop() -> None:
    # finding 11: `%` became a backtracking `.*`; 24 of them and an `x` against a
    # ten-character value took seconds per row, with /health and processors stalled
    engine = Engine(flows=[SHIP], handlers=[ship], tables=[CARRIERS])
    async with api_client(engine=engine) as client:
        for carrier in ("BananaPost", "MonkeyAir!", "xBananaPos"):
            created = await client.post("/v1/executions", headers=bearer(KEY_A), json={
                "flowId": "ship", "context": {"carrier": carrier}})
            await until_status(client, created.json()["execution"]["id"], "completed",
                               bearer(KEY_A))
        evil = "carrier:like:" + "%" * 24 + "x"
        async with LoopLag() as lag:
            answer = await client.get("/v1/tables/shipments/rows", headers=bearer(KEY_A),
                                      params={"filter": evil})
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"] == 0
        assert lag.max_s < MAX_LAG_S, f"the loop was blocked for {lag.max_s:.2f}s"

        starts: dict[str, Any] = (await client.get(
            "/v1/tables/shipments/rows", headers=bearer(KEY_A),
            params={"filter": "carrier:like:" + "%" * 24 + "x%"})).json()
        assert [r["data"]["carrier"] for r in starts["rows"]] == ["xBananaPos"]

        too_long = await client.get("/v1/tables/shipments/rows", headers=bearer(KEY_A),
                                    params={"filter": "carrier:like:" + "%" * 257})
        assert too_long.status_code == 422, too_long.text
        assert "257 characters long (max 256)" in too_long.text


def _with_timeout(raw: dict[str, Any], timeout_ms: int) -> dict[str, Any]:
    raw["timeoutMs"] = timeout_ms
    return raw


async def test_a_catastrophic_matches_pattern_does_not_block_the_loop() -> None:
    # finding 12: `^(a+)+$` against 24 `a`s and a `!` backtracked for seconds, past the
    # step's 500 ms timeout; RE2 answers in linear time
    router = flow("route", _with_timeout(step("route", "conditional", config={
        "conditions": [{"path": "text", "op": "matches", "value": "^(a+)+$",
                        "target": "matched"}],
        "default": "other"}), 500),
        step("matched", "transform", config={"expression": "'matched'"},
             output_key="said"),
        step("other", "transform", config={"expression": "'other'"}, output_key="said"))
    async with Engine(flows=[router], handlers=builtin()) as engine, LoopLag() as lag:
        created = await engine.create("route", {"text": "a" * 24 + "!"})
        done = await engine.wait(created.execution.id, timeout_s=10)
    assert done.status == "completed"
    assert done.context["said"] == {"result": "other"}
    assert lag.max_s < MAX_LAG_S, f"the loop was blocked for {lag.max_s:.2f}s"


@pytest.mark.parametrize(("pattern", "problem"), [
    ("(a)\\1", "no backreferences"), ("(?=a)b", "lookaround"), ("(?<!a)b", "lookaround"),
    ("a" * 1001, "1001 characters long"), ("(unclosed", "missing )"),
])
def test_a_matches_pattern_re2_cannot_run_is_refused_at_registration(
        pattern: str, problem: str) -> None:
    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("routes", step("pick", "conditional", config={
            "conditions": [{"path": "x", "op": "matches", "value": pattern}]}))],
            handlers=builtin())
    message = str(info.value)
    assert "routes" in message
    assert "pick" in message
    assert "config.conditions[0].value" in message
    assert problem in message


async def _run_to_rest(engine: Engine, flow_id: str, context: dict[str, Any]) -> Any:
    created = await engine.create(flow_id, context)
    return await engine.wait(created.execution.id, timeout_s=20)


async def test_an_expression_building_a_huge_value_fails_the_step_without_blocking() -> None:
    # finding 12/13: each operation was capped, their combination was not: one list
    # repeated 300 times is 30 million elements, and str() of it held the loop
    build = flow("build", step("build", "transform", output_key="built",
                               config={"expression": "len(str([[0] * 100000] * 300))"}))
    async with Engine(flows=[build], handlers=builtin()) as engine, LoopLag() as lag:
        done = await _run_to_rest(engine, "build", {})
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.code == "TRANSFORM_ERROR"
    assert "more than 2000000 units" in done.error.message
    assert lag.max_s < MAX_LAG_S, f"the loop was blocked for {lag.max_s:.2f}s"


async def test_an_expression_spinning_past_a_short_timeout_times_the_step_out() -> None:
    # finding 12: the step timeout could not stop synchronous work; the evaluator now
    # checks the step's deadline as it goes. Each `count` scans 20,000 elements in C,
    # 10,000 of them take about a second, far past the step's 50 ms.
    spin = flow("spin", _with_timeout(step(
        "spin", "transform", output_key="counts",
        config={"expression": "[input.big.count(x) for x in input.xs]"}), 50))
    async with Engine(flows=[spin], handlers=builtin()) as engine, LoopLag() as lag:
        done = await _run_to_rest(engine, "spin", {"big": [0] * 20_000,
                                                   "xs": list(range(10_000))})
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.code == "HANDLER_TIMEOUT"
    assert lag.max_s < MAX_LAG_S, f"the loop was blocked for {lag.max_s:.2f}s"


async def test_a_batch_item_spinning_past_a_short_timeout_times_the_step_out() -> None:
    # batch-process yields between batches, but one item's evaluation held the loop
    spin = flow("batch-spin", _with_timeout(step(
        "spin", "batch-process", output_key="counts",
        config={"items": [1], "expression": "[input.big.count(x) for x in input.xs]"}), 50))
    async with Engine(flows=[spin], handlers=builtin()) as engine, LoopLag() as lag:
        done = await _run_to_rest(engine, "batch-spin", {"big": [0] * 20_000,
                                                         "xs": list(range(10_000))})
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.code == "HANDLER_TIMEOUT"
    assert lag.max_s < MAX_LAG_S, f"the loop was blocked for {lag.max_s:.2f}s"


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def _lag_and_peak_memory(engine: Engine, flow_id: str,
                               context: dict[str, Any]) -> tuple[Any, float, int]:
    """Run ``context`` twice: once timing the loop, once tracing memory (tracemalloc
    slows allocation several times over, so it would distort the timing)."""
    async with LoopLag() as lag:
        done = await _run_to_rest(engine, flow_id, context)
    tracemalloc.start()
    try:
        again = await _run_to_rest(engine, flow_id, context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert again.status == done.status
    assert (again.error and again.error.message) == (done.error and done.error.message)
    return done, lag.max_s, peak


async def test_the_order_example_refuses_an_amplifying_order_with_bounded_memory() -> None:
    # finding 13: `qty: [0]` times a price of 100,000 built a 100,000-element list per
    # item; a 40 KB order of 1,000 such items grew the server by ~800 MB
    order_flow = json.loads((EXAMPLES / "flows" / "order.json").read_text())
    items = [{"sku": "x", "qty": [0], "price": 100_000}] * 1_000
    order = {"order": {"id": "evil", "shipping": "express", "items": items}}
    assert len(json.dumps(order)) < 44_000
    async with Engine(flows=[order_flow], handlers=builtin()) as engine:
        done, lag_s, peak = await _lag_and_peak_memory(engine, "order-processing", order)
    assert peak < 30 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"
    assert lag_s < MAX_LAG_S, f"the loop was blocked for {lag_s:.2f}s"
    assert done.status == "failed"
    assert done.error is not None
    assert done.error.code == "TRANSFORM_ERROR"
    assert "float() argument must be a string or a real number, not 'list'" in \
        done.error.message


async def test_the_expression_budget_alone_caps_the_orders_amplification() -> None:
    # the example's float() is its input check; the expression language bounds the same
    # request on its own, for flows written without one
    amplify = flow("amplify", step("total", "transform", output_key="total", config={
        "expression": "round(sum([i['qty'] * i['price'] for i in input['items']]), 2)"}))
    items = [{"sku": "x", "qty": [0], "price": 100_000}] * 1_000
    async with Engine(flows=[amplify], handlers=builtin()) as engine:
        done, lag_s, peak = await _lag_and_peak_memory(engine, "amplify", {"items": items})
    assert peak < 30 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"
    assert lag_s < MAX_LAG_S, f"the loop was blocked for {lag_s:.2f}s"
    assert done.status == "failed"
    assert done.error is not None
    assert "more than 500000 units of data" in done.error.message
