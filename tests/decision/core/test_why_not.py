"""Why not this offer: the smallest changes that would make it win, per kind of verdict, checked by planning again.

Pure tests plan as the server does (reference eligibility, the real planner, the delivery controls); the
properties apply the answer to the request and the profile and ask the compiled engine and the planner again;
the last test asks a real server over gRPC, with the profile in a real Redis.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.controls import DeliveryControls, Times, reopens_ms
from decision.core.explain import change_text, why_not_text
from decision.core.periods import window_start_ms
from decision.core.planning import Why, build_plan, fill, verdicts
from decision.core.requests import check_request
from decision.core.totals import TotalsView
from decision.core.types import (
    Change,
    DecisionRequest,
    InvalidRequest,
    JoinAudience,
    LeaveAudience,
    Never,
    Outcome,
    Outrank,
    PlacementRequest,
    RankPart,
    Remedy,
    Requirement,
    SetValue,
    WaitFor,
    WaitUntil,
    WhyNot,
)
from decision.core.why_not import answers, solve
from decision.rules import reference
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.types import Op, Period, PeriodKind, Ruleset, utc_iso
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.core import plans
from tests.decision.delivery import PATIENT, Clock, with_clock
from tests.decision.helpers import add_attributes, add_membership, decide_request
from tests.decision.rules.strategies import requests as rule_requests
from tests.decision.rules.strategies import ruleset_documents

NOW_MS = 1_780_000_000_000  # 2026-05-28T20:26:40Z
HOUR = 3_600_000
DAY = 24 * HOUR
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "150"))

HEAD = """
profile_attributes: {tier: string, ltv: number}
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
  - {id: side, channels: [web], max_items: 2, fallback: fb}
offers:
  - {id: fb, placements: [banner, side], priority: -100, eligibility: {audiences: {all: [nobody]}}}
"""


def loaded(text: str) -> Ruleset:
    ruleset, problems = parse(text.encode(), "t.yaml")
    assert ruleset is not None, [str(p) for p in problems]
    return ruleset


def rules(offers: str, more: str = "") -> Ruleset:
    """The head and these offers (YAML list items), then ``more`` (e.g. contact policies)."""
    return loaded(HEAD + offers + more)


def ask(
    ruleset: Ruleset,
    *why_not: str,
    placements: tuple[str, ...] = ("banner",),
    context: Mapping[str, Any] | None = None,
    audiences: frozenset[str] = frozenset(),
    counters: Mapping[str, Times] | None = None,
    totals: TotalsView | None = None,
    now_ms: int = NOW_MS,
    profile: str = "p1",
) -> dict[tuple[str, str], WhyNot]:
    """Decide as the server does (eligibility, plan with every verdict, fill) and answer ``why_not``."""
    wanted = tuple(PlacementRequest(p) for p in placements)
    request = DecisionRequest(profile, "web", wanted, dict(context or {}), "r", True, why_not=why_not)
    sent = {k: v for k, v in request.context.items() if not k.startswith("profile.")}  # the profile's: joined
    check_request(ruleset, dataclasses.replace(request, context=sent))
    controls = DeliveryControls.build(ruleset)
    eligible = reference.eligible(ruleset, audiences, request.context, now_ms / 1000)
    read = dict(counters or {})
    plan = build_plan(ruleset, eligible, request, now_ms=now_ms, controls=controls, counters=read, totals=totals,
                      why=Why(audiences, now_ms / 1000))  # fmt: skip
    found = answers(plan, fill(plan, read), ruleset, request, controls=controls, totals=totals)
    return {(a.offer_id, a.placement_id): a for a in found}


def one(ruleset: Ruleset, offer_id: str, **kw: Any) -> WhyNot:
    [answer] = [a for (offer, _), a in ask(ruleset, offer_id, **kw).items() if offer == offer_id]
    return answer


# -- per kind of verdict -------------------------------------------------------------------------------------------

BIG_CART = """
  - id: big_cart
    placements: [banner]
    priority: 95
    eligibility: {conditions: [{context.device: {in: [desktop, tablet]}}, {context.cart_value: {gt: 100}}]}
  - {id: generic, placements: [banner], priority: 1}
