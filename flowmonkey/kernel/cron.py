"""Cron schedules in an IANA timezone, as UTC milliseconds. Pure functions (no clock).

An expression has 5 fields, or 6 with seconds FIRST (``croniter``'s
``second_at_beginning``). ``croniter`` walks local wall-clock times (naive); each is
placed on the time line here, through ``zoneinfo``, by these rules for a change of
daylight-saving time (those of Vixie cron):

* spring forward (a gap: e.g. 02:00-02:59 do not exist in Europe/Berlin on the last
  Sunday of March): a schedule with a fixed hour (``30 2 * * *``) fires once, shifted
  by the gap (02:30 becomes 03:30 local); one whose hour field is ``*`` (every minute,
  every hour) has no ticks in the gap: that local time never happened, so there is
  nothing to catch up (an hourly schedule has 23 ticks that day);
* fall back (a fold: 02:00-02:59 happen twice on the last Sunday of October): a
  schedule with a fixed hour fires once, at the first occurrence; one whose hour field
  is ``*`` fires in both (every hour that passes: 25 hourly ticks that day).

Two local times that land on the same instant are one tick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a DST change moves local time by at most this much (no zone shifts by more than 2h)
_SHIFT = timedelta(hours=3)
_MAX_SCAN = 100_000  # candidate local times looked at for one answer, at most


class CronError(ValueError):
    """A cron expression or timezone that cannot be used (the message says which)."""


def check_cron(cron: str) -> None:
    """Raise CronError, saying why, unless ``cron`` is a usable expression."""
    _compiled(cron)


def check_timezone(timezone: str) -> None:
    """Raise CronError unless ``timezone`` is a known IANA timezone."""
    _zone(timezone)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown timezone {name!r} (an IANA name such as "
                        "'Europe/Berlin' or 'UTC')") from None


@lru_cache(maxsize=256)
def _compiled(cron: str) -> tuple[bool, bool]:
    """(has seconds, hour field is a wildcard) of a valid expression."""
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise CronError(f"cron {cron!r} has {len(fields)} fields: it needs 5 (minute hour "
                        "day month weekday), or 6 with seconds first")
    seconds = len(fields) == 6
    try:
        probe = croniter(cron, datetime(2000, 1, 1), second_at_beginning=seconds)
        probe.get_next(datetime)
    except Exception as exc:  # croniter raises several kinds for bad expressions
        raise CronError(f"cron {cron!r} is not valid: {exc}") from None
    hours = probe.expanded[2 if seconds else 1]
    return seconds, hours == ["*"] or len(hours) == 24


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _local(ms: int, zone: ZoneInfo) -> datetime:
    """The naive local wall-clock time of ``ms``."""
    return (_EPOCH + ms * _MS).astimezone(zone).replace(tzinfo=None)


def _instants(wall: datetime, zone: ZoneInfo, every_hour: bool) -> list[int]:
    """Where the local time ``wall`` falls on the time line (see the module's rules)."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    a, b = first.utcoffset(), second.utcoffset()
    if a == b:
        return [_to_ms(first)]
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        # a gap: fold=0 takes the offset before the change, i.e. shifts it forward
        return [] if every_hour else [_to_ms(first)]
    # a fold: the first occurrence, and the second for a schedule of every hour
    return [_to_ms(first), _to_ms(second)] if every_hour else [_to_ms(first)]


def _walk(cron: str, start: datetime) -> croniter:
    seconds, _ = _compiled(cron)
    return croniter(cron, start, second_at_beginning=seconds)


def next_after(cron: str, timezone: str, ms: int) -> int:
    """The first tick strictly after ``ms``."""
    zone = _zone(timezone)
    _, every_hour = _compiled(cron)
    wall = _local(ms, zone)
    walk = _walk(cron, wall)
    candidate: datetime = walk.get_next(datetime)
    found = _instants(candidate, zone, every_hour)
    if _plain(candidate, zone) and _steady(ms, zone) and found[0] > ms:
        # no change near either end (the common case): local order is time order
        return found[0]
    # near a change: local order and time order differ within _SHIFT, so look at the
    # local times from _SHIFT before until _SHIFT past the first tick found
    walk = _walk(cron, wall - _SHIFT)
    best: int | None = None
    best_wall: datetime | None = None
    for _ in range(_MAX_SCAN):
        candidate = walk.get_next(datetime)
        if best_wall is not None and candidate > best_wall + _SHIFT:
            break
        for instant in _instants(candidate, zone, every_hour):
            if instant > ms and (best is None or instant < best):
                best, best_wall = instant, candidate
    if best is None:
        raise CronError(f"cron {cron!r} has no tick after {ms}")
    return best


def _steady(ms: int, zone: ZoneInfo) -> bool:
    """Whether the offset is the same from ``_SHIFT`` before ``ms`` to ``_SHIFT`` after
    (no change of daylight-saving time near it)."""
    span = int(_SHIFT / _MS)
    return (_EPOCH + (ms - span) * _MS).astimezone(zone).utcoffset() == \
        (_EPOCH + (ms + span) * _MS).astimezone(zone).utcoffset()


def _plain(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether ``wall`` is an ordinary local time (neither in a gap nor a fold)."""
    return wall.replace(tzinfo=zone, fold=0).utcoffset() == \
        wall.replace(tzinfo=zone, fold=1).utcoffset()


def ticks_between(cron: str, timezone: str, after_ms: int, until_ms: int,
                  limit: int) -> list[int]:
    """The first ``limit`` ticks in ``(after_ms, until_ms]``, oldest first."""
    found: list[int] = []
    at = after_ms
    while len(found) < limit:
        at = next_after(cron, timezone, at)
        if at > until_ms:
            break
        found.append(at)
    return found


def latest_ticks(cron: str, timezone: str, after_ms: int, until_ms: int,
                 limit: int) -> list[int]:
    """The last ``limit`` ticks in ``(after_ms, until_ms]``, oldest first (walking back
    from ``until_ms``: a long outage costs ``limit`` steps, not one per missed tick)."""
    zone = _zone(timezone)
    _, every_hour = _compiled(cron)
    walk = _walk(cron, _local(until_ms, zone) + _SHIFT + timedelta(seconds=1))
    found: set[int] = set()
    # local times come in reverse local order; near a change that is not quite time
    # order, so keep going _SHIFT past the point where the answer is complete
    stop_wall: datetime | None = None
    for _ in range(_MAX_SCAN):
        candidate: datetime = walk.get_prev(datetime)
        if stop_wall is not None and candidate < stop_wall:
            break
        for instant in _instants(candidate, zone, every_hour):
            if after_ms < instant <= until_ms:
                found.add(instant)
        if stop_wall is None and (len(found) >= limit or
                                  _to_ms(candidate.replace(tzinfo=zone)) <= after_ms):
            stop_wall = candidate - _SHIFT
    return sorted(found)[-limit:]


def to_iso(ms: int, timezone: str | None = None) -> str:
    """``ms`` as ISO-8601, in UTC (``...Z``) or in ``timezone``."""
    moment = _EPOCH + ms * _MS
    if timezone is None:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.astimezone(_zone(timezone)).isoformat(timespec="milliseconds")


__all__ = ["CronError", "check_cron", "check_timezone", "latest_ticks", "next_after",
           "ticks_between", "to_iso"]
