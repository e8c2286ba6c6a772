"""Condition trees (decision/rules/conditions.py): and / or / not over typed predicates, or located errors."""

from __future__ import annotations

import pytest

from decision.rules.conditions import MAX_CONDITION_DEPTH
from decision.rules.loader import parse
from decision.rules.types import AllOf, AnyOf, Condition, Not, Predicate


def read(conditions: str, attributes: str = "") -> tuple[Condition | None, list[str]]:
    document = f"""{attributes}
profile_attributes: {{tier: string}}
placements: [{{id: p, channels: [web], fallback: fb}}]
offers:
  - {{id: fb, placements: [p]}}
  - id: x
    placements: [p]
    eligibility:
      conditions: {conditions}
"""
    ruleset, problems = parse(document.encode(), "c.yaml")
    if ruleset is None:
        return None, [str(p) for p in problems]
    return ruleset.offers["x"].rules[0].condition, []


def shape(condition: Condition | None) -> object:
    """The tree without locations."""
    if isinstance(condition, Predicate):
        return (condition.attribute, condition.op.value, condition.operand)
    if isinstance(condition, AllOf | AnyOf):
        return (type(condition).__name__, [shape(c) for c in condition.children])
    if isinstance(condition, Not):
        return ("Not", shape(condition.child))
    return None


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ("{context.cart: {gt: 100}}", ("cart", "gt", 100.0)),
        ("[{context.a: {eq: 1}}, {context.b: {eq: x}}]", ("AllOf", [("a", "eq", 1.0), ("b", "eq", "x")])),
        ("{or: [{context.a: {eq: true}}, {not: {context.b: {in: [1, 2]}}}]}",
         ("AnyOf", [("a", "eq", True), ("Not", ("b", "in", (1.0, 2.0)))])),
        ("{context.a: {gt: 1, lt: 5}}", ("AllOf", [("a", "gt", 1.0), ("a", "lt", 5.0)])),  # several operators: all
        ("{context.a: {exists: false}}", ("Not", ("a", "exists", True))),
        ("{profile.tier: {eq: gold}}", ("profile.tier", "eq", "gold")),
        ("{context.day: {eq: 2026-01-01}}", ("day", "eq", "2026-01-01")),  # a YAML date: as the text written
    ],
)  # fmt: skip
def test_conditions_parse_to_their_tree(conditions: str, expected: object) -> None:
    condition, problems = read(conditions)
    assert problems == []
    assert shape(condition) == expected


@pytest.mark.parametrize(
    ("conditions", "attributes", "expected"),
    [
        ("{context.a: {gt: x}}", "", "conditions.context.a.gt: type mismatch: expected a number, got string 'x'"),
        ("{context.a: {starts_with: 1}}", "", "type mismatch: expected a string, got number 1.0"),
        ("{context.a: {eq: [1]}}", "", "type mismatch: expected a string, number or boolean, got a list"),
        ("{context.a: {eq: .inf}}", "", "numbers must be finite"),
        ("{context.a: {equals: 1}}", "", "unknown operator 'equals' (did you mean 'eq'?)"),
        ("{context.a: 1}", "", "must map an operator"),
        ("{contxt.a: {eq: 1}}", "", "unknown condition 'contxt.a'"),
        ("{context.a: {eq: 1}, context.b: {eq: 2}}", "", "a condition is a mapping with exactly one key"),
        ("{context.profile.x: {eq: 1}}", "", "context names starting with 'profile.' are reserved"),
        ("{profile.tierr: {eq: a}}", "", "unknown attribute profile.tierr (not declared under profile_attributes:)"),
        ("{context.cart: {eq: 1}}", "attributes: {cart_value: number}", "unknown attribute 'cart' (not declared"),
        ("{context.tier: {eq: a}}", "attributes: {cart: number}", "(did you mean 'profile.tier'?)"),
        ("{context.cart: {eq: x}}", "attributes: {cart: number}", "attribute is declared number, operand is string"),
        ("{context.tags: {eq: x}}", "attributes: {tags: list}", "a list attribute can only be tested with contains"),
        ("{context.n: {contains: x}}", "attributes: {n: number}", "contains needs a string or list attribute"),
        ("{context.a: {eq: 1, eq: 2}}", "", "duplicate"),
        ("{context.a b: {eq: 1}}", "", "invalid attribute name 'a b'"),
    ],
)
def test_mistakes_are_located(conditions: str, attributes: str, expected: str) -> None:
    condition, problems = read(conditions, attributes)
    assert condition is None
    assert any(p.startswith("c.yaml:") and expected in p for p in problems), problems


def test_nesting_is_bounded() -> None:
    deep = "{context.a: {eq: 1}}"
    for _ in range(MAX_CONDITION_DEPTH + 1):
        deep = f"{{not: {deep}}}"
    _, problems = read(deep)
    assert any(f"conditions nested deeper than {MAX_CONDITION_DEPTH} levels" in p for p in problems), problems
    ok, problems = read("{not: {not: {context.a: {eq: 1}}}}")
    assert problems == [] and shape(ok) == ("Not", ("Not", ("a", "eq", 1.0)))