"""


def test_a_failed_condition_gets_the_closest_passing_value() -> None:
    answer = one(rules(BIG_CART), "big_cart", context={"device": "desktop", "cart_value": 80.0})
    assert answer.outcome is Outcome.CONDITION_FALSE
    [remedy] = answer.remedies
    assert remedy.changes == (SetValue("cart_value", 80.0, (Requirement(Op.GT, 100.0),), 101.0),)
    assert change_text(remedy.changes[0]) == "context.cart_value above 100 (is 80): e.g. 101"


def test_several_failed_conditions_are_all_needed_and_in_is_one_of_its_values() -> None:
    answer = one(rules(BIG_CART), "big_cart", context={"device": "mobile", "cart_value": 80.0})
    [remedy] = answer.remedies
    assert [(c.attribute, c.value) for c in remedy.changes if isinstance(c, SetValue)] == [
        ("device", "desktop"),
        ("cart_value", 101.0),
    ]
    assert 'context.device one of ["desktop", "tablet"] (is "mobile"): e.g. "desktop"' in why_not_text(answer)


def test_an_or_gives_each_way_on_its_own_and_a_not_its_opposite() -> None:
    either = """
  - id: either
    placements: [banner]
    priority: 94
    eligibility: {conditions: {or: [{context.cart_value: {ge: 500}}, {not: {context.device: {eq: mobile}}}]}}
  - {id: desktop_only, placements: [side], eligibility: {conditions: {context.device: {eq: desktop}}}}
"""
    answer = one(rules(either), "either", context={"device": "mobile", "cart_value": 80.0})
    assert [[change_text(c) for c in r.changes] for r in answer.remedies] == [
        ["context.cart_value 500 or more (is 80): e.g. 500"],
        ['context.device other than "mobile" (is "mobile"): e.g. "desktop"'],  # a value the ruleset uses
    ]


def test_an_absent_attribute_and_a_profile_attribute() -> None:
    gold = rules("  - {id: gold_only, placements: [banner], eligibility: {conditions: {profile.tier: {eq: gold}}}}\n")
    answer = one(gold, "gold_only", context={"profile.tier": "silver"})
    assert answer.remedies[0].changes == (SetValue("profile.tier", "silver", (Requirement(Op.EQ, "gold"),), "gold"),)
    assert change_text(answer.remedies[0].changes[0]) == 'profile.tier equal to "gold" (is "silver"): e.g. "gold"'
    absent = one(rules(BIG_CART), "big_cart", context={"device": "tablet"})
    assert change_text(absent.remedies[0].changes[0]) == "context.cart_value above 100 (is absent): e.g. 101"


def test_audiences_to_join_and_to_leave() -> None:
    audiences = rules("""
  - {id: needs_a, placements: [banner], priority: 3, eligibility: {audiences: {all: [a]}}}
  - {id: any_cd, placements: [banner], priority: 2, eligibility: {audiences: {any: [c, d]}}}
  - {id: not_b, placements: [banner], priority: 1, eligibility: {audiences: {none: [b]}}}
""")  # fmt: skip
    assert one(audiences, "needs_a", audiences=frozenset({"b"})).remedies == (
        Remedy((JoinAudience(("a",)),), "needs_a"),
    )
    assert one(audiences, "any_cd", audiences=frozenset({"b"})).remedies[0].changes == (
        JoinAudience(("c", "d"), any=True),
    )
    assert one(audiences, "not_b", audiences=frozenset({"b"})).remedies[0].changes == (LeaveAudience("b"),)
    assert "the profile joins one of the audiences 'c', 'd'" in why_not_text(one(audiences, "any_cd"))


def test_schedules_not_started_wait_and_ended_ones_are_closed_for_good() -> None:
    seasons = rules("""
  - id: summer
    placements: [banner]
    eligibility: {schedule: {start: "2026-01-01T00:00:00Z", end: "2026-03-01T00:00:00Z"}}
  - {id: winter, placements: [banner], eligibility: {schedule: {start: "2026-12-01T00:00:00Z"}}}
