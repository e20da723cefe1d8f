"""The safe expression language of ``transform`` and ``batch-process``.

An expression is data a flow's author writes, so it must never run arbitrary code in
the engine's process. We use `simpleeval <https://github.com/danthedeckie/simpleeval>`_:
it is pure Python, maintained, and evaluates a parsed AST itself, so there
is no ``eval``/``exec``, no imports, no dunder or ``func_`` attributes, and limits on
powers, shifts, string sizes and comprehension lengths.

On top of that we narrow it further:

* the expression is parsed in ``eval`` mode (one expression, never a statement) and
  is at most :data:`MAX_EXPRESSION_LENGTH` characters;
* attribute access is ours: a mapping's keys read with dots (``input.price``), and
  only a whitelist of *non-mutating* methods (so an expression can never change the
  input it shares with the engine, nor allocate without bound via ``ljust`` & co);
* ``%`` on strings, huge format widths and huge integer powers are refused, since
  each can allocate gigabytes from a short expression;
* the result is converted to plain JSON-like data (tuples and views to lists), and
  a function or other non-data result is an error.

Bounds (simpleeval bounds each operation but not what they add up to: without these a
43 KB order can grow the server by 800 MB). Sizes are in *units*, counted as JSON
spells a value out: one per character of a string; one per number, boolean or null
(plus one per 64 bits of an integer beyond the first 64); one per element of a list,
tuple or set and per entry of a dict, on top of the elements, keys and values.

* every value an expression builds or reaches (by attribute, subscript or call) is at
  most :data:`MAX_VALUE_UNITS` (2,000,000), aliases counted each time they appear (a
  list repeating one big list counts it each time), so nothing built can make ``str``,
  a comparison or the result explode. A bare name (``input``, ``context``, ``item``)
  is the caller's data, bounded by the context limits, and is not measured;
* one evaluation builds at most :data:`MAX_BUILT_UNITS` (500,000) in total: each new
  string, list, tuple, set or dict counted once by its own length when an operator,
  call, literal, comprehension, f-string or slice builds it; a repetition or
  concatenation the budget cannot pay for is refused before it is allocated.
  ``batch-process`` shares one such budget across all its items;
* an integer result has at most :data:`MAX_INT_BITS` (40,000) bits, a power at most
  10,000 digits, and ``round`` takes at most 400 digits;
* one evaluation evaluates at most :data:`MAX_EVALUATION_STEPS` (100,000) syntax nodes,
  its CPU budget (about a tenth of a second), and every 256 nodes it checks the
  running step's deadline (:mod:`.deadline`): past it, the step fails with
  ``HANDLER_TIMEOUT`` as if its timer had fired, although the evaluation holds the
  event loop and that timer cannot run.

Breaking a bound fails the evaluation with a message naming it (``TRANSFORM_ERROR`` in
``transform``, a per-item error in ``batch-process``).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, ItemsView, KeysView, Mapping, ValuesView
from typing import Any

import simpleeval
from simpleeval import (
    DEFAULT_OPERATORS,
    DISALLOW_METHODS,
    DISALLOW_PREFIXES,
    MAX_STRING_LENGTH,
    EvalWithCompoundTypes,
)

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.handlers.deadline import StepDeadlineExceeded, check_deadline, step_deadline

MAX_EXPRESSION_LENGTH = 10_000
MAX_VALUE_UNITS = 2_000_000
MAX_BUILT_UNITS = 500_000
MAX_INT_BITS = 40_000
MAX_EVALUATION_STEPS = 100_000
_DEADLINE_CHECK_EVERY = 256
_MAX_ROUND_DIGITS = 400
_MAX_POWER_DIGITS = 10_000
_MAX_FORMAT_WIDTH = 10_000


class _Refused(Exception):
    """Our own evaluation-time refusal; its message is shown as-is."""


class ExpressionError(FlowMonkeyError):
    """An expression did not parse, was refused by the sandbox, or failed to evaluate.

    ``details["phase"]`` is ``"parse"`` or ``"evaluate"``.
    """

    code = "INVALID_EXPRESSION"


def _number_sum(values: Any) -> Any:
    # Only numbers: ``sum(lists, [])`` could build huge lists from repeated references.
    items = list(values)
    for item in items:
        if not isinstance(item, int | float) or isinstance(item, bool):
            raise TypeError(f"sum() takes numbers only, got {type(item).__name__}")
    return sum(items)


def _safe_round(number: Any, ndigits: Any = None) -> Any:
    # round(5, -10**7) computes 10**10**7 first: seconds of CPU from a short literal
    if isinstance(ndigits, int) and abs(ndigits) > _MAX_ROUND_DIGITS:
        raise _Refused(f"round() takes at most {_MAX_ROUND_DIGITS} digits")
    return round(number) if ndigits is None else round(number, ndigits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "str": str, "int": int, "float": float, "bool": bool, "round": _safe_round,
    "min": min, "max": max, "sum": _number_sum, "abs": abs, "sorted": sorted,
    "any": any, "all": all, "list": list, "dict": dict,
}
"""The whitelisted pure functions (simpleeval's ``rand``/``randint`` are left out)."""


def _check_size(size: int) -> None:
    if size > MAX_STRING_LENGTH:
        raise _Refused(f"result would be {size} characters long (max {MAX_STRING_LENGTH})")


def _safe_replace(text: str) -> Callable[..., str]:
    def replace(old: str, new: str, count: int = -1) -> str:
        hits = text.count(old) if count < 0 else min(count, text.count(old))
        _check_size(len(text) + hits * max(0, len(new) - len(old)))
        return text.replace(old, new, count)

    return replace


def _safe_join(sep: str) -> Callable[[Any], str]:
    def join(parts: Any) -> str:
        items = list(parts)
        _check_size(len(sep) * max(0, len(items) - 1)
                    + sum(len(p) if isinstance(p, str) else 0 for p in items))
        return sep.join(items)

    return join


_STR_METHODS = frozenset({
    "lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
    "startswith", "endswith", "find", "rfind", "index", "rindex", "count", "title",
    "capitalize", "casefold", "swapcase", "isdigit", "isalpha", "isalnum", "isspace",
    "islower", "isupper", "isnumeric", "isdecimal", "removeprefix", "removesuffix",
    "partition", "rpartition",
})
_MAPPING_METHODS = frozenset({"get", "keys", "values", "items"})
_SEQUENCE_METHODS = frozenset({"index", "count"})
_NUMBER_METHODS = frozenset({"is_integer"})


def _safe_mod(left: Any, right: Any) -> Any:
    # printf-style formatting allows ``"%999999999d"``: one short literal, a gigabyte.
    if isinstance(left, str | bytes):
        raise _Refused("'%' formatting of strings is not supported; use f-strings or +")
    return operator.mod(left, right)


def _safe_pow(base: Any, exponent: Any) -> Any:
    # simpleeval caps base and exponent at 4e6 each, which still allows a 26-million-digit
    # integer; bound the size of the result instead.
    if (isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1
            and exponent * math.log10(abs(base)) > _MAX_POWER_DIGITS):
        raise _Refused(f"power result too large (more than {_MAX_POWER_DIGITS} digits)")
    return operator.pow(base, exponent)


_OPERATORS = {**DEFAULT_OPERATORS, ast.Mod: _safe_mod, ast.Pow: _safe_pow}

_SCALARS = frozenset({float, bool, type(None)})
_CONTAINERS = (list, tuple, dict, set, frozenset, Mapping, KeysView, ValuesView, ItemsView)
_PLAIN_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_BUILDING = frozenset({
    ast.BinOp, ast.UnaryOp, ast.Call, ast.JoinedStr, ast.FormattedValue, ast.List,
    ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp,
})
"""Nodes whose results are new values; the others (attributes, subscripts, names,
conditionals) reach values that exist already: measured, not charged."""


class ExpressionBudget:
    """What evaluations may spend (see the module docstring): syntax-node steps, per
    evaluation, and built units, for every evaluation that shares this budget.

    Sizes of containers are remembered by identity (the values are pinned here so an
    identity is never reused): an expression cannot change a value once built, and a
    value reached a second time costs nothing to measure again.
    """

    __slots__ = ("_sizes", "built", "deadline", "steps")

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline if deadline is not None else step_deadline()
        self.built = 0
        self.steps = 0
        self._sizes: dict[int, tuple[Any, int]] = {}

    def check(self) -> None:
        """The CPU budget: node steps, then the step's deadline."""
        if self.steps > MAX_EVALUATION_STEPS:
            raise _Refused(f"expression took more than {MAX_EVALUATION_STEPS} evaluation "
                           "steps")
        check_deadline(self.deadline)

    def account(self, value: Any, *, building: bool) -> None:
        """Measure a node's container result; charge it when built and new."""
        if type(value) in _PLAIN_CONTAINERS or isinstance(value, _CONTAINERS):
            new = id(value) not in self._sizes
            self.size(value)
            if new and building:
                self.charge(len(value))

    def afford(self, units: int) -> None:
        """Refuse, before it is built, a value the remaining budget cannot pay for."""
        if self.built + units > MAX_BUILT_UNITS:
            raise _over_budget()

    def charge(self, units: int) -> None:
        self.built += units
        if self.built > MAX_BUILT_UNITS:
            raise _over_budget()

    def size(self, value: Any) -> int:
        """``value``'s size in units as JSON spells it out; raises past the limit."""
        kind = type(value)
        if kind not in _PLAIN_CONTAINERS and not isinstance(value, _CONTAINERS):
            return self._units(value)
        known = self._sizes.get(id(value))
        if known is not None:
            return known[1]
        if kind is list or kind is tuple:
            total = len(value) + self._sum(value)
        elif kind is dict or isinstance(value, Mapping):
            total = len(value) + self._sum(value.keys()) + self._sum(value.values())
        elif isinstance(mapping := getattr(value, "mapping", None), Mapping):
            total = self.size(mapping)  # a dict view is as big as its dict
        else:
            total = len(value) + self._sum(value)
        if total > MAX_VALUE_UNITS:
            raise _too_large(total)
        self._sizes[id(value)] = (value, total)
        return total

    def _sum(self, items: Any) -> int:
        if len(items) < 16:
            return sum(map(self._units, items))
        # map/sum run in C; the common homogeneous cases need no Python call per item
        kinds = set(map(type, items))
        if kinds <= _SCALARS:
            return len(items)
        if kinds == {int}:
            return len(items) + (sum(map(int.bit_length, items)) >> 6)
        if kinds == {str}:
            return sum(map(len, items))
        return sum(map(self._units, items))

    def _units(self, value: Any) -> int:
        kind = type(value)
        if kind is str:
            return len(value)
        if kind is int:
            bits: int = value.bit_length()
            return 1 + (bits >> 6)
        if kind in _SCALARS or (kind not in _PLAIN_CONTAINERS
                                and not isinstance(value, _CONTAINERS)):
            return 1
        return self.size(value)


def _builds(node: ast.AST) -> bool:
    return type(node) in _BUILDING or (
        type(node) is ast.Subscript and type(node.slice) is ast.Slice)


def _over_budget() -> _Refused:
    return _Refused(f"expression built more than {MAX_BUILT_UNITS} units of data "
                    "(characters, elements, keys and values)")


def _too_large(units: int) -> _Refused:
    return _Refused(f"expression built a value of more than {MAX_VALUE_UNITS} units "
                    f"({units} and counting)")


class _Evaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with our attribute rules, cheaper safety checks and the budgets."""

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(FUNCTIONS), names={})
        # EvalWithCompoundTypes adds tuple/set constructors; harmless, but keep the
        # documented whitelist exact.
        self.functions.pop("tuple", None)
        self.functions.pop("set", None)
        self.budget = ExpressionBudget()
        self.operators[ast.Mult] = self._mult
        self.operators[ast.Add] = self._add

    def _mult(self, left: Any, right: Any) -> Any:
        # refuse a repetition the budget cannot pay for before allocating it
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                self.budget.afford(len(seq) * times)
        return DEFAULT_OPERATORS[ast.Mult](left, right)

    def _add(self, left: Any, right: Any) -> Any:
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            self.budget.afford(len(left) + len(right))
        return DEFAULT_OPERATORS[ast.Add](left, right)

    def _eval(self, node: ast.AST) -> Any:
        # simpleeval's own _eval, plus a step count, the deadline and the size bounds
        budget = self.budget
        budget.steps += 1
        if budget.steps % _DEADLINE_CHECK_EVERY == 0:
            budget.check()
        handler = self.nodes.get(type(node))
        if handler is None:
            raise simpleeval.FeatureNotAvailable(
                f"Sorry, {type(node).__name__} is not available in this evaluator")
        result = handler(node)
        self._check_disallowed_items(result)
        kind = type(result)
        if kind in _SCALARS:
            return result
        if kind is int:
            if result.bit_length() > MAX_INT_BITS:
                raise _Refused(f"integer result too large (more than {MAX_INT_BITS} bits)")
        elif kind is str:
            if len(result) > MAX_VALUE_UNITS:
                raise _too_large(len(result))
            if _builds(node):
                budget.charge(len(result))
        elif type(node) is not ast.Name:
            # a name is the caller's data (bounded by the context limits) or a loop
            # variable (a part of a value measured already)
            budget.account(result, building=_builds(node))
        return result

    def _check_disallowed_items(self, item: Any) -> None:
        # simpleeval walks every container result recursively, i.e. the whole input on
        # each name lookup. Our names hold JSON data and attribute access only yields
        # data or whitelisted methods, so a top-level check is all that is needed.
        if callable(item) and not _is_allowed_callable(item):
            raise _Refused("this function is not available in expressions")

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr.startswith(tuple(DISALLOW_PREFIXES)) or attr in DISALLOW_METHODS:
            raise _Refused(f"access to attribute {attr!r} is not allowed")
        target = self._eval(node.value)
        if isinstance(target, Mapping):
            if attr in target:
                return target[attr]
            if attr in _MAPPING_METHODS:
                return getattr(target, attr)
            if hasattr(dict, attr):
                raise _Refused(f"method {attr!r} is not available in expressions")
            where = ast.unparse(node.value)
            raise _Refused(f"{where} has no key {attr!r}; "
                           f"use {where}.get({attr!r}) for optional keys")
        if isinstance(target, str):
            if attr == "replace":
                return _safe_replace(target)
            if attr == "join":
                return _safe_join(target)
            if attr in _STR_METHODS:
                return getattr(target, attr)
        elif (isinstance(target, list | tuple) and attr in _SEQUENCE_METHODS) or (
                isinstance(target, float) and attr in _NUMBER_METHODS):
            return getattr(target, attr)
        raise _Refused(f"{type(target).__name__} value has no attribute {attr!r} "
                       "available in expressions")

    def _eval_formattedvalue(self, node: ast.FormattedValue) -> Any:
        # simpleeval builds "{:" + spec + "}" and calls str.format, which lets a spec
        # reach into fields; the format() builtin only understands the mini-language.
        value = self._eval(node.value)
        if node.format_spec is None:
            return value
        spec = str(self._eval(node.format_spec))
        if any(int(width) > _MAX_FORMAT_WIDTH for width in re.findall(r"\d+", spec)):
            raise _Refused(f"format width in {spec!r} is too large")
        return format(value, spec)


_ALLOWED_CALLABLES = frozenset(id(fn) for fn in FUNCTIONS.values())


def _is_allowed_callable(item: Any) -> bool:
    # Bound methods of data (``"a".upper``) and our own wrappers are fine; anything
    # else callable that reached a result is not something an expression should hold.
    if id(item) in _ALLOWED_CALLABLES:
        return True
    owner = getattr(item, "__self__", None)
    if owner is not None and isinstance(owner, str | list | tuple | float | Mapping):
        return True
    return getattr(item, "__qualname__", "").startswith(("_safe_replace.", "_safe_join."))


class Expression:
    """A parsed expression; evaluate it many times with :meth:`evaluate`."""

    __slots__ = ("_evaluator", "_tree", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise ExpressionError(
                f"expression must be a string, got {type(source).__name__}", phase="parse")
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(
                f"expression is {len(source)} characters long (max {MAX_EXPRESSION_LENGTH})",
                phase="parse")
        if not source.strip():
            raise ExpressionError("expression is empty", phase="parse")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(
                f"invalid expression: {exc.msg} (column {exc.offset})", phase="parse"
            ) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ExpressionError(f"invalid expression: {exc}", phase="parse") from None
        for node in ast.walk(tree):
            # Refuse sandbox probes up front so they fail even on branches never taken.
            if isinstance(node, ast.Attribute) and (
                node.attr.startswith(tuple(DISALLOW_PREFIXES)) or node.attr in DISALLOW_METHODS
            ):
                raise ExpressionError(
                    f"access to attribute {node.attr!r} is not allowed", phase="parse")
            if isinstance(node, ast.Name) and node.id.startswith("__"):
                raise ExpressionError(f"name {node.id!r} is not allowed", phase="parse")
        self.source = source
        self._tree = tree.body
        self._evaluator = _Evaluator()

    def evaluate(self, names: Mapping[str, Any], budget: ExpressionBudget | None = None) -> Any:
        """The expression's value as JSON-like data; raises :class:`ExpressionError`, or
        :class:`StepDeadlineExceeded` past the running step's deadline.

        ``budget`` is shared by evaluations that should build no more together than one
        evaluation may (a batch's items); by default each evaluation has its own.
        """
        evaluator = self._evaluator
        evaluator.names = dict(names)
        evaluator.budget = budget = budget if budget is not None else ExpressionBudget()
        budget.steps = 0
        try:
            budget.check()
            value = evaluator.eval(self.source, previously_parsed=self._tree)
            return to_data(value)
        except (ExpressionError, StepDeadlineExceeded):
            raise
        except RecursionError:
            raise ExpressionError("expression is nested too deeply", phase="evaluate") from None
        except MemoryError:
            raise ExpressionError("expression ran out of memory", phase="evaluate") from None
        except Exception as exc:
            raise ExpressionError(_describe(exc), phase="evaluate",
                                  error=type(exc).__name__) from None
        finally:
            evaluator.names = {}
            # drop the sizes it remembered (and the values they pin) with the budget
            evaluator.budget = _IDLE


_IDLE = ExpressionBudget()


def evaluate(expression: str, names: Mapping[str, Any]) -> Any:
    """Parse and evaluate ``expression`` with ``names``; raises :class:`ExpressionError`."""
    return Expression(expression).evaluate(names)


def to_data(value: Any) -> Any:
    """Convert an expression result to JSON-like data (dict/list/str/number/bool/None)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else _key(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | KeysView | ValuesView | ItemsView):
        return [to_data(v) for v in value]
    if callable(value):
        raise ExpressionError(
            "expression evaluated to a function, not a value (missing call parentheses?)",
            phase="evaluate")
    raise ExpressionError(
        f"expression evaluated to a {type(value).__name__}, which is not JSON data",
        phase="evaluate")


def _key(key: Any) -> str:
    if key is None or isinstance(key, bool):
        return "null" if key is None else str(key).lower()
    if isinstance(key, int | float):
        return str(key)
    raise ExpressionError(
        f"expression produced a mapping key of type {type(key).__name__}", phase="evaluate")


def _describe(exc: Exception) -> str:
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    kind = type(exc).__name__
    # simpleeval's own messages are already explanatory; Python's need the error kind.
    if isinstance(exc, _Refused) or type(exc).__module__ == "simpleeval":
        return message
    if isinstance(exc, KeyError):
        return f"key {message} not found"
    return f"{kind}: {message}" if message else kind


def expression_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``config.expression`` if it does not parse, as (field, message): for the
    ``check_config`` of handlers that evaluate one."""
    source = config.get("expression")
    if not isinstance(source, str):
        return []  # absent, or not a string: the config schema says so
    try:
        Expression(source)
    except ExpressionError as exc:
        return [("config.expression", exc.message or "the expression does not parse")]
    return []
