"""Caps, contact policies and dismissal suppression (decision/core/controls.py), pure: counters in memory.

Period boundaries by setting the time, never by waiting. The same rules through Redis and gRPC:
tests/decision/service/test_reservations.py.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.controls import (
    CapReached,
    DeliveryControls,
    PolicyReached,
    Suppressed,
    count_since,
    merge_keep,
    parse_counters,
    parse_times,
)
from decision.core.counters import offer_counter_field, policy_counter_field
from decision.core.periods import window_start_ms
from decision.rules.types import DECISION, DISMISS, Period, PeriodKind
from tests.decision.core.profiles import HEAD, Profiles, moment
from tests.decision.rules.parsed import loaded

HOUR = 3600.0
DAY = 86_400.0
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "200"))
NOW_MS = 1_780_000_000_000

OFFERS = """
  - {id: a, placements: [banner, side], priority: 30}
  - {id: b, placements: [banner, side], priority: 20}
  - {id: c, placements: [banner, side], priority: 10}
"""


def test_counter_fields_parse_as_the_scripts_write_them() -> None:
    assert parse_times(b"1,2,30") == (1, 2, 30)
    assert parse_times("") == () and parse_times(None) == ()
    assert parse_counters({b"o|x|decision": b"5,6"}) == {"o|x|decision": (5, 6)}
    assert count_since((1, 5, 9), 5) == 2 and count_since((), 0) == 0
    assert merge_keep(["a", "b", "a", "z"], {"a": 2, "b": 3}) == {"a": 2, "b": 3}


def test_rolling_window_per_profile_counted_on_decision() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: capped, placements: [banner], priority: 10, caps: [{max: 2, period: 24h}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    assert profiles.offers("2026-05-04T10:00:00+00:00") == [["capped"]]
    assert profiles.offers("2026-05-04T11:00:00+00:00") == [["capped"]]
    assert profiles.offers("2026-05-04T11:00:00+00:00") == [["next"]]  # capped: gives way to the next offer
    assert profiles.offers("2026-05-04T11:00:00+00:00", "p2") == [["capped"]]  # per profile
    assert profiles.offers("2026-05-05T09:59:59.999+00:00") == [["next"]]  # 1 ms before the first one leaves
    assert profiles.offers("2026-05-05T10:00:00+00:00") == [["capped"]]
    assert profiles.offers("2026-05-05T10:00:00+00:00") == [["next"]]  # the 11:00 proposal is still in the window


def test_calendar_day_week_and_month_in_a_time_zone() -> None:
    profiles = Profiles.of(
        "settings: {time_zone: Europe/Paris}\n"
        + HEAD
        + """
  - {id: daily, placements: [side], priority: 30, caps: [{max: 1, period: day, time_zone: Europe/Paris}]}
  - {id: weekly, placements: [side], priority: 20, caps: [{max: 1, period: week}]}
  - {id: monthly, placements: [side], priority: 10, caps: [{max: 1, period: month, time_zone: UTC}]}
