"""The verdict of an offer no rule matched (decision/core/ineligible.py): the first rule's failure, its outcome
named. Pure."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.ineligible import not_eligible, outcome_of
from decision.core.types import Outcome
from decision.rules import reference
from decision.rules.reference import AudienceMiss, ConditionFalse, OutsideSchedule, rule_failure
from decision.rules.types import Schedule
from tests.decision.rules.parsed import loaded
from tests.decision.rules.strategies import requests, ruleset_documents

KEY = (0, 0, 0.0, True, 0.0, 0)
RULES = """
placements: [{id: p, channels: [web], fallback: fb}]
offers:
  - {id: fb, placements: [p]}
  - id: two_ways
    placements: [p]
    eligibility:
      - {name: members, audiences: {all: [member]}}
      - {name: big_cart, conditions: [{context.cart: {gt: 100}}]}
"""


def test_the_first_rules_failure_is_the_verdict() -> None:
    offer = loaded(RULES).offers["two_ways"]
    verdict = not_eligible(offer, "p", KEY, frozenset(), {"cart": 5.0}, 0.0)
    assert (verdict.offer_id, verdict.placement_id, verdict.rule) == ("two_ways", "p", "members")
    assert (verdict.outcome, verdict.evidence) == (Outcome.NOT_IN_AUDIENCE, AudienceMiss(("member",)))
    assert verdict.rank_key == KEY


def test_an_offer_that_matches_has_no_failure_to_show() -> None:
    """Unreachable while the engine agrees with the reference: said plainly, without evidence."""
    offer = loaded(RULES).offers["two_ways"]
    verdict = not_eligible(offer, "p", KEY, frozenset({"member"}), {"cart": 200.0}, 0.0)
    assert (verdict.outcome, verdict.evidence) == (Outcome.CONDITION_FALSE, None)


def test_each_failure_names_its_outcome() -> None:
    assert outcome_of(OutsideSchedule(Schedule(end=1.0))) is Outcome.OUTSIDE_SCHEDULE
    assert outcome_of(AudienceMiss(("a",))) is Outcome.NOT_IN_AUDIENCE
    assert outcome_of(AudienceMiss(("a", "b"), "any")) is Outcome.NOT_IN_AUDIENCE
    assert outcome_of(AudienceMiss(("a",), "none")) is Outcome.IN_EXCLUDED_AUDIENCE
    offer = loaded(RULES).offers["two_ways"]
    condition = offer.rules[1].condition
    assert condition is not None
    assert outcome_of(ConditionFalse(condition)) is Outcome.CONDITION_FALSE


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "200")), deadline=None)
@given(document=ruleset_documents(), batch=st.lists(requests(), min_size=1, max_size=4))
def test_every_ineligible_offer_gets_its_first_rules_failure(
    document: str, batch: list[tuple[frozenset[str], dict[str, Any], float]]
) -> None:
    ruleset = loaded(document)
    for audiences, context, now in batch:
        eligible = reference.eligible(ruleset, audiences, context, now)
        for offer in ruleset.offers.values():
            if offer.id in eligible:
                continue
            verdict = not_eligible(offer, "p", KEY, audiences, context, now)
            failure = rule_failure(offer.rules[0], audiences, context, now)
            assert failure is not None  # no rule matches, the first one included
            assert (verdict.rule, verdict.evidence, verdict.outcome) == (
                offer.rules[0].name,
                failure,
                outcome_of(failure),
            )
