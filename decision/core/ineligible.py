"""The verdict of an offer none of whose eligibility rules matched. Pure.

The compiled engine decides eligibility; it is held equal to the reference
evaluator (decision.rules.reference) by property tests, so why a rule failed
is the reference's ``rule_failure`` — asked only when someone asks why. This
module only names its outcome.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from decision.core.types import Outcome
from decision.core.verdicts import RankKey, Verdict
from decision.rules.reference import AudienceMiss, OutsideSchedule, RuleFailure, rule_failure
from decision.rules.types import Context, Offer

_OF_AUDIENCE_PART = {
    "all": Outcome.NOT_IN_AUDIENCE,
    "any": Outcome.NOT_IN_AUDIENCE,
    "none": Outcome.IN_EXCLUDED_AUDIENCE,
}


def outcome_of(failure: RuleFailure) -> Outcome:
    if isinstance(failure, OutsideSchedule):
        return Outcome.OUTSIDE_SCHEDULE
    if isinstance(failure, AudienceMiss):
        return _OF_AUDIENCE_PART[failure.part]
    return Outcome.CONDITION_FALSE


def not_eligible(
    offer: Offer, placement_id: str, key: RankKey, audiences: AbstractSet[str], context: Context, now: float
) -> Verdict:
    """The verdict of an offer none of whose rules matched: the first rule's failure (with one rule, the only one)."""
    for rule in offer.rules:
        failure = rule_failure(rule, audiences, context, now)
        if failure is not None:
            return Verdict(offer.id, placement_id, outcome_of(failure), key, failure, rule.name)
    # unreachable while the engine agrees with the reference (the property test)
    return Verdict(offer.id, placement_id, Outcome.CONDITION_FALSE, key)
