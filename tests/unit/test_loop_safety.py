"""Nothing a tenant sends can block the event loop (issue 10, findings 11 to 13).

Each test runs the hostile input while a ticker task measures how long the loop was
held (tests/loop_lag.py) and asserts the loop stayed responsive.
"""

from __future__ import annotations

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

MAX_LAG_S = 0.2

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