""")  # fmt: skip
    winter = one(seasons, "winter")
    assert winter.outcome is Outcome.OUTSIDE_SCHEDULE
    assert winter.remedies[0].changes == (WaitUntil(1_796_083_200_000, WaitFor.SCHEDULE, "winter"),)
    assert "wait until 2026-12-01T00:00:00Z (rule 'winter' starts)" in why_not_text(winter)
    summer = one(seasons, "summer")
    assert summer.remedies == () and summer.never == (Never(Outcome.OUTSIDE_SCHEDULE, "summer", 1_772_323_200_000),)
    assert "nothing can make it win for this profile: rule 'summer' ended at 2026-03-01T00:00:00Z" in why_not_text(
        summer
    )


def test_a_cap_reopens_when_its_oldest_counted_time_leaves_the_window() -> None:
    capped = rules("""
  - {id: daily, placements: [banner], priority: 2, caps: [{max: 2, period: 24h}]}
  - {id: once, placements: [banner], priority: 2, caps: [{max: 1, period: lifetime}]}
  - {id: generic, placements: [banner], priority: 1}
""")  # fmt: skip
    counters = {"o|daily|decision": (NOW_MS - 20 * HOUR, NOW_MS - 2 * HOUR), "o|once|decision": (NOW_MS - DAY,)}
    answer = one(capped, "daily", counters=counters)
    assert answer.outcome is Outcome.CAPPED
    assert answer.remedies[0].changes == (
        WaitUntil(NOW_MS + 4 * HOUR, WaitFor.CAP, "2 decision per profile, rolling 24h"),
    )
    lifetime = one(capped, "once", counters=counters)
    assert lifetime.remedies == ()
    assert "the cap of 1 decision per profile, lifetime is reached for good" in why_not_text(lifetime)


def test_two_caps_on_one_counter_wait_for_the_later_as_the_profile_page_says() -> None:
    """The 24h cap reopens in 23 hours, but the 168h cap on the same counter holds 2 of 2 until the older time
    leaves its window, 4 days on: the wait is the later one, the date ``DeliveryControls.usage`` shows."""
    capped = rules("""
  - {id: weekly, placements: [banner], priority: 2, caps: [{max: 1, period: 24h}, {max: 2, period: 168h}]}
  - {id: generic, placements: [banner], priority: 1}
""")  # fmt: skip
    counters = {"o|weekly|decision": (NOW_MS - 3 * DAY, NOW_MS - HOUR)}
    answer = one(capped, "weekly", counters=counters)
    assert answer.outcome is Outcome.CAPPED
    later = WaitUntil(NOW_MS + 4 * DAY, WaitFor.CAP, "2 decision per profile, rolling 168h")
    assert answer.remedies[0].changes == (later,)
    shown = [u.until_ms for u in DeliveryControls.build(capped).usage(counters, NOW_MS) if u.reached]
    assert max(u for u in shown if u is not None) == later.at_ms


def test_a_wait_past_the_end_of_the_schedule_is_no_remedy() -> None:
    """Capped for 23 more hours, the schedule ending in 2 and a half: nothing makes it win."""
    ending = rules("""
  - id: ending
    placements: [banner]
    priority: 2
    eligibility: {schedule: {end: "2026-05-28T23:00:00Z"}}
    caps: [{max: 1, period: 24h}]
  - {id: generic, placements: [banner], priority: 1}
""")  # fmt: skip
    answer = one(ending, "ending", counters={"o|ending|decision": (NOW_MS - HOUR,)})
    assert answer.outcome is Outcome.CAPPED and answer.remedies == ()
    wait = WaitUntil(NOW_MS + 23 * HOUR, WaitFor.CAP, "1 decision per profile, rolling 24h")
    assert answer.never == (Never(Outcome.OUTSIDE_SCHEDULE, "ending", 1_780_009_200_000, wait),)
    assert (
        "nothing can make it win for this profile: rule 'ending' ends at 2026-05-28T23:00:00Z, before the offer "
        "could win: wait until 2026-05-29T19:26:40Z (the cap of 1 decision per profile, rolling 24h has room again)"
    ) in why_not_text(answer)


def test_ineligible_and_capped_needs_both_changes() -> None:
    capped = rules("""
  - id: needs_a
    placements: [banner]
    priority: 2
    eligibility: {audiences: {all: [a]}}
    caps: [{max: 1, period: 24h}]
  - {id: generic, placements: [banner], priority: 1}
