"""Counting periods: window starts and calendar buckets, in time zones, across daylight-saving changes."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from decision.core.periods import bucket, bucket_end_ms, window_start_ms
from decision.rules.types import Period, PeriodKind


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


PARIS_DAY = Period(PeriodKind.DAY, 0, "Europe/Paris")
PARIS_WEEK = Period(PeriodKind.WEEK, 0, "Europe/Paris")
NY_MONTH = Period(PeriodKind.MONTH, 0, "America/New_York")


def test_calendar_starts_and_ends_in_the_zone() -> None:
    now = ms("2026-03-29T12:00:00+02:00")  # Sunday, the day Paris moves to summer time
    assert window_start_ms(PARIS_DAY, now) == ms("2026-03-29T00:00:00+01:00")
    assert bucket_end_ms(PARIS_DAY, now) == ms("2026-03-30T00:00:00+02:00")  # a 23-hour day
    assert window_start_ms(PARIS_WEEK, now) == ms("2026-03-23T00:00:00+01:00")  # Monday
    assert bucket(PARIS_DAY, now) == "d2026-03-29@Europe/Paris"
    assert bucket(PARIS_WEEK, now) == "w2026-13@Europe/Paris"
    december = ms("2026-12-31T23:30:00-05:00")
    assert window_start_ms(NY_MONTH, december) == ms("2026-12-01T00:00:00-05:00")
    assert bucket_end_ms(NY_MONTH, december) == ms("2027-01-01T00:00:00-05:00")
    assert bucket(NY_MONTH, december) == "m2026-12@America/New_York"


def test_rolling_and_lifetime() -> None:
    now = ms("2026-06-01T12:00:00+00:00")
    assert window_start_ms(Period(PeriodKind.ROLLING, 3600), now) == now - 3_600_000 + 1
    assert window_start_ms(Period(PeriodKind.LIFETIME), now) == 0
    assert bucket(Period(PeriodKind.LIFETIME), now) == "lifetime"


moments = st.integers(ms("2020-01-01T00:00:00+00:00"), ms("2035-12-31T00:00:00+00:00"))
calendar = st.sampled_from(
    [
        Period(kind, 0, zone)
        for kind in (PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH)
        for zone in ("UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu")
    ]
)


@given(calendar, moments)
def test_a_moment_lies_in_its_bucket_and_buckets_tile_time(period: Period, now: int) -> None:
    start, end = window_start_ms(period, now), bucket_end_ms(period, now)
    assert end is not None and start <= now < end
    assert window_start_ms(period, end) == end  # the next bucket starts where this one ends
    assert bucket(period, end) != bucket(period, now)
    assert bucket(period, end - 1) == bucket(period, now) == bucket(period, start)