"""
    )

    def side(at: str) -> list[str]:
        return profiles.offers(at, placements=["side"])[0]

    assert side("2026-03-28T23:30:00+01:00") == ["daily", "weekly", "monthly"]  # a Saturday night in Paris
    assert side("2026-03-28T23:59:59+01:00") == ["fb"]
    assert side("2026-03-29T00:00:00+01:00") == ["daily"]  # Sunday: a new day, the same week and month
    assert side("2026-03-30T00:00:00+02:00") == ["daily", "weekly"]  # Monday, after a 23-hour Sunday
    assert side("2026-03-31T23:59:59+00:00") == ["daily"]
    assert side("2026-04-01T00:00:00+00:00") == ["monthly"]  # the month turns in UTC, its own time zone


def test_lifetime_cap_never_resets() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: once, placements: [banner], priority: 10, caps: [{max: 1}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    start = moment("2026-01-01T00:00:00+00:00")
    assert profiles.offers(start) == [["once"]]
    for days in (1, 31, 331):
        assert profiles.offers(start + days * DAY) == [["next"]]


def test_caps_counted_on_impressions_clicks_and_custom_events() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: seen, placements: [side], priority: 30, caps: [{max: 2, period: 7d, counts: impression}]}
  - {id: clicked, placements: [side], priority: 20, caps: [{max: 1, counts: interact}]}
  - {id: bought, placements: [side], priority: 10, caps: [{max: 1, period: day, counts: "custom:purchase"}]}
"""
    )
    now = "2026-06-01T12:00:00+00:00"
    for _ in range(3):  # decisions alone count nothing for these caps
        assert profiles.offers(now, placements=["side"]) == [["seen", "clicked", "bought"]]
    for offer, counted in [("seen", "impression"), ("seen", "impression"), ("clicked", "click"),
                           ("bought", "custom:purchase"), ("bought", "custom:wishlist")]:  # fmt: skip
        profiles.event(now, offer, counted, placement="side")
    assert profiles.offers(now, placements=["side"]) == [["fb"]]
    assert profiles.offers("2026-06-02T00:00:00+00:00", placements=["side"]) == [["bought"]]  # a new day
    # The impressions left the 7-day window; a click cap (lifetime) stays.
    assert profiles.offers("2026-06-08T12:00:00+00:00", placements=["side"]) == [["seen", "bought"]]


def test_several_caps_on_one_offer_all_hold() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - id: promo
    placements: [banner]
    priority: 10
    caps: [{max: 1, period: 1h}, {max: 2, period: day, time_zone: UTC}, {max: 3, period: 30d}]
  - {id: next, placements: [banner], priority: 5}