""")  # fmt: skip
    answer = one(capped, "needs_a", counters={"o|needs_a|decision": (NOW_MS - HOUR,)})
    assert answer.outcome is Outcome.NOT_IN_AUDIENCE  # the first reason; the cap comes after
    assert answer.remedies[0].changes == (
        JoinAudience(("a",)),
        WaitUntil(NOW_MS + 23 * HOUR, WaitFor.CAP, "1 decision per profile, rolling 24h"),
    )


def test_a_suppression_ends_a_day_after_the_last_dismissal() -> None:
    dismissable = rules("  - {id: dismissable, placements: [banner], suppress: {after_dismissals: 1, for: 1d}}\n")
    answer = one(dismissable, "dismissable", counters={"o|dismissable|dismiss": (NOW_MS - HOUR,)})
    assert answer.outcome is Outcome.SUPPRESSED
    assert answer.remedies[0].changes == (WaitUntil(NOW_MS + 23 * HOUR, WaitFor.SUPPRESSION),)


def test_total_caps_reopen_with_their_bucket_or_never() -> None:
    coupons = rules("""
  - {id: coupon, placements: [banner], caps: [{max: 1, scope: total, period: lifetime}]}
  - {id: daily_coupon, placements: [banner], caps: [{max: 5, scope: total, period: day}]}
""")  # fmt: skip
    counts = {("coupon", "decision", "lifetime"): 1, ("daily_coupon", "decision", "d2026-05-28@UTC"): 5}
    totals = TotalsView(counts=counts)
    coupon = one(coupons, "coupon", totals=totals)
    assert coupon.outcome is Outcome.TOTAL_CAP_REACHED and coupon.remedies == ()
    assert coupon.never == (Never(Outcome.TOTAL_CAP_REACHED, "1 decision in total"),)
    daily = one(coupons, "daily_coupon", totals=totals)
    assert daily.remedies[0].changes == (WaitUntil(1_780_012_800_000, WaitFor.TOTAL_CAP, "5 decision in total"),)


def test_a_holdout_is_sticky() -> None:
    held = rules("""
  - id: held_out
    placements: [banner]
    experiment: {id: exp1, variants: [{id: v, weight: 1}], holdout: {weight: 1000000, serves: nothing}}
""")  # fmt: skip
    answer = one(held, "held_out")
    assert answer.outcome is Outcome.HOLDOUT
    assert answer.remedies == () and answer.never == (Never(Outcome.HOLDOUT, "exp1"),)
    assert "holdout group of experiment 'exp1' (a hash of the profile: it stays there)" in why_not_text(answer)


def test_missing_content_needs_the_value() -> None:
    named = rules("  - {id: named, placements: [banner], on_missing: skip, content: {title: 'Hi {{context.name}}'}}\n")
    answer = one(named, "named")
    assert answer.outcome is Outcome.CONTENT_MISSING
    [change] = answer.remedies[0].changes
    assert isinstance(change, SetValue) and change.attribute == "name"
    assert change_text(change) == "context.name present (is absent)"


RANKED = """
  - {id: top, placements: [banner], priority: 50, attributes: {boost: 1}}
  - {id: scored, placements: [banner], priority: 50, attributes: {boost: 3}}
  - {id: low, placements: [banner], priority: 10, attributes: {boost: 9}}
