"""Verdicts (decision/core/verdicts.py): the one rank order, and evidence that agrees with its outcome. Pure."""

from __future__ import annotations

import functools
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.controls import CapReached, DeliveryControls, PolicyReached, Suppressed, TotalReached
from decision.core.learning import Draw
from decision.core.planning import Why, build_plan, fill, verdicts
from decision.core.totals import TotalsView
from decision.core.types import DecisionRequest, Outcome, PlacementRequest
from decision.core.verdicts import (
    BeatenBy,
    ContentValueMissing,
    Elsewhere,
    HeldOut,
    InPlaceOf,
    RefusedOnCount,
    Shown,
    rank_key,
)
from decision.rules import reference
from decision.rules.reference import AudienceMiss, ConditionFalse, OutsideSchedule
from decision.rules.types import Location, Offer
from tests.decision.core import plans
from tests.decision.rules.parsed import loaded

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "200"))
HERE = Location("t.yaml", 1)


def offer(position: int, priority: int) -> Offer:
    return Offer(f"o{position}", ("p",), priority, {}, "{}", (), position, HERE)


# An offer as ranked: its priority, its score (None: unscored) and its draw (None: no draw, i.e. exploring).
Ranked = tuple[Offer, float | None, float | None]


def _before(a: Ranked, b: Ranked) -> int:
    """The order the rule language states, written out comparison by comparison: -1 when ``a`` ranks first."""
    (offer_a, score_a, draw_a), (offer_b, score_b, draw_b) = a, b
    if offer_a.priority != offer_b.priority:
        return -1 if offer_a.priority > offer_b.priority else 1
    if (draw_a is None) != (draw_b is None):  # offers still being explored first
        return -1 if draw_a is None else 1
    if draw_a is not None and draw_b is not None and draw_a != draw_b:
        return -1 if draw_a > draw_b else 1
    if (score_a is None) != (score_b is None):  # scored before unscored
        return -1 if score_b is None else 1
    if score_a is not None and score_b is not None and score_a != score_b:
        return -1 if score_a > score_b else 1
    return -1 if offer_a.position < offer_b.position else 1  # then file order


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-2, 2),
            st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 2.0, 7.25])),
            st.one_of(st.none(), st.sampled_from([0.1, 0.5, 0.9])),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_rank_key_orders_as_stated(drawn: list[tuple[int, float | None, float | None]]) -> None:
    ranked: list[Ranked] = [(offer(n, priority), score, value) for n, (priority, score, value) in enumerate(drawn)]

    def key(entry: Ranked) -> Any:
        found, score, value = entry
        return rank_key(found, score, None if value is None else Draw(1, 10, value))

    assert [r[0].id for r in sorted(ranked, key=key)] == [
        r[0].id for r in sorted(ranked, key=functools.cmp_to_key(_before))
    ]
    assert len({key(r) for r in ranked}) == len(ranked)  # a total order: file positions are unique


def test_without_a_draw_the_learned_part_is_neutral() -> None:
    assert rank_key(offer(0, 1)) == rank_key(offer(0, 1), None, Draw(0, 5, None))
    assert rank_key(offer(0, 1), 3.0) == (-1, 0, 0.0, False, -3.0, 0)


# What each outcome's evidence is (None: said without evidence).
EVIDENCE: dict[Outcome, tuple[type, ...]] = {
    Outcome.SELECTED: (Shown,),
    Outcome.FALLBACK: (InPlaceOf, type(None)),
    Outcome.PROFILE_UNAVAILABLE: (type(None),),
    Outcome.OUTSIDE_SCHEDULE: (OutsideSchedule,),
    Outcome.NOT_IN_AUDIENCE: (AudienceMiss,),
    Outcome.IN_EXCLUDED_AUDIENCE: (AudienceMiss,),
    Outcome.CONDITION_FALSE: (ConditionFalse,),
    Outcome.HOLDOUT: (HeldOut,),
    Outcome.CAPPED: (CapReached, RefusedOnCount),
    Outcome.SUPPRESSED: (Suppressed,),
    Outcome.TOTAL_CAP_REACHED: (TotalReached,),
    Outcome.CONTACT_POLICY: (PolicyReached,),
    Outcome.PROPOSED_ELSEWHERE: (Elsewhere,),
    Outcome.LOST_RANKING: (BeatenBy,),
    Outcome.CONTENT_MISSING: (ContentValueMissing,),
}


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data(), document=plans.documents())
def test_every_verdict_agrees_with_its_evidence_and_the_counts(data: st.DataObject, document: str) -> None:
    """A capped, suppressed, total-capped or policy-blocked verdict names a count at its limit, read from the
    counters the plan was made from; verdicts of a placement come in rank order."""
    rules = loaded(document)
    controls = DeliveryControls.build(rules)
    counters = data.draw(plans.counters(plans.counter_fields(document)))
    audiences = frozenset(data.draw(st.sets(st.sampled_from(plans.audiences_of(document)))))
    now = plans.NOW_MS / 1000
    eligible = reference.eligible(rules, audiences, {}, now)  # as the engine finds them (held equal)
    totals = TotalsView(counts={(o, "decision", "lifetime"): data.draw(st.integers(0, 3)) for o in rules.offers})
    wanted = tuple(PlacementRequest(p) for p in data.draw(st.permutations(plans.PLACEMENTS)))
    asked = DecisionRequest(data.draw(st.sampled_from(plans.PROFILES)), "web", wanted, {}, "r", True)
    plan = build_plan(rules, eligible, asked, now_ms=plans.NOW_MS, controls=controls, counters=counters,
                      totals=totals, why=Why(audiences, now))  # fmt: skip
    found = verdicts(plan, fill(plan, counters), rules)
    for verdict in found:
        evidence = verdict.evidence
        assert isinstance(evidence, EVIDENCE[verdict.outcome]), verdict
        if isinstance(evidence, CapReached):
            assert evidence.count >= evidence.cap.max
        elif isinstance(evidence, PolicyReached):
            assert evidence.count >= evidence.policy.max
        elif isinstance(evidence, TotalReached):
            assert evidence.count >= evidence.check.limit
            assert totals.counts.get((verdict.offer_id, "decision", "lifetime"), 0) == evidence.count
        elif isinstance(evidence, Suppressed):
            assert evidence.count >= evidence.suppression.dismissals
        elif isinstance(evidence, Shown):
            assert 1 <= evidence.position <= evidence.of
    for placement in plans.PLACEMENTS:
        keys = [v.rank_key for v in found if v.placement_id == placement]
        assert keys == sorted(keys)
