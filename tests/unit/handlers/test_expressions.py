from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.handlers.expressions import (
    MAX_EXPRESSION_LENGTH,
    Expression,
    ExpressionError,
    evaluate,
)


@pytest.mark.parametrize(
    ("source", "names", "expected"),
    [
        ("input.price * input.qty", {"input": {"price": 2.5, "qty": 4}}, 10.0),
        ("input['a'][0] + 1", {"input": {"a": [1]}}, 2),
        ("input.user.name.upper()", {"input": {"user": {"name": "bob"}}}, "BOB"),
        ("[x * 2 for x in input.items]", {"input": {"items": [1, 2]}}, [2, 4]),
        ("{'n': len(input.xs), 't': (1, 2)}", {"input": {"xs": [1, 2]}}, {"n": 2, "t": [1, 2]}),
        ("input.get('missing', 5)", {"input": {}}, 5),
        ("sum(input.xs) / len(input.xs)", {"input": {"xs": [1, 2, 3]}}, 2.0),
        ("round(max(1.26, min(3, 2)), 1)", {}, 2.0),
        ("sorted(input.xs)", {"input": {"xs": [3, 1, 2]}}, [1, 2, 3]),
        ("any([False, True]) and all([1, 2]) and bool(1)", {}, True),
        ("abs(-3) + int('4') + float('0.5')", {}, 7.5),
        ("str(5) + ','.join(['a', 'b']).replace(',', '-')", {}, "5a-b"),
        ("f'{input.x:.2f}'", {"input": {"x": 3.14159}}, "3.14"),
        ("'yes' if context.flag else 'no'", {"context": {"flag": True}}, "yes"),
        ("list(input.keys())", {"input": {"a": 1}}, ["a"]),
    ],
)
def test_evaluates(source: str, names: dict[str, Any], expected: Any) -> None:
    assert evaluate(source, names) == expected


@pytest.mark.parametrize(
    "source",
    [
        "().__class__.__bases__",
        "''.__class__.__mro__[1].__subclasses__()",
        "__import__('os').system('true')",
        "open('/etc/passwd').read()",
        "getattr(1, 'real')",
        "type(1)",
        "eval('1')",
        "input.__class__",
        "(lambda: 1)()",
        "'{0.__class__}'.format(1)",
        "f'{1:{\"}{0.__class__}\"}}'",
        "input.update({'x': 1})",
        "input.xs.append(1)",
    ],
)
def test_sandbox_escapes_fail_safely(source: str) -> None:
    data: dict[str, Any] = {"xs": []}
    with pytest.raises(ExpressionError) as info:
        evaluate(source, {"input": data})
    assert info.value.code == "INVALID_EXPRESSION"
    assert data == {"xs": []}


@pytest.mark.parametrize(
    "source",
    [
        "'%999999999d' % 1",
        "9 ** 99999",
        "f'{1:999999999}'",
        "'a' * 10 ** 9",
        "'a' * 100000 + 'b' * 100000",
        "('a' * 100000).replace('a', 'aa')",
    ],
)
def test_resource_bombs_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, {})


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("x = 1", "invalid expression"),
        ("1; 2", "invalid expression"),
        ("", "empty"),
        ("input.missing", "has no key 'missing'"),
        ("1 / 0", "ZeroDivisionError"),
        ("input.get", "function"),
        ("nope + 1", "nope"),
    ],
)
def test_errors_are_clear(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(source, {"input": {}})
    assert fragment in info.value.message


def test_parse_errors_are_reported_before_evaluation() -> None:
    with pytest.raises(ExpressionError) as info:
        Expression("input.(")
    assert info.value.details["phase"] == "parse"


def test_length_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="characters long"):
        Expression("1" * (MAX_EXPRESSION_LENGTH + 1))


def test_deep_nesting_fails_cleanly() -> None:
    with pytest.raises(ExpressionError):
        evaluate("(" * 500 + "1" + ")" * 500, {})


def test_compiled_expression_is_reusable() -> None:
    expression = Expression("item * 2")
    assert [expression.evaluate({"item": n}) for n in (1, 2, 3)] == [2, 4, 6]


def test_keys_win_over_method_names() -> None:
    assert evaluate("input.items", {"input": {"items": [1]}}) == [1]
