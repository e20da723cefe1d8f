"""Sanitising a submission by its form's :class:`~flowmonkey.model.form.FieldRules`.

Each top-level field has its rules (``fields``, else ``default_rules``); they apply to
every string in the field, at any depth (a list of strings, an object's values),
in this order: control characters stripped (C0 and C1 but tab and newline; a
carriage return goes too, so ``\\r\\n`` from a browser's text area becomes ``\\n``),
HTML tags stripped (nothing decoded: ``&lt;`` stays as sent), whitespace trimmed at
both ends, and the length checked: longer than ``max_chars`` is an error at the
string's JSON pointer, never a silent cut. Keys are left as they are (the schema
decides which are allowed). Pure: no I/O.

Tag stripping is a linear scan, no regular expression: a ``<`` followed by a letter,
``/``, ``!`` or ``?`` opens a tag that ends at the next ``>`` (an unclosed one runs to
the end of the text and goes); comments ``<!-- ... -->`` go whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowmonkey.model.form import FieldRules, Form

#: problems listed at most (a body of thousands of over-long strings gets this many)
MAX_PROBLEMS = 50
#: a pointer or message is cut to this length (the record of a submission keeps them)
MAX_PROBLEM_CHARS = 500


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a submission, at its JSON pointer (RFC 6901)."""

    pointer: str
    message: str

    def __post_init__(self) -> None:
        # a pointer of long keys nested deep could be thousands of characters
        if len(self.pointer) > MAX_PROBLEM_CHARS:
            object.__setattr__(self, "pointer", self.pointer[:MAX_PROBLEM_CHARS - 3] + "...")
        if len(self.message) > MAX_PROBLEM_CHARS:
            object.__setattr__(self, "message", self.message[:MAX_PROBLEM_CHARS - 3] + "...")

    def to_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


@dataclass(slots=True)
class Sanitised:
    data: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)


def sanitise(form: Form, data: dict[str, Any]) -> Sanitised:
    """``data`` sanitised by ``form``'s rules, with the fields over their length."""
    out = Sanitised({})
    for name, value in data.items():
        rules = form.fields.get(name, form.default_rules)
        out.data[name] = _value(value, rules, "/" + escape(name), out.problems)
    return out


def _value(value: Any, rules: FieldRules, pointer: str, problems: list[Problem]) -> Any:
    if isinstance(value, str):
        text = clean_text(value, rules)
        if len(text) > rules.max_chars and len(problems) < MAX_PROBLEMS:
            problems.append(Problem(pointer, f"is longer than {rules.max_chars} characters"))
        return text
    if isinstance(value, list):
        return [_value(v, rules, f"{pointer}/{i}", problems) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _value(v, rules, f"{pointer}/{escape(k)}", problems)
                for k, v in value.items()}
    return value


def clean_text(text: str, rules: FieldRules) -> str:
    if rules.strip_control:
        text = strip_control(text)
    if rules.strip_html:
        text = strip_html(text)
    if rules.trim:
        text = text.strip()
    return text


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch not in "\t\n") or 0x7F <= code <= 0x9F


def strip_control(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch for ch in text if not _is_control(ch))


def strip_html(text: str) -> str:
    if "<" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        lt = text.find("<", i)
        if lt < 0 or lt + 1 >= n:
            out.append(text[i:])
            break
        out.append(text[i:lt])
        after = text[lt + 1]
        if text.startswith("<!--", lt):
            end = text.find("-->", lt + 4)
            i = n if end < 0 else end + 3
        elif after.isalpha() or after in "/!?":
            end = text.find(">", lt + 1)
            i = n if end < 0 else end + 1
        else:  # "a < b": not a tag
            out.append("<")
            i = lt + 1
    return "".join(out)


def escape(key: str) -> str:
    """A key as a JSON pointer's token (RFC 6901: ``~`` and ``/`` escaped)."""
    return key.replace("~", "~0").replace("/", "~1")
