"""Planning (pure): ranking by priority, score and file order; caps and policies in the fill; no Redis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.controls import CapReached, DeliveryControls
from decision.core.experiments import assign
from decision.core.planning import Plan, Selection, Why, build_plan, decide, fill, render
from decision.core.totals import TotalsView
from decision.core.types import DecisionRequest, Outcome, PlacementRequest
from decision.rules.loader import parse
from decision.rules.types import Ruleset
from tests.decision.core import plans

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

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
    # Planning records why: its verdict, with the cap and the count it found (core.explain words it).
    [verdict] = plan.slots[0].ruled_out
    assert (verdict.offer_id, verdict.outcome) == ("one", Outcome.CAPPED)
    assert verdict.evidence == CapReached(rules.offers["one"].caps[0], 1)
    assert [plan.slots[0].candidates[i].key for i in fill(plan, counters)[0]] == ["two"]


def _loaded(document: str) -> Ruleset:
    parsed, problems = parse(document.encode(), "t.yaml")
    assert parsed is not None, problems
    return parsed


def _keys(plan: Plan, selection: Selection) -> list[list[str]]:
    return [[slot.candidates[i].key for i in taken] for slot, taken in zip(plan.slots, selection, strict=True)]


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(data=st.data(), document=plans.documents())
def test_lazy_and_full_plans_choose_alike(data: st.DataObject, document: str) -> None:
    """Planning without explain stops early; on any counters the fill takes what the full plan's fill takes."""
    rules = _loaded(document)
    controls = DeliveryControls.build(rules)
    fields = plans.counter_fields(document)
    read = data.draw(plans.counters(fields), "read")
    live = {name: tuple(sorted(read.get(name, ()) + more)) for name, more in data.draw(plans.counters(fields)).items()}
    live = {**read, **live}  # counters only grow between the read and the reservation
    eligible = dict.fromkeys(data.draw(st.sets(st.sampled_from(sorted(rules.offers)))), "r")
    totals = TotalsView(counts={(o, "decision", "lifetime"): data.draw(st.integers(0, 3)) for o in rules.offers})
    placements = data.draw(st.permutations(plans.PLACEMENTS))
    max_items = data.draw(st.integers(0, 3))
    wanted = tuple(PlacementRequest(p, max_items) for p in placements)
    asked = DecisionRequest(data.draw(st.sampled_from(plans.PROFILES)), "web", wanted, {}, "r", True)
    common: dict[str, Any] = {"now_ms": plans.NOW_MS, "controls": controls, "counters": read, "totals": totals}
    lazy = build_plan(rules, eligible, asked, **common)
    full = build_plan(rules, eligible, asked, **common, why=Why(frozenset(), plans.NOW_MS / 1000))
    for counters in (read, live):
        lazy_choice, full_choice = fill(lazy, counters), fill(full, counters)
        assert _keys(lazy, lazy_choice) == _keys(full, full_choice)
        assert lazy.fields_of(lazy_choice) == full.fields_of(full_choice)
        assert lazy.totals_of(lazy_choice) == full.totals_of(full_choice)
        for keys in _keys(full, full_choice):
            assert len(keys) == len(set(keys))  # never one offer twice in a placement
    for slot, other in zip(lazy.slots, full.slots, strict=True):
        assert [c.key for c in slot.candidates] == [c.key for c in other.candidates][: len(slot.candidates)]
    # With explain: one verdict per offer of each requested placement, offers by rank.
    decision = render(full, fill(full, read), rules, asked, decision_id="d")
    by_placement: dict[str, list[str]] = {}
    for explanation in decision.explanations:
        by_placement.setdefault(explanation.placement_id, []).append(explanation.offer_id)
    assert list(by_placement) == list(placements)
    for placement_id, explained in by_placement.items():
        assert sorted(explained) == sorted(o.id for o in rules.offers_for(placement_id))
    for proposition in decision.propositions:
        shown = [item.offer_id for item in proposition.items]
        assert len(shown) == len(set(shown))
        tokens = [item.tracking_token for item in proposition.items]
        assert len(tokens) == len(set(tokens))
        explained_shown = {
            e.offer_id
            for e in decision.explanations
            if e.placement_id == proposition.placement_id and e.outcome in (Outcome.SELECTED, Outcome.FALLBACK)
        }
        assert explained_shown == set(shown)


def test_a_holdout_stand_in_shows_the_fallback_once() -> None:
    """The retail example: p-1007 is in the holdout of vip_early_access, whose holdout serves app_tips."""
    rules = _loaded((EXAMPLES / "retail" / "rules.yaml").read_text())
    experiment = rules.offers["vip_early_access"].experiment
    assert experiment is not None and assign(experiment, "p-1007") is None
    eligible = {"vip_early_access": "vip_or_gold", "app_tips": "", "app_exclusive_drop": ""}
    asked = DecisionRequest("p-1007", "mobile", (PlacementRequest("app_inbox"),), {}, "r", True)
    now = 1_780_000_000.0
    why = Why(frozenset({"vip-customers"}), now)
    decision = decide(rules, eligible, asked, decision_id="d", now_ms=int(now * 1000), why=why)
    items = decision.propositions[0].items
    assert [(i.offer_id, i.variant) for i in items] == [("app_tips", "holdout"), ("app_exclusive_drop", "")]
    said = {e.offer_id: e for e in decision.explanations}
    assert (said["vip_early_access"].outcome, said["vip_early_access"].experiment_id) == (
        Outcome.HOLDOUT,
        "vip-headline-2026-11",
    )
    assert said["app_tips"].outcome is Outcome.FALLBACK
    assert "in place of 'vip_early_access'" in said["app_tips"].reason
    assert said["app_exclusive_drop"].reason == "selected (rank 2 of 2)"
