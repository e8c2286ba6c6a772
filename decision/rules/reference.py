"""A plain-Python evaluation of the rule language, the meaning the compiler must preserve.

The durable_rules compilation (``compiler``/``engine``) is what serves
requests; this module states the same semantics directly, and the
property-based tests hold the two equal. It also serves where a decision must
be explained rather than only made: ``rule_failure`` says why a rule does not
match (what an explanation's evidence shows), and matching is its absence.

Semantics, in one place:

* every operator but ``exists`` is false when the attribute is absent or its
  type differs from the operand's (strings, numbers, booleans and lists are
  distinct types; ``"1"`` is not ``1`` and ``true`` is not ``1``);
* ``not_in`` is true when the attribute is present and equals none of the
  operands;
* ``contains`` is a substring test on a string attribute and an item test on a
  list attribute;
* a schedule includes its start and excludes its end.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from decision.rules.types import (
    AllOf,
    AnyOf,
    AudienceRule,
    Condition,
    Context,
    ContextValue,
    EligibilityRule,
    Not,
    Offer,
    Op,
    Predicate,
    Ruleset,
    Scalar,
    Schedule,
)


def same(value: ContextValue, operand: Scalar) -> bool:
    """Typed equality: equal values of the same type (bool is not a number)."""
    if isinstance(operand, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(operand, bool) and value is operand
    if isinstance(operand, str):
        return isinstance(value, str) and value == operand
    return isinstance(value, float) and value == operand


def _number(value: ContextValue | None) -> float | None:
    return value if isinstance(value, float) else None


def _ordered(test: Callable[[float, float], bool]) -> Callable[[ContextValue | None, object], bool]:
    def check(value: ContextValue | None, operand: object) -> bool:
        number = _number(value)
        return number is not None and isinstance(operand, float) and test(number, operand)

    return check


def _eq(value: ContextValue | None, operand: object) -> bool:
    return value is not None and isinstance(operand, str | float | bool) and same(value, operand)


def _ne(value: ContextValue | None, operand: object) -> bool:
    if value is None or not isinstance(operand, str | float | bool):
        return False
    return type(value) is type(operand) and not same(value, operand)


def _in(value: ContextValue | None, operand: object) -> bool:
    return value is not None and isinstance(operand, tuple) and any(same(value, o) for o in operand)


def _not_in(value: ContextValue | None, operand: object) -> bool:
    return value is not None and isinstance(operand, tuple) and not any(same(value, o) for o in operand)


def _contains(value: ContextValue | None, operand: object) -> bool:
    if isinstance(value, str):
        return isinstance(operand, str) and operand in value
    if isinstance(value, tuple):
        return isinstance(operand, str | float | bool) and any(same(item, operand) for item in value)
    return False


def _starts_with(value: ContextValue | None, operand: object) -> bool:
    return isinstance(value, str) and isinstance(operand, str) and value.startswith(operand)


OPERATORS: dict[Op, Callable[[ContextValue | None, object], bool]] = {
    Op.EQ: _eq,
    Op.NE: _ne,
    Op.IN: _in,
    Op.NOT_IN: _not_in,
    Op.LT: _ordered(lambda a, b: a < b),
    Op.LE: _ordered(lambda a, b: a <= b),
    Op.GT: _ordered(lambda a, b: a > b),
    Op.GE: _ordered(lambda a, b: a >= b),
    Op.EXISTS: lambda value, _: value is not None,
    Op.CONTAINS: _contains,
    Op.STARTS_WITH: _starts_with,
}


def predicate_holds(predicate: Predicate, context: Context) -> bool:
    return OPERATORS[predicate.op](context.get(predicate.attribute), predicate.operand)


def condition_holds(condition: Condition, context: Context) -> bool:
    if isinstance(condition, Predicate):
        return predicate_holds(condition, context)
    if isinstance(condition, AllOf):
        return all(condition_holds(c, context) for c in condition.children)
    if isinstance(condition, AnyOf):
        return any(condition_holds(c, context) for c in condition.children)
    assert isinstance(condition, Not)
    return not condition_holds(condition.child, context)


@dataclass(frozen=True, slots=True)
class OutsideSchedule:
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class AudienceMiss:
    """The part of the audience rule that fails: ``all`` (``audiences``: the missing one), ``any`` (the ones
    the profile is in none of), ``none`` (the excluded one it is in)."""

    audiences: tuple[str, ...]
    part: Literal["all", "any", "none"] = "all"


@dataclass(frozen=True, slots=True)
class ConditionFalse:
    """The smallest false part of the rule's condition; for a predicate, its attribute (``profile.<name>``
    for a profile's) and the value the decision saw (None: absent)."""

    condition: Condition
    attribute: str = ""
    actual: ContextValue | None = None


# Why a rule does not match: the first thing that fails, in the order a marketer checks.
RuleFailure = OutsideSchedule | AudienceMiss | ConditionFalse


def audience_miss(rule: AudienceRule, audiences: AbstractSet[str]) -> AudienceMiss | None:
    """The first part of ``rule`` the profile's audiences fail, or None when it holds."""
    missing = next((a for a in rule.all if a not in audiences), None)
    if missing is not None:
        return AudienceMiss((missing,))
    if rule.any and not any(a in audiences for a in rule.any):
        return AudienceMiss(rule.any, "any")
    excluded = next((a for a in rule.none if a in audiences), None)
    if excluded is not None:
        return AudienceMiss((excluded,), "none")
    return None


def false_part(condition: Condition, context: Context) -> Condition:
    """The smallest part of a false condition that makes it false: the first false term of an `and`."""
    if isinstance(condition, AllOf):
        first = next(child for child in condition.children if not condition_holds(child, context))
        return false_part(first, context)
    if isinstance(condition, AnyOf) and len(condition.children) == 1:
        return false_part(condition.children[0], context)
    return condition  # an `or` with every branch false, a `not` whose inside holds, a predicate


def rule_failure(
    rule: EligibilityRule, audiences: AbstractSet[str], context: Context, now: float
) -> RuleFailure | None:
    """Why ``rule`` does not match (schedule, then audiences, then condition), or None when it matches."""
    if not rule.schedule.contains(now):
        return OutsideSchedule(rule.schedule)
    miss = audience_miss(rule.audiences, audiences)
    if miss is not None:
        return miss
    if rule.condition is not None and not condition_holds(rule.condition, context):
        part = false_part(rule.condition, context)
        if isinstance(part, Predicate):
            return ConditionFalse(part, part.attribute, context.get(part.attribute))
        return ConditionFalse(part)
    return None


def rule_matches(rule: EligibilityRule, audiences: AbstractSet[str], context: Context, now: float) -> bool:
    return rule_failure(rule, audiences, context, now) is None


def matching_rule(offer: Offer, audiences: AbstractSet[str], context: Context, now: float) -> str | None:
    """Name of the first of the offer's rules that matches, or None."""
    for rule in offer.rules:
        if rule_matches(rule, audiences, context, now):
            return rule.name
    return None


def eligible(ruleset: Ruleset, audiences: AbstractSet[str], context: Context, now: float) -> dict[str, str]:
    """Offer id -> name of its first matching rule, for every eligible offer, in file order."""
    result: dict[str, str] = {}
    for offer in ruleset.offers.values():
        name = matching_rule(offer, audiences, context, now)
        if name is not None:
            result[offer.id] = name
    return result
