"""Decisions with explain (decision/core/explain.py), pure: every offer of the requested placements, selected or
the first reason it was not, worded from planning's verdicts. Over gRPC and Redis:
tests/decision/service/test_reservations.py, tests/decision/api/test_personalization.py."""

from __future__ import annotations

import pytest

from decision.core.controls import CapReached, PolicyReached, Suppressed, TotalCheck, TotalReached
from decision.core.explain import condition_text, explanation, explanations
from decision.core.learning import Draw
from decision.core.types import Outcome
from decision.core.verdicts import (
    BeatenBy,
    ContentValueMissing,
    Elsewhere,
    Evidence,
    HeldOut,
    InPlaceOf,
    RefusedOnCount,
    Shown,
    Verdict,
)
from decision.rules.reference import AudienceMiss, ConditionFalse, OutsideSchedule
from decision.rules.types import (
    DECISION,
    AllOf,
    AnyOf,
    Cap,
    CapScope,
    ContactPolicy,
    Context,
    Location,
    Not,
    Op,
    Period,
    PeriodKind,
    Predicate,
    Schedule,
    Suppression,
)
from tests.decision.core.profiles import Profiles, explained, moment

RULES = """
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
  - {id: side, channels: [web], max_items: 2, fallback: fb_side}
offers:
  - {id: fb, placements: [banner], priority: -100, eligibility: {audiences: {all: [nobody]}}}
  - {id: fb_side, placements: [side], priority: -100, eligibility: {audiences: {all: [nobody]}}}
  - id: ended
    placements: [banner]
    priority: 99
    eligibility: {schedule: {start: "2020-01-01T00:00:00Z", end: "2021-01-01T00:00:00Z"}}
  - {id: needs_a, placements: [banner], priority: 98, eligibility: {audiences: {all: [a]}}}
  - {id: any_cd, placements: [banner], priority: 97, eligibility: {audiences: {any: [c, d]}}}
  - {id: not_b, placements: [banner], priority: 96, eligibility: {audiences: {none: [b]}}}
  - id: big_cart
    placements: [banner]
    priority: 95
    eligibility: {conditions: [{context.device: {eq: desktop}}, {context.cart_value: {gt: 100}}]}
  - id: held_out
    placements: [banner]
    priority: 94
    experiment: {id: exp1, variants: [{id: v, weight: 1}], holdout: {weight: 1000000, serves: nothing}}
  - {id: once, placements: [banner], priority: 92, caps: [{max: 1, period: lifetime}]}
  - {id: dismissable, placements: [banner], priority: 91, suppress: {after_dismissals: 1, for: 1d}}
  - {id: coupon, placements: [banner], priority: 93, caps: [{max: 1, scope: total, period: lifetime}]}
  - {id: both, placements: [banner, side], priority: 90}
  - {id: top_side, placements: [side], priority: 50}
  - {id: second_side, placements: [side], priority: 40}
  - {id: third_side, placements: [side], priority: 30}
contact_policies:
  - {id: side_daily, placements: [side], max: 3, period: day}
"""
NOW = "2026-11-29T12:00:00+00:00"


