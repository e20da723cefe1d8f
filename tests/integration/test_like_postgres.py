"""The memory projection's ``like`` (rows.LikePattern) answers as PostgreSQL's LIKE does,
on many random patterns and texts (issue 10, finding 11: the matcher was rewritten to
run in linear time, and must not change an answer)."""

from __future__ import annotations

import random

import asyncpg
import pytest

from flowmonkey.projections.row_sql import like_pattern
from flowmonkey.projections.rows import compile_like

pytestmark = pytest.mark.integration

_PATTERN_CHARS = "ab%_\\\né"
_TEXT_CHARS = "ab%_\\\néA"


def _random_cases(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        pattern = "".join(rng.choice(_PATTERN_CHARS) for _ in range(rng.randint(0, 10)))
        text = "".join(rng.choice(_TEXT_CHARS) for _ in range(rng.randint(0, 10)))
        cases.append((pattern, text))
    return cases


async def test_like_agrees_with_postgresql_on_random_patterns(postgres_dsn: str) -> None:
    cases = _random_cases(20_000, seed=10_11)
    cases += [("%" * 24 + "x", "a" * 40), ("%" * 24 + "a%a%" + "%" * 24, "banana"),
              ("%\\%%", "100%"), ("a\\", "a\\"), ("_%_", "é")]
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch(
            "select t like p as hit from unnest($1::text[], $2::text[]) "
            "with ordinality as c(p, t, n) order by n",
            [like_pattern(p) for p, _ in cases], [t for _, t in cases])
    finally:
        await conn.close()
    mismatches = [(p, t, row["hit"]) for (p, t), row in zip(cases, rows, strict=True)
                  if compile_like(p).matches(t) is not row["hit"]]
    assert mismatches == []
