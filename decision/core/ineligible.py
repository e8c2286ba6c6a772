"""Why an offer's eligibility rule does not match: the verdict's evidence, in the reference semantics. Pure.

The compiled engine decides eligibility; it is held equal to the reference
evaluator (decision.rules.reference) by property tests, so the reason a rule
failed is found with the reference semantics — and only when someone asks why.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from decision.core.types import Outcome
from decision.core.verdicts import AudienceMiss, ConditionFalse, OutsideSchedule, RankKey, Verdict
from decision.rules.reference import condition_holds
from decision.rules.types import AllOf, AnyOf, Condition, Context, EligibilityRule, Offer, Predicate


def false_part(c: Condition, context: Context) -> Condition:
    """The smallest part of a false condition that makes it false: the first false term of an `and`."""
    if isinstance(c, AllOf):
        return false_part(next(child for child in c.children if not condition_holds(child, context)), context)
    if isinstance(c, AnyOf) and len(c.children) == 1:
        return false_part(c.children[0], context)
    return c  # an `or` with every branch false, a `not` whose inside holds, a predicate


def rule_failure(
    rule: EligibilityRule, audiences: AbstractSet[str], context: Context, now: float
) -> tuple[Outcome, OutsideSchedule | AudienceMiss | ConditionFalse] | None:
    """Why ``rule`` does not match, in the order a marketer checks: schedule, audiences, conditions."""
    if not rule.schedule.contains(now):
        return Outcome.OUTSIDE_SCHEDULE, OutsideSchedule(rule.schedule)
    missing = next((a for a in rule.audiences.all if a not in audiences), None)
    if missing is not None:
        return Outcome.NOT_IN_AUDIENCE, AudienceMiss((missing,))
    if rule.audiences.any and not any(a in audiences for a in rule.audiences.any):
        return Outcome.NOT_IN_AUDIENCE, AudienceMiss(tuple(rule.audiences.any), any=True)
    excluded = next((a for a in rule.audiences.none if a in audiences), None)
    if excluded is not None:
        return Outcome.IN_EXCLUDED_AUDIENCE, AudienceMiss((excluded,))
    if rule.condition is not None and not condition_holds(rule.condition, context):
        part = false_part(rule.condition, context)
        if isinstance(part, Predicate):
            return Outcome.CONDITION_FALSE, ConditionFalse(part, part.attribute, context.get(part.attribute))
        return Outcome.CONDITION_FALSE, ConditionFalse(part)
    return None


def not_eligible(
    offer: Offer, placement_id: str, key: RankKey, audiences: AbstractSet[str], context: Context, now: float
) -> Verdict:
    """The verdict of an offer none of whose rules matched: the first rule's failure (with one rule, the only one)."""
    for rule in offer.rules:
        failure = rule_failure(rule, audiences, context, now)
        if failure is not None:
            return Verdict(offer.id, placement_id, failure[0], key, failure[1], rule.name)
    # unreachable while the engine agrees with the reference (the property test)
    return Verdict(offer.id, placement_id, Outcome.CONDITION_FALSE, key)
