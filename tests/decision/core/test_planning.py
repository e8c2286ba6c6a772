"""Planning (pure): ranking by priority, score and file order; caps and policies in the fill; no Redis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from decision.core.controls import DeliveryControls
from decision.core.planning import build_plan, fill, render
from decision.core.types import DecisionRequest, PlacementRequest
from decision.rules.loader import parse
from decision.rules.types import Ruleset

RULES = b"""
attributes: {boost: number}
placements:
  - {id: a, channels: [web], max_items: 6, fallback: fa, score: "offer.margin + context.boost * (offer.margin > 10)"}
offers:
  - {id: fa, placements: [a], priority: -1}
  - {id: low, placements: [a], priority: 1, attributes: {margin: 50}}
  - {id: m5, placements: [a], priority: 5, attributes: {margin: 5}}
  - {id: m20, placements: [a], priority: 5, attributes: {margin: 20}}
  - {id: unscored, placements: [a], priority: 5}
  - {id: m20b, placements: [a], priority: 5, attributes: {margin: 20}}
  - {id: top, placements: [a], priority: 9, attributes: {margin: 0}}
"""


def ruleset() -> Ruleset:
    parsed, problems = parse(RULES, "t.yaml")
    assert parsed is not None, problems
    return parsed


def request(boost: float | None = None) -> DecisionRequest:
    context = {} if boost is None else {"boost": boost}
    return DecisionRequest("p", "web", (PlacementRequest("a"),), context, "r", False)


@given(st.permutations(["low", "m5", "m20", "unscored", "m20b", "top"]), st.sampled_from([None, 0.0, -100.0]))
def test_priority_then_score_then_file_order_whatever_the_eligible_order(order: list[str], boost: float | None) -> None:
    rules = ruleset()
    plan = build_plan(rules, dict.fromkeys(order, "r"), request(boost), now_ms=0)
    decision = render(plan, fill(plan, {}), rules, request(boost), decision_id="d")
    ranked = [(i.offer_id, i.score) for i in decision.propositions[0].items]
    if boost is None:  # the formula reads context.boost: undefined for every offer, file order decides
        assert [o for o, _ in ranked] == ["top", "m5", "m20", "unscored", "m20b", "low"]
        assert all(score == 0.0 for _, score in ranked)
    elif boost == 0.0:
        assert ranked == [("top", 0.0), ("m20", 20.0), ("m20b", 20.0), ("m5", 5.0), ("unscored", 0.0), ("low", 50.0)]
    else:  # margins over 10 lose 100: m20 scores -80, below m5
        assert [o for o, _ in ranked] == ["top", "m5", "m20", "m20b", "unscored", "low"]


def test_caps_and_policies_limit_the_fill() -> None:
    rules, _ = parse(
        b"""
placements: [{id: a, channels: [web], max_items: 5, fallback: fa}]
offers:
  - {id: fa, placements: [a], priority: -1}
  - {id: one, placements: [a], priority: 3, caps: [{max: 1, period: day}]}
  - {id: two, placements: [a], priority: 2}
  - {id: three, placements: [a], priority: 1}
contact_policies: [{id: web, channels: [web], max: 2, period: 24h}]
""",
        "t.yaml",
    )
    assert rules is not None
    controls = DeliveryControls.build(rules)
    now = 1_780_000_000_000
    eligible = dict.fromkeys(["one", "two", "three"], "r")
    plan = build_plan(rules, eligible, request(), now_ms=now, controls=controls, counters={})
    assert [plan.slots[0].candidates[i].key for i in fill(plan, {})[0]] == ["one", "two"]  # the policy allows 2
    # With one message already sent today and `one` proposed an hour ago: `one` is capped, one message left.
    counters = {"p|web": (now - 3_600_000,), "o|one|decision": (now - 3_600_000,)}
    plan = build_plan(rules, eligible, request(), now_ms=now, controls=controls, counters=counters)
    assert plan.excluded == {"one": "capped: 1 decision per profile (day in UTC)"}
    assert [plan.slots[0].candidates[i].key for i in fill(plan, counters)[0]] == ["two"]