"""


def test_the_ranking_says_which_part_of_the_rank_key_decides() -> None:
    by_file = rules(RANKED)
    low = one(by_file, "low")
    assert low.outcome is Outcome.LOST_RANKING
    assert low.remedies[0].changes == (Outrank("top", RankPart.PRIORITY, 10.0, 50.0),)
    assert "priority 51 or more (is 10) to rank above 'top', the last offer shown" in why_not_text(low)
    assert one(by_file, "scored").remedies[0].changes == (Outrank("top", RankPart.POSITION, 2.0, 1.0),)
    scored = loaded(HEAD.replace("max_items: 1, fallback: fb}", 'max_items: 1, fallback: fb, score: "offer.boost"}', 1)
                    + RANKED)  # fmt: skip
    assert one(scored, "top").remedies[0].changes == (Outrank("scored", RankPart.SCORE, 1.0, 3.0),)
    assert "score 3 against 1 (2 short" in why_not_text(one(scored, "top"))


def test_contact_policy_and_another_placement() -> None:
    side = rules(
        "  - {id: both, placements: [banner, side], priority: 9}\n  - {id: last_side, placements: [side]}\n",
        "contact_policies: [{id: side_daily, placements: [side], max: 3, period: day}]\n",
    )
    today = NOW_MS - 20 * HOUR  # 2026-05-28 00:26 UTC: the same calendar day
    answer = one(side, "last_side", placements=("side",), counters={"p|side_daily": (today,) * 3})
    assert answer.outcome is Outcome.CONTACT_POLICY
    assert answer.remedies[0].changes == (WaitUntil(1_780_012_800_000, WaitFor.CONTACT_POLICY, "side_daily"),)
    both = ask(side, "both", placements=("banner", "side"))
    assert both["both", "banner"].shown
    assert both["both", "side"].never == (Never(Outcome.PROPOSED_ELSEWHERE, "banner"),)


def test_shown_and_unknown_offers() -> None:
    ruleset = rules(BIG_CART + "  - {id: later, placements: [side]}\n")
    assert one(ruleset, "generic").shown
    assert (
        why_not_text(one(ruleset, "generic"))
        == "why not 'generic' in 'banner': selected: it is shown, nothing to change"
    )
    with pytest.raises(InvalidRequest, match=r"why_not\[0\]: unknown offer 'big_crat' \(did you mean 'big_cart'\?\)"):
        ask(ruleset, "big_crat")
    with pytest.raises(InvalidRequest, match=r"why_not\[0\]: offer 'later' is in none of the requested placements"):
        ask(ruleset, "later")


def test_no_value_meets_a_contradiction() -> None:
    contradiction = rules("""
  - id: never
    placements: [banner]
    eligibility: {conditions: [{context.n: {gt: 10}}, {context.n: {lt: 5}}]}
""")  # fmt: skip
    answer = one(contradiction, "never", context={"n": 7.0})
    assert answer.remedies == () and answer.never == (Never(Outcome.CONDITION_FALSE, "never"),)
    assert "no value meets the condition of rule 'never'" in why_not_text(answer)


@pytest.mark.parametrize(
    ("requirements", "actual", "expected"),
    [
        ((Requirement(Op.GT, 100.0),), 80.0, 101.0),
        ((Requirement(Op.GE, 99.5),), 3.0, 99.5),
        ((Requirement(Op.LT, 0.25),), 1.0, 0.24),
        ((Requirement(Op.GT, 100.0, holds=False),), 120.0, 100.0),  # not above 100
        ((Requirement(Op.IN, ("a", "b")),), "c", "a"),
        ((Requirement(Op.NOT_IN, ("a", "b")), Requirement(Op.EXISTS, "")), "a", "a_"),
        ((Requirement(Op.CONTAINS, "vip"),), ("gold",), ("gold", "vip")),
        ((Requirement(Op.EXISTS, "", holds=False),), "x", None),
        ((Requirement(Op.STARTS_WITH, "/cart"),), "/home", "/cart"),
    ],
)
def test_solve(requirements: tuple[Requirement, ...], actual: Any, expected: Any) -> None:
    assert solve(requirements, actual) == expected


# -- properties: the answer, applied, makes the offer eligible (engine and reference) and win (planner) ------------


def _apply(
    remedy: Remedy, audiences: frozenset[str], context: Mapping[str, Any], now: float
) -> tuple[frozenset[str], dict[str, Any], float]:
    joined, after, moment = set(audiences), dict(context), now
    for change in remedy.changes:
        if isinstance(change, SetValue):
            if change.value is None:
                after.pop(change.attribute, None)
            else:
                after[change.attribute] = change.value
        elif isinstance(change, JoinAudience):
            joined.add(change.audiences[0])
        elif isinstance(change, LeaveAudience):
            joined.discard(change.audience)
        elif isinstance(change, WaitUntil):
            moment = max(moment, change.at_ms / 1000)
    return frozenset(joined), after, moment


def _outranked(ruleset: Ruleset, offer_id: str, changes: tuple[Change, ...]) -> Ruleset:
    """The ruleset with the offer's priority raised as an ``Outrank`` change says."""
    for change in changes:
        if isinstance(change, Outrank):
            offer = ruleset.offers[offer_id]
            theirs = ruleset.offers[change.offer_id].priority
            raised = dataclasses.replace(offer, priority=max(offer.priority, theirs + 1))
            ruleset = dataclasses.replace(ruleset, offers={**ruleset.offers, offer_id: raised})
    return ruleset