def test_every_reason() -> None:
    profiles = Profiles.of(RULES)
    profiles.audiences = {"p1": frozenset({"b"}), "other": frozenset({"b"})}
    context: Context = {"device": "desktop", "cart_value": 35.0}
    now = moment(NOW)
    # Someone else takes the only coupon; p1 sees `once`, then `dismissable`, which it dismisses.
    assert profiles.offers(now, "other") == [["coupon"]]
    assert profiles.decide(now, "p1", context=context).propositions[0].items[0].offer_id == "once"
    assert profiles.decide(now + 60, "p1", context=context).propositions[0].items[0].offer_id == "dismissable"
    profiles.event(now + 60, "dismissable", "dismiss")
    decision = profiles.decide(now + 120, "p1", ("banner", "side"), context=context, explain=True)

    assert [p.items[0].offer_id for p in decision.propositions] == ["both", "top_side"]
    # placements in request order, offers by rank
    assert [(e.placement_id, e.offer_id) for e in decision.explanations][:3] == [
        ("banner", "ended"),
        ("banner", "needs_a"),
        ("banner", "any_cd"),
    ]
    why = explained(decision)
    assert {key: e.outcome for key, e in why.items()} == {
        ("banner", "ended"): Outcome.OUTSIDE_SCHEDULE,
        ("banner", "needs_a"): Outcome.NOT_IN_AUDIENCE,
        ("banner", "any_cd"): Outcome.NOT_IN_AUDIENCE,
        ("banner", "not_b"): Outcome.IN_EXCLUDED_AUDIENCE,
        ("banner", "big_cart"): Outcome.CONDITION_FALSE,
        ("banner", "held_out"): Outcome.HOLDOUT,
        ("banner", "once"): Outcome.CAPPED,
        ("banner", "dismissable"): Outcome.SUPPRESSED,
        ("banner", "coupon"): Outcome.TOTAL_CAP_REACHED,
        ("banner", "both"): Outcome.SELECTED,
        ("banner", "fb"): Outcome.NOT_IN_AUDIENCE,
        ("side", "top_side"): Outcome.SELECTED,
        ("side", "second_side"): Outcome.SELECTED,
        ("side", "both"): Outcome.PROPOSED_ELSEWHERE,
        ("side", "third_side"): Outcome.LOST_RANKING,
        ("side", "fb_side"): Outcome.NOT_IN_AUDIENCE,
    }
    assert why["banner", "needs_a"].audience == "a"
    assert why["banner", "any_cd"].audience == "c, d"
    assert why["banner", "not_b"].audience == "b"
    condition = why["banner", "big_cart"]
    assert (condition.condition, condition.attribute, condition.actual) == (
        "context.cart_value > 100",
        "cart_value",
        35,
    )
    assert condition.reason == "condition context.cart_value > 100 is false (context.cart_value is 35)"
    assert why["banner", "held_out"].experiment_id == "exp1"
    assert (why["banner", "once"].count, why["banner", "once"].limit) == (1, 1)
    assert (why["banner", "coupon"].count, why["banner", "coupon"].limit) == (1, 1)
    assert why["banner", "dismissable"].reason == "suppressed: dismissed 1 times, the last 60 s ago"
    assert why["side", "third_side"].beaten_by == "second_side"
    assert why["side", "both"].reason == "proposed in placement 'banner' of this response (no duplicates)"
    assert why["banner", "ended"].reason == "outside its schedule (2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z)"
    assert why["side", "top_side"].reason == "selected (rank 1 of 2)"


def test_contact_policy_and_fallback() -> None:
    profiles = Profiles.of(RULES)
    for _ in range(2):  # 2 items, then the 1 the policy still allows: its 3 a day are used up
        profiles.decide(NOW, "p2", ("side",))
    decision = profiles.decide(NOW, "p2", ("side",), explain=True)
    why = explained(decision)
    assert decision.propositions[0].fallback
    assert why["side", "fb_side"].outcome is Outcome.FALLBACK
    blocked = why["side", "top_side"]
    assert (blocked.outcome, blocked.count, blocked.limit) == (Outcome.CONTACT_POLICY, 3, 3)
    assert blocked.reason == "contact policy 'side_daily': 3 of 3 decision (day in UTC)"


def test_an_unread_profile_explains_every_offer_as_unavailable() -> None:
    decision = Profiles.of(RULES).decide(NOW, "p1", ("banner",), explain=True, read=False)
    assert decision.degraded
    why = explained(decision)
    assert why["banner", "fb"].outcome is Outcome.FALLBACK
    assert {e.outcome for key, e in why.items() if key[1] != "fb"} == {Outcome.PROFILE_UNAVAILABLE}


