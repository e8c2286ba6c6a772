"""Filling placements without counters (the degraded path, simulate): pure functions, no Redis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from decision.core.planning import decide
from decision.core.types import DecisionRequest, PlacementRequest
from decision.rules.loader import parse
from decision.rules.types import Ruleset

RULES = b"""
placements:
  - {id: a, channels: [web], max_items: 3, fallback: fa}
  - {id: b, channels: [web], max_items: 3, fallback: fb}
offers:
  - {id: fa, placements: [a]}
  - {id: fb, placements: [b]}
  - {id: o1, placements: [a, b], priority: 5}
  - {id: o2, placements: [a, b], priority: 9}
  - {id: o3, placements: [a, b], priority: 5}
  - {id: o4, placements: [b], priority: 1}
"""


def ruleset(extra: bytes = b"") -> Ruleset:
    parsed, problems = parse(extra + RULES, "t.yaml")
    assert parsed is not None, problems
    return parsed


def request(*placements: str, max_items: int = 0) -> DecisionRequest:
    return DecisionRequest("p", "web", tuple(PlacementRequest(p, max_items) for p in placements), {}, "", False)


def chosen(decision: object) -> list[list[str]]:
    return [[i.offer_id for i in p.items] for p in decision.propositions]  # type: ignore[attr-defined]


def test_requested_order_takes_first_pick_and_never_repeats() -> None:
    rules = ruleset()
    eligible = {o: "r" for o in ("o1", "o2", "o3", "o4")}
    assert chosen(decide(rules, eligible, request("a", "b"), decision_id="d", now_ms=0)) == [
        ["o2", "o1", "o3"],
        ["o4"],
    ]
    assert chosen(decide(rules, eligible, request("b", "a"), decision_id="d", now_ms=0)) == [
        ["o2", "o1", "o3"],
        ["fa"],
    ]


def test_duplicates_when_the_ruleset_allows_them() -> None:
    rules = ruleset(b"settings: {allow_duplicate_propositions: true}\n")
    eligible = {"o1": "r", "o2": "r"}
    decision = decide(rules, eligible, request("a", "b", max_items=1), decision_id="d", now_ms=0)
    assert chosen(decision) == [["o2"], ["o2"]]


def test_unreadable_profile_gives_fallbacks_and_degraded() -> None:
    decision = decide(ruleset(), None, request("a", "b"), decision_id="d", now_ms=0)
    assert chosen(decision) == [["fa"], ["fb"]]
    assert decision.degraded
    assert all(p.fallback and p.items[0].fallback for p in decision.propositions)


@given(st.sets(st.sampled_from(["o1", "o2", "o3", "o4"])), st.integers(0, 3))
def test_every_placement_gets_between_one_and_max_items(eligible: set[str], max_items: int) -> None:
    decision = decide(
        ruleset(), dict.fromkeys(eligible, "r"), request("a", "b", max_items=max_items), decision_id="d", now_ms=0
    )
    for proposition in decision.propositions:
        assert 1 <= len(proposition.items) <= (max_items or 3)
    served = [i.offer_id for p in decision.propositions if not p.fallback for i in p.items]
    assert len(served) == len(set(served))
    assert set(served) <= eligible