@settings(max_examples=EXAMPLES, deadline=None)
@given(document=ruleset_documents(), asked=rule_requests(), data=st.data())
def test_every_remedy_makes_the_offer_eligible_and_win(document: str, asked: Any, data: st.DataObject) -> None:
    ruleset = loaded(document)
    compiled = compile_and_load(ruleset)
    audiences, context, now = asked
    placement = data.draw(st.sampled_from(["p", "q", "r"]), "placement")
    request = DecisionRequest("u", "web", (PlacementRequest(placement),), context, "r", True)
    losers = [o.id for o in ruleset.offers_for(placement)]
    offer_id = data.draw(st.sampled_from(losers), "offer")
    request = dataclasses.replace(request, why_not=(offer_id,))
    eligible = compiled.eligible(audiences, context, now, [placement])
    now_ms = round(now * 1000)
    plan = build_plan(ruleset, eligible, request, now_ms=now_ms, why=Why(audiences, now))
    [answer] = answers(plan, fill(plan, {}), ruleset, request)
    if answer.shown:
        return
    assert answer.remedies or answer.never  # an answer either way
    sizes = [len(r.changes) for r in answer.remedies]
    assert sizes == sorted(sizes)
    for remedy in answer.remedies:
        joined, changed, moment = _apply(remedy, audiences, context, now)
        assert reference.matching_rule(ruleset.offers[offer_id], joined, changed, moment) is not None
        assert offer_id in compiled.eligible(joined, changed, moment, [placement])
        if any(isinstance(c, WaitUntil) for c in remedy.changes):
            continue  # other offers' schedules move with the clock: "other things equal" is not checked
        raised = _outranked(ruleset, offer_id, remedy.changes)
        again = dataclasses.replace(request, context=changed, why_not=())
        others = compile_and_load(raised).eligible(joined, changed, moment, [placement])
        replan = build_plan(raised, others, again, now_ms=now_ms, why=Why(joined, moment))
        found = {v.offer_id: v for v in verdicts(replan, fill(replan, {}), raised)}
        assert found[offer_id].outcome in (Outcome.SELECTED, Outcome.FALLBACK), (remedy, found[offer_id])


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data(), document=plans.documents())
def test_with_delivery_controls_each_wait_lifts_its_obstacle(data: st.DataObject, document: str) -> None:
    """Caps, suppressions, totals, policies, holdouts: a remedy's changes applied (counters as they will be at
    each wait, the audiences joined), the planner shows the offer, or the obstacle named is the one the answer
    waits for next; a holdout or a lifetime obstacle has no remedy."""
    ruleset = loaded(document)
    counters = data.draw(plans.counters(plans.counter_fields(document)), "counters")
    audiences = frozenset(data.draw(st.sets(st.sampled_from(plans.audiences_of(document))), "audiences"))
    profile = data.draw(st.sampled_from(plans.PROFILES), "profile")
    placement = data.draw(st.sampled_from(plans.PLACEMENTS), "placement")
    offer_id = data.draw(st.sampled_from([o.id for o in ruleset.offers_for(placement)]), "offer")
    found = ask(ruleset, offer_id, placements=(placement,), audiences=audiences, counters=counters, profile=profile)
    answer = found[offer_id, placement]
    if answer.shown:
        return
    assert answer.remedies or answer.never
    for never in answer.never:
        assert never.outcome is not Outcome.CAPPED or "lifetime" in never.subject or never.subject.startswith("ref")
    for remedy in answer.remedies:
        joined, _, _ = _apply(remedy, audiences, {}, plans.NOW_MS / 1000)
        assert reference.matching_rule(ruleset.offers[offer_id], joined, {}, plans.NOW_MS / 1000) is not None
        for change in remedy.changes:
            if isinstance(change, WaitUntil):
                assert change.at_ms > plans.NOW_MS


_CAP_PERIODS = ("1h", "24h", "168h", "day", "week", "lifetime")