"""
    )
    start = moment("2026-06-01T08:00:00+00:00")
    seen = [profiles.offers(start + n * 4 * HOUR)[0][0] for n in range(12)]  # every 4 hours for two days
    # 08:00 and 12:00 on day 1 (day cap 2), 00:00 on day 2 (30-day cap 3), then never
    assert [i for i, offer in enumerate(seen) if offer == "promo"] == [0, 1, 4]


def test_total_cap_across_profiles_lifetime_and_per_day() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: coupon, placements: [banner], priority: 20, caps: [{max: 3, scope: total}]}
  - {id: daily_deal, placements: [banner], priority: 10, caps: [{max: 2, scope: total, period: day, time_zone: UTC}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    got = [profiles.offers("2026-06-01T08:00:00+00:00", f"p{i}")[0][0] for i in range(7)]
    assert got == ["coupon"] * 3 + ["daily_deal"] * 2 + ["next"] * 2
    got = [profiles.offers("2026-06-02T00:00:00+00:00", f"q{i}")[0][0] for i in range(3)]
    assert got == ["daily_deal", "daily_deal", "next"]  # a new day's budget; the lifetime total stays spent


def test_a_total_cap_counted_on_impressions_stops_proposals_once_counted() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: launch, placements: [banner], priority: 20, caps: [{max: 2, scope: total, counts: impression}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    now = "2026-06-01T08:00:00+00:00"
    assert [profiles.offers(now, f"p{i}")[0][0] for i in range(3)] == ["launch"] * 3  # decisions do not count
    profiles.event(now, "launch", "impression", "p0")
    profiles.event(now, "launch", "impression", "p1")
    assert profiles.offers(now, "p9") == [["next"]]


def test_at_most_n_messages_per_day_across_offers_on_a_channel() -> None:
    profiles = Profiles.of(
        "settings: {allow_duplicate_propositions: true}\n"
        + HEAD
        + OFFERS
        + "contact_policies:\n  - {id: web_daily, channels: [web], max: 3, period: day, time_zone: Europe/Paris}\n"
    )
    now = "2026-06-01T09:00:00+02:00"
    # Two placements, four items asked for: the policy allows three messages today.
    assert profiles.offers(now, placements=["banner", "side"]) == [["a"], ["a", "b"]]
    assert profiles.offers(now, placements=["side"]) == [["fb"]]  # the fallback is not limited
    assert profiles.offers(now, placements=["banner"], channel="mobile") == [["a"]]  # another channel
    assert profiles.offers(now, "p2", placements=["side"]) == [["a", "b", "c"]]  # per profile
    assert profiles.offers("2026-06-02T00:00:00+02:00", placements=["side"]) == [["a", "b", "c"]]  # midnight in Paris


def test_a_policy_per_placement_counted_on_impressions() -> None:
    profiles = Profiles.of(
        HEAD + OFFERS + "contact_policies:\n  - {id: banner_weekly, placements: [banner], max: 2, period: 7d, "
        "counts: impression}\n"
    )  # fmt: skip
    now = moment("2026-06-01T09:00:00+00:00")
    assert [profiles.offers(now)[0][0] for _ in range(2)] == ["a", "a"]  # decisions are not messages here
    profiles.event(now, "a", "impression")
    profiles.event(now, "a", "impression")
    assert profiles.offers(now) == [["fb"]]
    assert profiles.offers(now, placements=["side"]) == [["a", "b", "c"]]  # another placement
    assert profiles.offers(now + 7 * DAY) == [["a"]]


def test_dismissals_suppress_an_offer_for_a_while() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: app_promo, placements: [banner], priority: 30, suppress: {after_dismissals: 2, for: 7d, within: 30d}}
  - {id: other, placements: [banner], priority: 10}
"""
    )
    now = moment("2026-06-01T09:00:00+00:00")
    assert profiles.offers(now) == [["app_promo"]]
    profiles.event(now, "app_promo", DISMISS)
    assert profiles.offers(now) == [["app_promo"]]  # one dismissal is not enough
    now += DAY
    profiles.event(now, "app_promo", DISMISS)
    assert profiles.offers(now) == [["other"]]
    assert profiles.offers(now, "p2") == [["app_promo"]]  # only for who dismissed it
    assert profiles.offers(now + 7 * DAY - 0.001) == [["other"]]
    now += 7 * DAY  # 7 days after the second dismissal
    assert profiles.offers(now) == [["app_promo"]]
    profiles.event(now, "app_promo", DISMISS)  # within 30 days of the previous one: suppressed again at once
    assert profiles.offers(now) == [["other"]]
    now += 47 * DAY  # the earlier dismissals are now more than 30 days before the next
    profiles.event(now, "app_promo", DISMISS)
    assert profiles.offers(now) == [["app_promo"]]


def test_a_policy_and_caps_under_a_placement_with_several_items() -> None:
    profiles = Profiles.of(
        HEAD
        + """
  - {id: a, placements: [side], priority: 30, caps: [{max: 1, period: day}]}
  - {id: b, placements: [side], priority: 20}
  - {id: c, placements: [side], priority: 10}
contact_policies:
  - {id: side_daily, placements: [side], max: 4, period: day}
"""
    )
    now = "2026-06-01T09:00:00+00:00"
    assert profiles.offers(now, placements=["side"]) == [["a", "b", "c"]]
    assert profiles.offers(now, placements=["side"]) == [["b"]]  # a capped; one message left
    assert profiles.offers(now, placements=["side"]) == [["fb"]]


# -- properties ---------------------------------------------------------------------------------------------

PERIODS = {
    "24h": Period(PeriodKind.ROLLING, 86_400),
    "day": Period(PeriodKind.DAY, 0, "UTC"),
    "lifetime": Period(PeriodKind.LIFETIME),
}


