"""Comments and docstrings in ``flowmonkey/`` describe the code as it is.

Benchmark diaries ("that gave ~13% more steps/s", "measured: 67 -> 34 ms") belong in
docs/performance.md, comparisons with the original TypeScript FlowMonkey ("as in the
original", "the original ran ...") in docs/compatibility.md. This scans every module's
comments (tokenize) and docstrings (ast) for those patterns and lists file:line.
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "flowmonkey"

# (what it catches, pattern); matched case-insensitively against one line at a time
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
        # comparisons with the original FlowMonkey
        ("comparison with the original", r"\boriginal(?:'s|s)?\b"),
        ("comparison with the original", r"\bTypeScript\b"),
        # benchmark diaries
        ("measured speed-up", r"\d+(?:\.\d+)? ?% (?:more|less|fewer|faster|slower|higher|lower)\b"),
        ("measured speed-up", r"~ ?\d+(?:\.\d+)? ?%"),
        ("measured speed-up",
         r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)? ?(?:x|times) (?:faster|slower)\b"),
        ("benchmark diary", r"\bgave (?:about |~ ?)?\d"),
        ("benchmark diary", r"\btook (?:about |~ ?)?\d"),
        ("benchmark diary", r"\bused to\b"),
        ("benchmark diary", r"\bwas (?:slower|faster)\b"),
        ("benchmark diary", r"\bbenchmark(?:s|ed)? (?:showed|gave|measured)\b"),
        ("benchmark diary", r"\bmeasured(?::| on\b| at\b| with\b| in\b)"),
        ("benchmark diary", r"\b(?:on|in) the (?:[\w-]+ )?benchmark\b"),
        ("benchmark diary",  # "67 -> 34 ms"
         r"\d+(?:\.\d+)? ?(?:ms|µs|us|s)? ?(?:->|→) ?\d+(?:\.\d+)? ?(?:ms|µs|us|s)\b"),
        ("benchmark diary", r"\bprofile samples\b"),
    )
)

# Legitimate uses of a matched word, as text found on the same line, with the reason.
ALLOWED: dict[str, str] = {
    "still holds the original host": "httpcore's host before the guard rewrites the address",
    "independent of the original": "a clone and the state it was cloned from",
    "in their original order": "a stable sort keeps equal elements in input order",
}


def _comment_lines(source: str) -> Iterator[tuple[int, str]]:
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def _docstring_lines(source: str) -> Iterator[tuple[int, str]]:
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, documented) or not node.body:
            continue
        first = node.body[0]
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            for offset, line in enumerate(first.value.value.splitlines()):
                yield first.value.lineno + offset, line
    # attribute docstrings (a string right after an assignment) count too
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for before, after in itertools.pairwise(body):
            if (isinstance(before, (ast.Assign, ast.AnnAssign)) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                for offset, line in enumerate(after.value.value.splitlines()):
                    yield after.value.lineno + offset, line


def findings(root: Path = PACKAGE) -> list[str]:
    """``path:line: what: text`` for every comment or docstring line that matches."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = sorted({*_comment_lines(source), *_docstring_lines(source)})
        for number, text in lines:
            if any(allowed.lower() in text.lower() for allowed in ALLOWED):
                continue
            for what, pattern in PATTERNS:
                if pattern.search(text):
                    where = path.relative_to(root.parent)
                    found.append(f"{where}:{number}: {what}: {text.strip()}")
                    break
    return found


def test_module_comments_describe_the_code_not_its_history_or_the_original() -> None:
    found = findings()
    assert not found, (
        "comments and docstrings should say what the code does and why; move benchmark "
        "figures to docs/performance.md and comparisons with the original FlowMonkey to "
        "docs/compatibility.md:\n" + "\n".join(found))


def test_the_patterns_catch_diaries_and_comparisons(tmp_path: Path) -> None:
    package = tmp_path / "flowmonkey"
    package.mkdir()
    (package / "m.py").write_text(
        '"""Module.\n\nAs in the original, retries count after the first try."""\n'
        "x = 1  # batching gave ~13% more steps/s\n"
        "y = 2\n"
        '"""Unlike the TypeScript engine."""\n'
        "def f() -> None:\n"
        '    """Faster (measured: 67 -> 34 ms p50)."""\n'
        "    # it used to copy slot by slot\n"
        "    # keeps equal elements in their original order\n",
        encoding="utf-8")
    found = findings(package)
    assert [line.split(": ", 1)[0] for line in found] == [
        "flowmonkey/m.py:3", "flowmonkey/m.py:4", "flowmonkey/m.py:6",
        "flowmonkey/m.py:8", "flowmonkey/m.py:9"]


def test_every_allowed_phrase_is_still_in_use() -> None:
    text = "\n".join(path.read_text(encoding="utf-8").lower()
                     for path in PACKAGE.rglob("*.py"))
    assert [phrase for phrase in ALLOWED if phrase.lower() not in text] == []