@st.composite
def _waiting_offers(draw: st.DrawFn) -> tuple[Ruleset, dict[str, Times]]:
    """An offer with up to three caps (often on one counter), perhaps a suppression and a schedule ending or
    starting within days; its counters within the last 8 days; a lower offer always eligible."""
    caps = [
        f"{{max: {draw(st.integers(1, 3))}, period: {draw(st.sampled_from(_CAP_PERIODS))}, "
        f"counts: {draw(st.sampled_from(['decision', 'impression']))}}}"
        for _ in range(draw(st.integers(1, 3)))
    ]
    schedule: dict[str, int] = {}
    for edge in ("start", "end"):
        if draw(st.booleans()):
            schedule[edge] = NOW_MS + draw(st.integers(-HOUR if edge == "end" else 0, 8 * DAY))
    if schedule.get("start", 0) >= schedule.get("end", NOW_MS + 9 * DAY):
        del schedule["start"]
    edges = ", ".join(f'{edge}: "{utc_iso(at / 1000)}"' for edge, at in schedule.items())
    eligibility = f"eligibility: {{schedule: {{{edges}}}}}, " if schedule else ""
    suppress = ", suppress: {after_dismissals: 1, for: 2d}" if draw(st.booleans()) else ""
    ruleset = rules(f"""
  - {{id: target, placements: [banner], priority: 2, {eligibility}caps: [{", ".join(caps)}]{suppress}}}
  - {{id: generic, placements: [banner], priority: 1}}
""")  # fmt: skip
    counters: dict[str, Times] = {}
    for counted in ("decision", "impression", "dismiss"):
        times = draw(st.lists(st.integers(NOW_MS - 8 * DAY, NOW_MS), max_size=4))
        if times:
            counters[f"o|target|{counted}"] = tuple(sorted(times))
    return ruleset, counters


def _target_at(ruleset: Ruleset, counters: Mapping[str, Times], now_ms: int) -> Outcome:
    """Target's outcome in a decision at ``now_ms`` with these counters (nothing else counted meanwhile)."""
    request = DecisionRequest("p1", "web", (PlacementRequest("banner"),), {}, "r", True)
    eligible = reference.eligible(ruleset, frozenset(), {}, now_ms / 1000)
    plan = build_plan(ruleset, eligible, request, now_ms=now_ms, controls=DeliveryControls.build(ruleset),
                      counters=counters, why=Why(frozenset(), now_ms / 1000))  # fmt: skip
    return next(v.outcome for v in verdicts(plan, fill(plan, counters), ruleset) if v.offer_id == "target")


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=_waiting_offers())
def test_after_the_waits_advised_the_offer_wins_and_not_a_moment_before(
    case: tuple[Ruleset, dict[str, Times]],
) -> None:
    """Every wait, applied (the clock moved to the latest, the counters as they will be then: the same, nothing
    counted meanwhile), makes the offer win, and a millisecond earlier it does not; a way closed by the end of
    the schedule is closed: up to the schedule's last moment, the offer never wins."""
    ruleset, counters = case
    answer = one(ruleset, "target", counters=counters)
    if answer.shown:
        return
    for remedy in answer.remedies:
        waits = [c.at_ms for c in remedy.changes if isinstance(c, WaitUntil)]
        assert all(isinstance(c, WaitUntil) for c in remedy.changes), remedy
        at = max(waits, default=NOW_MS)
        assert _target_at(ruleset, counters, at) is Outcome.SELECTED, remedy
        if at > NOW_MS:
            assert _target_at(ruleset, counters, at - 1) is not Outcome.SELECTED, remedy
    for never in answer.never:
        if never.outcome is Outcome.OUTSIDE_SCHEDULE and never.after is not None:
            assert never.at_ms is not None and never.after.at_ms >= never.at_ms
            assert _target_at(ruleset, counters, never.at_ms - 1) is not Outcome.SELECTED, never
    if not answer.remedies:  # closed: never wins, now or at the schedule's last moment
        end = ruleset.offers["target"].rules[0].schedule.end  # no schedule: a rule that matches always
        assert end is None or _target_at(ruleset, counters, max(NOW_MS, round(end * 1000) - 1)) is not Outcome.SELECTED


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(
    kind=st.sampled_from([PeriodKind.ROLLING, PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH, PeriodKind.LIFETIME]),
    seconds=st.sampled_from([3600, 86_400, 7 * 86_400]),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]),
    limit=st.integers(1, 4),
    back=st.lists(st.integers(0, 40 * DAY), min_size=1, max_size=6),
)
def test_a_cap_reopens_exactly_when_its_window_has_room(
    kind: PeriodKind, seconds: int, zone: str, limit: int, back: list[int]
) -> None:
    """``reopens_ms`` with the windows of ``window_start_ms``: room at that moment, none just before."""
    period = Period(kind, seconds if kind is PeriodKind.ROLLING else 0, zone)
    times = tuple(sorted(NOW_MS - b for b in back))
    held = sum(1 for t in times if t >= window_start_ms(period, NOW_MS))
    at = reopens_ms(period, limit, times, NOW_MS)
    if held < limit:
        assert at == NOW_MS
        return
    if kind is PeriodKind.LIFETIME:
        assert at is None
        return
    assert at is not None and at > NOW_MS
    assert sum(1 for t in times if t >= window_start_ms(period, at)) < limit
    assert sum(1 for t in times if t >= window_start_ms(period, at - 1)) >= limit


