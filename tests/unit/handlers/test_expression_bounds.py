"""The expression language bounds what it builds and how long it runs (issue 10,
findings 12 and 13): every value, the total an evaluation builds, integers, node steps
and the running step's deadline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowmonkey.handlers.batch import BatchProcessHandler
from flowmonkey.handlers.deadline import StepDeadlineExceeded, running_until
from flowmonkey.handlers.expressions import (
    MAX_BUILT_UNITS,
    MAX_EVALUATION_STEPS,
    MAX_INT_BITS,
    MAX_VALUE_UNITS,
    Expression,
    ExpressionBudget,
    ExpressionError,
    evaluate,
)
from tests.unit.handlers.conftest import MakeParams

AMPLIFYING_ITEMS = [{"qty": [0], "price": 100_000}] * 1_000


@pytest.mark.parametrize(("source", "names", "problem"), [
    # one operation capped, their combination not: the reported amplification
    ("sum([i['qty'] * i['price'] for i in input.items])", {"input": {"items": AMPLIFYING_ITEMS}},
     f"built more than {MAX_BUILT_UNITS} units"),
    # a list repeating a list: small in memory, 10^10 elements as data
    ("str([[0] * 100000] * 100000)", {}, f"more than {MAX_VALUE_UNITS} units"),
    ("[['x' * 100000] * 100] * 100", {}, f"more than {MAX_VALUE_UNITS} units"),
    ("[[0] * 50000 for x in input.xs]", {"input": {"xs": list(range(100))}},
     f"built more than {MAX_BUILT_UNITS} units"),
    ("{str(i): [0] * 10000 for i in input.xs}", {"input": {"xs": list(range(1000))}},
     f"built more than {MAX_BUILT_UNITS} units"),
    ("'x' * 99999 + 'x' * 99999", {}, "too long"),
    ("9 ** 9 ** 9", {}, "power result too large"),
    ("(10 ** 9000) * (10 ** 9000) * (10 ** 9000) * (10 ** 9000) * (10 ** 9000)", {},
     f"more than {MAX_INT_BITS} bits"),
    ("round(5, -10 ** 7)", {}, "at most 400 digits"),
    ("len([1 for a in input.xs for b in input.xs if a * b * a * b * a * b % 7 == 0 or "
     "a + b + a + b + a + b == 3])", {"input": {"xs": list(range(100))}},
     f"more than {MAX_EVALUATION_STEPS} evaluation steps"),
])
def test_hostile_expressions_fail_fast_with_a_clear_error(
        source: str, names: dict[str, Any], problem: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        evaluate(source, names)
    assert problem in info.value.message
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("source", "names", "expected"), [
    ("len(input.xs)", {"input": {"xs": [0] * 900_000}}, 900_000),
    ("len(sorted(input.xs))", {"input": {"xs": list(range(200_000))}}, 200_000),
    ("[x * 2 for x in input.xs][-1]", {"input": {"xs": list(range(10_000))}}, 19_998),
    ("len('-'.join(input.words))", {"input": {"words": ["ab"] * 30_000}}, 89_999),
    ("[input.doc] * 3 == [input.doc, input.doc, input.doc]",
     {"input": {"doc": {"k": "v" * 100_000}}}, True),
])
def test_ordinary_work_on_large_data_stays_within_the_bounds(
        source: str, names: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, names) == expected


def test_a_name_is_not_measured_so_a_large_context_can_be_read() -> None:
    # the context may hold 10 MiB; referring to it (not copying it) costs nothing
    big = {f"k{i}": "v" * 1000 for i in range(5_000)}
    assert evaluate("len(context)", {"context": big}) == 5_000


def test_an_evaluation_past_the_step_deadline_raises_a_timeout() -> None:
    expression = Expression("[input.big.count(x) for x in input.xs]")
    names = {"input": {"big": [0] * 20_000, "xs": list(range(10_000))}}
    started = time.monotonic()
    with running_until(started + 0.05), pytest.raises(StepDeadlineExceeded):
        expression.evaluate(names)
    assert time.monotonic() - started < 0.3
    with pytest.raises(StepDeadlineExceeded):
        expression.evaluate(names, ExpressionBudget(deadline=time.monotonic() - 1))


def test_evaluations_sharing_a_budget_build_no_more_than_one_may() -> None:
    expression = Expression("[0] * 100000")
    budget = ExpressionBudget()
    for _ in range(MAX_BUILT_UNITS // 100_000 - 1):  # each also builds its `[0]`
        expression.evaluate({}, budget)
    with pytest.raises(ExpressionError, match="built more than"):
        expression.evaluate({}, budget)
    assert expression.evaluate({}) == [0] * 100_000  # a fresh budget by default


async def test_a_batch_shares_one_budget_across_its_items(make_params: MakeParams) -> None:
    params = make_params(input={"items": list(range(30))}, config={
        "expression": "[item] * 100000", "continueOnError": False})
    result = await BatchProcessHandler().execute(params)
    assert result.error is not None
    assert result.error.code == "ITEM_ERROR"
    assert "built more than" in result.error.message
    assert result.error.details is not None
    assert result.error.details["index"] < 30
