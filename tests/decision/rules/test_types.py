"""The rule language's domain types (decision/rules/types.py): what their few methods compute."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.rules.loader import parse
from decision.rules.types import (
    AttrType,
    ContactPolicy,
    Experiment,
    HoldoutServes,
    Location,
    Period,
    PeriodKind,
    ProfileAttrType,
    Schedule,
    Variant,
    shown,
    utc_iso,
)

HERE = Location("t.yaml", 3)


def test_a_location_reads_file_colon_line() -> None:
    assert str(HERE) == "t.yaml:3"


def test_an_attribute_is_shown_as_rules_write_it() -> None:
    assert (shown("cart"), shown("profile.tier")) == ("context.cart", "profile.tier")


def test_a_timestamp_profile_attribute_is_a_number_to_the_rules() -> None:
    assert {t: t.rule_type for t in ProfileAttrType} == {
        ProfileAttrType.STRING: AttrType.STRING,
        ProfileAttrType.NUMBER: AttrType.NUMBER,
        ProfileAttrType.BOOL: AttrType.BOOL,
        ProfileAttrType.TIMESTAMP: AttrType.NUMBER,
        ProfileAttrType.LIST: AttrType.LIST,
    }


def test_a_contact_policy_covers_its_channels_and_placements_or_all() -> None:
    day = Period(PeriodKind.DAY)
    web = ContactPolicy("web", frozenset({"web"}), frozenset(), 3, day, "decision", HERE)
    banner = ContactPolicy("banner", frozenset(), frozenset({"banner"}), 3, day, "decision", HERE)
    both = ContactPolicy("both", frozenset({"web"}), frozenset({"banner"}), 3, day, "decision", HERE)
    assert (web.covers("web", "side"), web.covers("app", "side")) == (True, False)
    assert (banner.covers("app", "banner"), banner.covers("app", "side")) == (True, False)
    assert (both.covers("web", "banner"), both.covers("web", "side"), both.covers("app", "banner")) == (
        True,
        False,
        False,
    )


def test_an_experiments_total_weight_counts_its_holdout() -> None:
    experiment = Experiment("e", (Variant("a", 2), Variant("b", 0)), 3, HoldoutServes.FALLBACK, HERE)
    assert experiment.total_weight == 5


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(st.floats(0, 4e9), st.floats(0, 4e9), st.floats(0, 4e9))
def test_a_schedule_is_start_inclusive_end_exclusive(start: float, end: float, now: float) -> None:
    assert Schedule(start, end).contains(now) is (start <= now < end)
    assert Schedule(start, None).contains(now) is (start <= now)
    assert Schedule(None, end).contains(now) is (now < end)
    assert Schedule().contains(now)


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(st.integers(0, 4_000_000_000))
def test_a_moment_is_written_in_utc_with_z_and_read_back(epoch: int) -> None:
    from datetime import datetime

    text = utc_iso(epoch)
    assert text.endswith("Z") and "+" not in text
    assert datetime.fromisoformat(text).timestamp() == epoch
    assert utc_iso(epoch + 0.25, "seconds") == text  # to the second


def test_the_custom_event_types_a_ruleset_accepts_are_those_it_names() -> None:
    text = b"""
placements:
  - {id: banner, channels: [web], fallback: fb, ranking: {strategy: thompson, metric: "custom:purchase"}}
offers:
  - {id: fb, placements: [banner]}
  - {id: promo, placements: [banner], caps: [{max: 2, period: day, counts: "custom:add_to_cart"}]}
contact_policies: [{id: weekly, placements: [banner], max: 5, period: week, counts: "custom:signup"}]
custom_events: [newsletter, review]
"""
    ruleset, problems = parse(text, "t.yaml")
    assert ruleset is not None, problems
    assert ruleset.custom_event_types() == {"newsletter", "review", "purchase", "add_to_cart", "signup"}
    _, problems = parse(text.replace(b"[newsletter, review]", b"[newsletter, newsletter, 'a b']"), "t.yaml")
    assert [str(p) for p in problems] == [
        "t.yaml:8: custom_events[1]: duplicate custom event type 'newsletter'",
        "t.yaml:8: custom_events[2]: invalid custom event type 'a b'",
    ]