def test_no_explanations_unless_asked() -> None:
    assert Profiles.of(RULES).decide(NOW, "p3").explanations == ()


def test_a_held_out_placement_and_a_stand_in() -> None:
    profiles = Profiles.of(
        """
placements:
  - id: banner
    channels: [web]
    fallback: fb
    experiment: {id: layout, variants: [{id: v, weight: 0}], holdout: {weight: 1}}
  - {id: side, channels: [web], fallback: fb}
offers:
  - {id: fb, placements: [banner, side], priority: -1}
  - {id: hero, placements: [banner]}
  - id: promo
    placements: [side]
    experiment: {id: copy, variants: [{id: v, weight: 0}], holdout: {weight: 1, serves: fallback}}
"""
    )
    why = explained(profiles.decide(NOW, placements=("banner", "side"), explain=True))
    held = why["side", "promo"]
    assert (held.outcome, held.experiment_id) == (Outcome.HOLDOUT, "copy")
    assert held.reason == "the profile is in the holdout group of experiment 'copy'"
    assert (
        why["side", "fb"].reason
        == "served as the placement's fallback in place of 'promo' (holdout of experiment 'copy')"
    )
    assert why["banner", "hero"].reason == "the profile is in the holdout group of the placement's experiment 'layout'"
    assert why["banner", "fb"].outcome is Outcome.FALLBACK


# -- the wording of each evidence --------------------------------------------------------------------------

DAY = Period(PeriodKind.DAY, 0, "UTC")
HERE = Location("t.yaml", 1)
CAP = Cap(2, CapScope.PROFILE, DAY, DECISION, HERE)
POLICY = ContactPolicy("daily", frozenset({"web"}), frozenset(), 3, DAY, DECISION, HERE)
TOTAL = TotalCheck("coupon", "decision", "lifetime", 100, None)
NOW_MS = 1_780_000_000_000
X = Predicate("x", Op.GT, 1.0, HERE)
Y = Predicate("y", Op.EQ, "a", HERE)


@pytest.mark.parametrize(
    ("outcome", "evidence", "reason"),
    [
        (Outcome.SELECTED, Shown(2, 3), "selected (rank 2 of 3)"),
        (
            Outcome.OUTSIDE_SCHEDULE,
            OutsideSchedule(Schedule(start=0.0)),
            "outside its schedule (from 1970-01-01T00:00:00Z)",
        ),
        (
            Outcome.OUTSIDE_SCHEDULE,
            OutsideSchedule(Schedule(end=86_400.0)),
            "outside its schedule (until 1970-01-02T00:00:00Z)",
        ),
        (Outcome.NOT_IN_AUDIENCE, AudienceMiss(("vip",)), "not in audience 'vip'"),
        (Outcome.NOT_IN_AUDIENCE, AudienceMiss(("a", "b"), "any"), "in none of the audiences a, b"),
        (Outcome.IN_EXCLUDED_AUDIENCE, AudienceMiss(("churned",), "none"), "in excluded audience 'churned'"),
        (Outcome.CONDITION_FALSE, ConditionFalse(X, "x"), "condition context.x > 1 is false (context.x is absent)"),
        (
            Outcome.CONDITION_FALSE,
            ConditionFalse(AnyOf((X, Not(Y)))),
            'condition (context.x > 1 or not (context.y == "a")) is false',
        ),
        (
            Outcome.CONTENT_MISSING,
            ContentValueMissing("profile.tier"),
            "its content needs profile.tier, which is missing (on_missing: skip)",
        ),
        (Outcome.HOLDOUT, HeldOut("e", placement=False), "the profile is in the holdout group of experiment 'e'"),
        (Outcome.CAPPED, CapReached(CAP, 2), "capped: 2 of 2 decision per profile (day in UTC)"),
        (
            Outcome.SUPPRESSED,
            Suppressed(Suppression(1, 86_400, None, HERE), 1, NOW_MS - 90_000),
            "suppressed: dismissed 1 times, the last 90 s ago",
        ),
        (Outcome.TOTAL_CAP_REACHED, TotalReached(TOTAL, 100), "total cap reached: 100 decision across all profiles"),
        (Outcome.CONTACT_POLICY, PolicyReached(POLICY, 3), "contact policy 'daily': 3 of 3 decision (day in UTC)"),
        (Outcome.PROPOSED_ELSEWHERE, Elsewhere("top"), "proposed in placement 'top' of this response (no duplicates)"),
        (Outcome.LOST_RANKING, BeatenBy("best", 1), "lost the ranking to 'best' (1 item(s) shown)"),
        (
            Outcome.FALLBACK,
            InPlaceOf("o", "e"),
            "served as the placement's fallback in place of 'o' (holdout of experiment 'e')",
        ),
        (Outcome.CAPPED, RefusedOnCount(), "capped when the proposal was counted"),
        (Outcome.FALLBACK, None, "served as the placement's fallback"),
        (
            Outcome.PROFILE_UNAVAILABLE,
            None,
            "the profile could not be read in time: the placement's fallback is served",
        ),
    ],
)
def test_each_evidence_is_worded(outcome: Outcome, evidence: Evidence | None, reason: str) -> None:
    assert explanation(Verdict("o", "p", outcome, (0, 0, 0.0, True, 0.0, 0), evidence), NOW_MS).reason == reason


