"""Counting periods: where a cap's window starts, and which calendar bucket a moment falls in. Pure.

Times are integer epoch milliseconds. A rolling window of length L counts the
events of the last L, exclusive of the moment exactly L ago: an offer capped
at 1 per 24 h proposed at t is proposable again at t + 24 h. Calendar periods
start at local midnight in their time zone (weeks on Monday, months on the
1st), so a day is 23 or 25 hours long across a daylight-saving change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from decision.rules.types import Period, PeriodKind


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_start(period: Period, now_ms: int) -> datetime:
    """The start of the calendar period containing ``now_ms``, as an aware local datetime."""
    tz = zone(period.time_zone)
    local = datetime.fromtimestamp(now_ms / 1000, tz)
    day = datetime(local.year, local.month, local.day, tzinfo=tz)
    if period.kind is PeriodKind.DAY:
        return day
    if period.kind is PeriodKind.WEEK:
        monday = local.date() - timedelta(days=local.weekday())
        return datetime(monday.year, monday.month, monday.day, tzinfo=tz)
    if period.kind is PeriodKind.MONTH:
        return datetime(local.year, local.month, 1, tzinfo=tz)
    raise ValueError(f"{period.kind} is not a calendar period")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def window_start_ms(period: Period, now_ms: int) -> int:
    """The earliest event time (inclusive) that counts in the period containing ``now_ms``."""
    if period.kind is PeriodKind.LIFETIME:
        return 0
    if period.kind is PeriodKind.ROLLING:
        return now_ms - period.seconds * 1000 + 1
    return _ms(_local_start(period, now_ms))


def bucket(period: Period, now_ms: int) -> str:
    """The name of the calendar bucket containing ``now_ms`` (total caps keep one counter per bucket)."""
    if period.kind is PeriodKind.LIFETIME:
        return "lifetime"
    if period.kind is PeriodKind.ROLLING:
        raise ValueError("rolling periods have no buckets")
    start = _local_start(period, now_ms)
    if period.kind is PeriodKind.DAY:
        name = f"d{start:%Y-%m-%d}"
    elif period.kind is PeriodKind.WEEK:
        year, week, _ = start.isocalendar()
        name = f"w{year}-{week:02d}"
    else:
        name = f"m{start:%Y-%m}"
    return f"{name}@{period.time_zone}"


def bucket_end_ms(period: Period, now_ms: int) -> int | None:
    """When the calendar bucket containing ``now_ms`` ends; None for a lifetime."""
    if period.kind is PeriodKind.LIFETIME:
        return None
    if period.kind is PeriodKind.ROLLING:
        raise ValueError("rolling periods have no buckets")
    start = _local_start(period, now_ms)
    tz = zone(period.time_zone)
    if period.kind is PeriodKind.DAY:
        after = start.date() + timedelta(days=1)
    elif period.kind is PeriodKind.WEEK:
        after = start.date() + timedelta(days=7)
    else:
        after = (start.date().replace(day=28) + timedelta(days=4)).replace(day=1)
    return _ms(datetime(after.year, after.month, after.day, tzinfo=tz))


def span_seconds(period: Period) -> int | None:
    """The longest time an event can count in this period; None for a lifetime."""
    if period.kind is PeriodKind.LIFETIME:
        return None
    if period.kind is PeriodKind.ROLLING:
        return period.seconds
    return {PeriodKind.DAY: 1, PeriodKind.WEEK: 7, PeriodKind.MONTH: 31}[period.kind] * 86_400 + 3_600


def day_span(time_zone: str, now_ms: int) -> tuple[str, int, int]:
    """The calendar day containing ``now_ms`` in ``time_zone``: ``YYYY-MM-DD``, its start and end (epoch ms)."""
    period = Period(PeriodKind.DAY, time_zone=time_zone)
    start = _local_start(period, now_ms)
    end = bucket_end_ms(period, now_ms)
    assert end is not None
    return f"{start:%Y-%m-%d}", _ms(start), end
