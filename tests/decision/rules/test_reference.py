"""The reference semantics (decision/rules/reference.py): typed operators, schedules, and why a rule fails.

The compiled engine is held to ``reference.eligible`` by test_compiler.py and test_engine.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.rules import reference
from decision.rules.loader import parse
from decision.rules.reference import (
    AudienceMiss,
    ConditionFalse,
    OutsideSchedule,
    audience_miss,
    condition_holds,
    false_part,
    rule_failure,
    rule_matches,
)
from decision.rules.types import (
    AllOf,
    AnyOf,
    AudienceRule,
    Condition,
    ContextValue,
    Location,
    Not,
    Op,
    Predicate,
    Ruleset,
    Scalar,
    Schedule,
)
from tests.decision.rules.strategies import requests, ruleset_documents

HERE = Location("t.yaml", 1)


def holds(op: Op, value: ContextValue | None, operand: Scalar | tuple[Scalar, ...]) -> bool:
    context = {} if value is None else {"a": value}
    return condition_holds(Predicate("a", op, operand, HERE), context)


@pytest.mark.parametrize(
    ("op", "value", "operand", "expected"),
    [
        (Op.EQ, "1", 1.0, False),  # no coercion between types
        (Op.EQ, True, 1.0, False),
        (Op.EQ, 1.0, 1.0, True),
        (Op.EQ, -0.0, 0.0, True),
        (Op.NE, "a", "b", True),
        (Op.NE, 1.0, "b", False),  # another type is not "different": the predicate is false
        (Op.NE, None, "b", False),  # absent: false
        (Op.IN, "b", ("a", "b"), True),
        (Op.NOT_IN, "c", ("a", "b"), True),
        (Op.NOT_IN, None, ("a", "b"), False),
        (Op.LT, 1.0, 2.0, True),
        (Op.LE, 2.0, 2.0, True),
        (Op.GT, "3", 2.0, False),
        (Op.GE, 2.0, 2.0, True),
        (Op.CONTAINS, "Mozilla/5.0", "lla", True),
        (Op.CONTAINS, ("x", "y"), "y", True),
        (Op.CONTAINS, ("x", 1.0), "1", False),
        (Op.STARTS_WITH, "checkout/pay", "checkout", True),
        (Op.STARTS_WITH, 1.0, "1", False),
        (Op.EXISTS, False, True, True),
        (Op.EXISTS, None, True, False),
    ],
)
def test_operators_are_typed(op: Op, value: ContextValue | None, operand: Scalar, expected: bool) -> None:
    assert holds(op, value, operand) is expected


def test_a_schedule_includes_its_start_and_excludes_its_end() -> None:
    schedule = Schedule(10.0, 20.0)
    assert [schedule.contains(t) for t in (9.999, 10.0, 19.999, 20.0)] == [False, True, True, False]


def test_the_audience_part_that_fails() -> None:
    rule = AudienceRule(all=("a", "b"), any=("c", "d"), none=("x",))
    assert audience_miss(rule, {"a"}) == AudienceMiss(("b",))
    assert audience_miss(rule, {"a", "b"}) == AudienceMiss(("c", "d"), "any")
    assert audience_miss(rule, {"a", "b", "d", "x"}) == AudienceMiss(("x",), "none")
    assert audience_miss(rule, {"a", "b", "d"}) is None


def test_the_false_part_is_the_smallest_that_makes_it_false() -> None:
    x, y = Predicate("x", Op.GT, 1.0, HERE), Predicate("y", Op.EQ, "a", HERE)
    assert false_part(AllOf((x, AnyOf((y,)))), {"x": 2.0}) == y  # a one-branch `or` is its branch
    assert false_part(AllOf((x, y)), {"y": "a"}) == x
    either = AnyOf((x, y))
    assert false_part(either, {}) == either  # every branch false: the `or` itself
    assert false_part(Not(x), {"x": 2.0}) == Not(x)


def _parts(condition: Condition) -> list[Condition]:
    found = [condition]
    if isinstance(condition, AllOf | AnyOf):
        for child in condition.children:
            found += _parts(child)
    elif isinstance(condition, Not):
        found += _parts(condition.child)
    return found


def _ruleset(document: str) -> Ruleset:
    ruleset, problems = parse(document.encode(), "random.yaml")
    assert ruleset is not None, problems
    return ruleset


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(document=ruleset_documents(), batch=st.lists(requests(), min_size=1, max_size=4))
def test_a_rules_failure_is_the_first_check_that_fails(
    document: str, batch: list[tuple[frozenset[str], dict[str, Any], float]]
) -> None:
    """Schedule, then audiences, then condition: the failure names the first that fails, and only a rule
    without one matches."""
    ruleset = _ruleset(document)
    for audiences, context, now in batch:
        for offer in ruleset.offers.values():
            for rule in offer.rules:
                failure = rule_failure(rule, audiences, context, now)
                scheduled = rule.schedule.contains(now)
                in_audiences = (
                    all(a in audiences for a in rule.audiences.all)
                    and not any(a in audiences for a in rule.audiences.none)
                    and (not rule.audiences.any or any(a in audiences for a in rule.audiences.any))
                )
                condition = rule.condition
                true = condition is None or condition_holds(condition, context)
                assert (
                    (failure is None)
                    is (scheduled and in_audiences and true)
                    is rule_matches(rule, audiences, context, now)
                )
                if not scheduled:
                    assert failure == OutsideSchedule(rule.schedule)
                elif not in_audiences:
                    assert isinstance(failure, AudienceMiss)
                    if failure.part == "none":
                        assert failure.audiences[0] in rule.audiences.none and failure.audiences[0] in audiences
                    else:
                        assert not any(a in audiences for a in failure.audiences)
                elif not true:
                    assert isinstance(failure, ConditionFalse) and condition is not None
                    assert not condition_holds(failure.condition, context)
                    assert failure.condition in _parts(condition)
                    if isinstance(failure.condition, Predicate):
                        assert failure.actual == context.get(failure.condition.attribute)
        eligible = reference.eligible(ruleset, audiences, context, now)
        assert list(eligible) == [o.id for o in ruleset.offers.values() if o.id in eligible]  # file order
        for offer_id, name in eligible.items():
            assert name == reference.matching_rule(ruleset.offers[offer_id], audiences, context, now)