# -- end to end: a real server, the profile in a real Redis ----------------------------------------------------------

SERVED = """
version: why-not-1
profile_attributes: {tier: string}
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
offers:
  - {id: fb, placements: [banner], priority: -100, eligibility: {audiences: {all: [nobody]}}}
  - id: gold_cart
    placements: [banner]
    priority: 10
    eligibility:
      audiences: {all: [shoppers]}
      conditions: [{profile.tier: {in: [gold, platinum]}}, {context.cart_value: {gt: 100}}]
  - {id: generic, placements: [banner], priority: 1}
"""


async def test_a_profile_built_to_miss_by_one_condition(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = with_clock(await start_server(write_rules(SERVED), **PATIENT), Clock("2026-05-28T12:00:00+00:00"))
    await add_membership(server, "ann", "shoppers")
    await add_attributes(server, "ann", {"tier": ("string", "gold")})
    async with decision_stub(server.port) as stub:
        missed = await stub.Decide(
            decide_request("ann", context={"cart_value": 80}, why_not=["gold_cart", "generic"]), timeout=10
        )
        [answer, shown] = missed.why_not
        assert missed.propositions[0].items[0].offer_id == "generic" and missed.explanations
        assert (answer.offer_id, answer.placement_id, answer.shown) == ("gold_cart", "banner", False)
        assert answer.outcome == decision_pb2.EXPLANATION_OUTCOME_CONDITION_FALSE
        [remedy] = answer.remedies
        [change] = remedy.changes
        assert change.kind == decision_pb2.WHY_NOT_CHANGE_KIND_CONTEXT
        assert (change.attribute, list(change.requirements)) == ("cart_value", ["above 100"])
        assert (change.actual.number_value, change.value.number_value) == (80, 101)
        assert change.text == "context.cart_value above 100 (is 80): e.g. 101"
        assert "1. context.cart_value above 100 (is 80): e.g. 101" in answer.text
        assert shown.shown and not shown.remedies
        # The change applied: the offer wins.
        fixed = await stub.Decide(decide_request("ann", context={"cart_value": change.value.number_value}), timeout=10)
        assert fixed.propositions[0].items[0].offer_id == "gold_cart"
        # A profile attribute and an audience missing: both named, from what Redis holds.
        await add_attributes(server, "bob", {"tier": ("string", "silver")})
        bob = await stub.Decide(decide_request("bob", context={"cart_value": 150}, why_not=["gold_cart"]), timeout=10)
        texts = [c.text for c in bob.why_not[0].remedies[0].changes]
        assert texts == [
            "the profile joins audience 'shoppers'",
            'profile.tier one of ["gold", "platinum"] (is "silver"): e.g. "gold"',
        ]
        assert [c.kind for c in bob.why_not[0].remedies[0].changes] == [
            decision_pb2.WHY_NOT_CHANGE_KIND_JOIN_AUDIENCE,
            decision_pb2.WHY_NOT_CHANGE_KIND_PROFILE,
        ]


async def test_a_degraded_decision_says_the_profile_was_not_read(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    own_redis = EmbeddedRedis().start()
    server = await start_server(write_rules(SERVED), url=own_redis.url)
    own_redis.stop()
    async with decision_stub(server.port) as stub:
        response = await stub.Decide(decide_request("ann", why_not=["gold_cart"]), timeout=10)
    assert response.degraded
    [answer] = response.why_not
    assert answer.outcome == decision_pb2.EXPLANATION_OUTCOME_PROFILE_UNAVAILABLE and not answer.remedies
    assert list(answer.never) == ["the profile could not be read in time: ask again"]