def _controls(caps: str, policies: str = "") -> DeliveryControls:
    return DeliveryControls.build(loaded(HEAD + f"  - {{id: x, placements: [banner], caps: [{caps}]}}\n" + policies))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    period=st.sampled_from(sorted(PERIODS)),
    limit=st.integers(1, 5),
    ages=st.lists(st.integers(0, 3 * 86_400_000), max_size=8),
)
def test_a_caps_verdict_agrees_with_its_count_and_limit(period: str, limit: int, ages: list[int]) -> None:
    controls = _controls(f"{{max: {limit}, period: {period}}}")
    times = tuple(sorted(NOW_MS - age for age in ages))
    counted = sum(1 for t in times if t >= window_start_ms(PERIODS[period], NOW_MS))
    kept = times[-controls.keep[offer_counter_field("x", DECISION)] :]  # what the scripts keep
    for held in (times, kept):
        blocked = controls.blocked("x", {offer_counter_field("x", DECISION): held}, NOW_MS)
        if counted >= limit:  # the kept times answer alike: they hold `limit` of the newest
            assert isinstance(blocked, CapReached) and blocked.cap.max == limit
            assert blocked.count == (counted if held is times else limit)
        else:
            assert blocked is None
    [check] = controls.decision_checks("x", NOW_MS)[0]
    assert check.room({check.field: times}) == limit - counted


@settings(max_examples=EXAMPLES, deadline=None)
@given(limit=st.integers(1, 4), ages=st.lists(st.integers(0, 2 * 86_400_000), max_size=8))
def test_a_policys_verdict_agrees_with_its_count_and_limit(limit: int, ages: list[int]) -> None:
    controls = _controls(
        "{max: 9}", f"contact_policies: [{{id: daily, placements: [banner], max: {limit}, period: 24h}}]\n"
    )
    times = tuple(sorted(NOW_MS - age for age in ages))
    counted = sum(1 for age in ages if age < 86_400_000)
    reached = controls.policy_reached("web", "banner", {policy_counter_field("daily"): times}, NOW_MS)
    assert (reached == PolicyReached(controls.policies[0], counted)) if counted >= limit else reached is None
    assert controls.policy_reached("web", "side", {policy_counter_field("daily"): times}, NOW_MS) is None


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    dismissals=st.integers(1, 3),
    ages=st.lists(st.integers(0, 10 * 86_400_000), max_size=6, unique=True),
)
def test_suppression_follows_the_last_dismissals(dismissals: int, ages: list[int]) -> None:
    """Suppressed for 2 days after the dismissal that makes ``dismissals`` within 5 days of the last one."""
    document = HEAD + (
        f"  - {{id: x, placements: [banner], suppress: {{after_dismissals: {dismissals}, for: 2d, within: 5d}}}}\n"
    )
    controls = DeliveryControls.build(loaded(document))
    suppression = controls.suppressions["x"].suppression
    assert suppression is not None
    times = tuple(sorted(NOW_MS - age for age in ages))
    expected = None
    if times and times[-1] > NOW_MS - 2 * 86_400_000:  # dismissed in the last 2 days
        recent = sum(1 for t in times if t > times[-1] - 5 * 86_400_000)
        if recent >= dismissals:
            expected = Suppressed(suppression, recent, times[-1])
    assert controls.blocked("x", {offer_counter_field("x", DISMISS): times}, NOW_MS) == expected


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(
    limit=st.integers(1, 3),
    steps=st.lists(st.integers(0, 12), min_size=1, max_size=20),
)
def test_a_rolling_cap_holds_in_every_window(limit: int, steps: list[int]) -> None:
    """Whatever the times decisions come at, no 24-hour window holds more than ``limit`` proposals."""
    profiles = Profiles.of(
        HEAD + f"  - {{id: x, placements: [banner], priority: 5, caps: [{{max: {limit}, period: 24h}}]}}\n"
        "  - {id: y, placements: [banner]}\n"
    )  # fmt: skip
    now, shown = 0.0, []
    for hours in steps:
        now += hours * HOUR
        if profiles.offers(now) == [["x"]]:
            shown.append(now)
    assert all(sum(1 for s in shown if t - DAY < s <= t) <= limit for t in shown)
    # and it is not stricter than it says: the first `limit` decisions always show it
    assert len(shown) >= min(limit, len(steps))