def test_the_fields_come_from_the_evidence() -> None:
    key = (0, 0, 0.0, True, 0.0, 0)
    capped = explanation(Verdict("o", "p", Outcome.CAPPED, key, CapReached(CAP, 2), "r"), NOW_MS)
    assert (capped.offer_id, capped.placement_id, capped.rule, capped.limit, capped.count) == ("o", "p", "r", 2, 2)
    total = explanation(Verdict("o", "p", Outcome.TOTAL_CAP_REACHED, key, TotalReached(TOTAL, 101)), NOW_MS)
    assert (total.limit, total.count) == (100, 101)
    beaten = explanation(Verdict("o", "p", Outcome.LOST_RANKING, key, BeatenBy("best", 1)), NOW_MS)
    assert beaten.beaten_by == "best"
    missing = explanation(Verdict("o", "p", Outcome.CONTENT_MISSING, key, ContentValueMissing("context.x")), NOW_MS)
    assert missing.attribute == "context.x"


def test_a_learned_rank_adds_its_draw() -> None:
    draw = Draw(3, 40, 0.12345, "click", "impression")
    shown = explanation(Verdict("o", "p", Outcome.SELECTED, (0, 1, -0.1, True, 0.0, 0), Shown(1, 1), draw=draw), 0)
    assert (
        shown.reason
        == "selected (rank 1 of 1); Thompson draw 0.1235 from Beta(3 + 1, 37 + 1) (3 click in 40 impression)"
    )
    exploring = Draw(1, 5, None, "click", "impression")
    assert exploring.text() == "exploring: 1 click in 5 impression (below the minimum exposure, usual order)"


def test_conditions_read_as_written() -> None:
    assert condition_text(AllOf((X, Predicate("profile.tier", Op.IN, ("gold", "silver"), HERE)))) == (
        '(context.x > 1 and profile.tier in ["gold", "silver"])'
    )
    assert condition_text(Predicate("tags", Op.EXISTS, True, HERE)) == "context.tags exists"
    assert condition_text(Predicate("n", Op.EQ, 1e20, HERE)) == "context.n == 1e+20"
    assert condition_text(Predicate("ok", Op.NE, True, HERE)) == "context.ok != true"


def test_one_explanation_per_verdict_in_order() -> None:
    key = (0, 0, 0.0, True, 0.0, 0)
    verdicts = [Verdict(f"o{n}", "p", Outcome.FALLBACK, key) for n in range(3)]
    assert [e.offer_id for e in explanations(verdicts, 0)] == ["o0", "o1", "o2"]
