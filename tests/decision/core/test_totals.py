"""A server's view of total caps (decision/core/totals.py), pure: reached, recorded, refreshed."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.controls import TotalCheck, TotalReached
from decision.core.totals import TotalsView, key_of

DAY = TotalCheck("coupon", "decision", "d2026-06-01", 3, 86_400_000)
EVER = TotalCheck("coupon", "impression", "lifetime", 10, None)


def test_the_first_used_up_check_is_reached() -> None:
    view = TotalsView()
    assert view.reached((DAY, EVER)) is None  # nothing seen: nothing reached
    view.record(EVER, 10)
    view.record(DAY, 3)
    assert view.reached((DAY, EVER)) == TotalReached(DAY, 3)
    assert view.reached((EVER, DAY)) == TotalReached(EVER, 10)
    view.record(DAY, 2)  # a reservation given back
    assert view.reached((DAY,)) is None


def test_a_refresh_replaces_the_counts_and_is_due_after_its_interval() -> None:
    view = TotalsView(refresh_interval=5.0)
    assert view.stale(0.0)  # never refreshed
    view.refreshing = True
    assert not view.stale(100.0)  # one refresh at a time
    view.refreshing = False
    view.record(DAY, 3)
    view.replace({key_of(EVER): 4}, monotonic_now=100.0)
    assert view.counts == {("coupon", "impression", "lifetime"): 4}  # yesterday's buckets are forgotten
    assert not view.stale(104.9) and view.stale(105.0)


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 7)), min_size=1, max_size=5))
def test_reached_agrees_with_every_count_and_limit(limits_and_counts: list[tuple[int, int]]) -> None:
    view = TotalsView()
    checks = [
        TotalCheck(f"o{n}", "decision", "lifetime", limit, None) for n, (limit, _) in enumerate(limits_and_counts)
    ]
    for check, (_, count) in zip(checks, limits_and_counts, strict=True):
        view.record(check, count)
    full = [
        TotalReached(c, count) for c, (limit, count) in zip(checks, limits_and_counts, strict=True) if count >= limit
    ]
    assert view.reached(checks) == (full[0] if full else None)
