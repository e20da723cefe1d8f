"""Cron schedules in a timezone (kernel/cron.py): ticks as UTC ms, correct across the
daylight-saving changes of Europe/Berlin by the rules in the module's docstring."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from flowmonkey.kernel import cron

BERLIN = "Europe/Berlin"
HOUR = 3_600_000
DAY = 24 * HOUR


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def local(ticks: list[int], timezone: str = BERLIN) -> list[str]:
    """Each tick as local time with its offset (``03-31T03:30+02:00``)."""
    return [cron.to_iso(t, timezone)[5:16] + cron.to_iso(t, timezone)[-6:] for t in ticks]


# the days of the changes in 2024: spring forward on 31 March (02:00 -> 03:00), fall
# back on 27 October (03:00 -> 02:00)
SPRING = ms("2024-03-30T12:00:00+00:00")
AUTUMN = ms("2024-10-26T12:00:00+00:00")


def on_the_day(ticks: list[int], day: str) -> list[str]:
    return [t for t in local(ticks) if t.startswith(day)]


def test_a_daily_0230_fires_once_at_0330_on_the_spring_forward_day() -> None:
    ticks = cron.ticks_between("30 2 * * *", BERLIN, SPRING, SPRING + 2 * DAY, 10)
    assert on_the_day(ticks, "03-31") == ["03-31T03:30+02:00"]
    assert on_the_day(ticks, "04-01") == ["04-01T02:30+02:00"]


def test_a_daily_0230_fires_once_at_its_first_occurrence_on_the_fall_back_day() -> None:
    ticks = cron.ticks_between("30 2 * * *", BERLIN, AUTUMN, AUTUMN + 2 * DAY, 10)
    assert on_the_day(ticks, "10-27") == ["10-27T02:30+02:00"]


def test_an_hourly_schedule_has_23_ticks_in_spring_and_25_in_autumn() -> None:
    start = ms("2024-03-30T23:00:00+00:00")  # 00:00 local on the 31st
    spring = cron.ticks_between("0 * * * *", BERLIN, start - 1, start + 23 * HOUR - 1, 100)
    assert len(spring) == 23
    assert "03-31T02:00" not in " ".join(local(spring))
    start = ms("2024-10-26T22:00:00+00:00")  # 00:00 local on the 27th
    autumn = cron.ticks_between("0 * * * *", BERLIN, start - 1, start + 25 * HOUR - 1, 100)
    assert len(autumn) == 25
    assert on_the_day(autumn, "10-27")[2:4] == ["10-27T02:00+02:00", "10-27T02:00+01:00"]
    # every hour of real time, no two ticks at once
    assert all(b - a == HOUR for a, b in itertools.pairwise(autumn))


def test_every_minute_gives_1440_ticks_on_both_change_days() -> None:
    for day in ("2024-03-31T00:00:00+00:00", "2024-10-27T00:00:00+00:00"):
        start = ms(day)
        ticks = cron.ticks_between("* * * * *", BERLIN, start - 1, start + DAY - 1, 5_000)
        assert len(ticks) == len(set(ticks)) == 1440
        assert ticks == sorted(ticks)


def test_a_fixed_hour_range_in_the_gap_shifts_and_in_the_fold_runs_once() -> None:
    spring = cron.ticks_between("*/30 2 * * *", BERLIN, SPRING, SPRING + DAY, 10)
    assert on_the_day(spring, "03-31") == ["03-31T03:00+02:00", "03-31T03:30+02:00"]
    autumn = cron.ticks_between("*/30 2 * * *", BERLIN, AUTUMN, AUTUMN + DAY, 10)
    assert on_the_day(autumn, "10-27") == ["10-27T02:00+02:00", "10-27T02:30+02:00"]


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 * * * *", "*/20 * * * *",
                                        "*/30 2 * * *", "15 3 * * *"])
@pytest.mark.parametrize("around", [SPRING, AUTUMN])
def test_walking_back_gives_the_same_ticks_as_walking_forward(expression: str,
                                                              around: int) -> None:
    forward = cron.ticks_between(expression, BERLIN, around, around + 2 * DAY, 5_000)
    backward = cron.latest_ticks(expression, BERLIN, around, around + 2 * DAY, 5_000)
    assert backward == forward
    assert cron.latest_ticks(expression, BERLIN, around, around + 2 * DAY, 3) == forward[-3:]


def test_six_fields_have_seconds_first() -> None:
    start = ms("2024-01-01T00:00:00+00:00")
    ticks = cron.ticks_between("*/20 * * * * *", "UTC", start, start + 60_000, 10)
    assert [cron.to_iso(t) for t in ticks] == [
        "2024-01-01T00:00:20.000Z", "2024-01-01T00:00:40.000Z", "2024-01-01T00:01:00.000Z"]


def test_next_after_is_strictly_after() -> None:
    start = ms("2024-01-01T00:00:00+00:00")
    assert cron.next_after("* * * * *", "UTC", start) == start + 60_000
    assert cron.next_after("* * * * *", "UTC", start - 1) == start


@pytest.mark.parametrize(("expression", "says"), [
    ("61 * * * *", "not valid"), ("* * *", "3 fields"), ("", "0 fields"),
    ("* * * * * * *", "7 fields"), ("every day", "fields")])
def test_a_bad_expression_is_refused_saying_why(expression: str, says: str) -> None:
    with pytest.raises(cron.CronError, match=says):
        cron.check_cron(expression)


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "../etc/passwd", "Europe/"])
def test_an_unknown_timezone_is_refused(timezone: str) -> None:
    with pytest.raises(cron.CronError, match="unknown timezone"):
        cron.check_timezone(timezone)
