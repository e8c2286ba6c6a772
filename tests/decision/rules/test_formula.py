"""Score formulas: parsed into a tree (never eval), evaluated like plain arithmetic, errors with a column."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decision.rules.formula import FormulaError, parse_formula

CONTEXT = {"cart_value": 120.0, "zero": 0.0, "device": "ios", "member": True}
OFFER = {"margin": 12.5, "price": 40.0}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),  # left-associative
        ("16 / 4 / 2", 2.0),
        ("-2 * -3", 6.0),
        ("--2", 2.0),
        ("2 \u00d7 3 \u00f7 4 \u2212 1", 0.5),
        ("min(context.cart_value, 100) / 10", 10.0),
        ("max(offer.margin, 1, offer.price)", 40.0),
        ("offer.margin * 2 + (context.cart_value >= 100)", 26.0),
        ("(1 < 2) + (2 <= 2) + (3 > 4) + (4 >= 5) + (1 == 1) + (1 != 1)", 3.0),
        ("1e3 + .5 + 2.", 1002.5),
    ],
)
def test_values(text: str, value: float) -> None:
    assert parse_formula(text).evaluate(CONTEXT, OFFER) == value


@pytest.mark.parametrize(
    "text",
    [
        "context.missing + 1",  # absent
        "context.device * 2",  # a string is not a number
        "context.member + 1",  # nor is a bool
        "offer.stock",  # an offer without that attribute
        "1 / context.zero",  # division by zero
        "1e308 * 10",  # overflow
        "(1e308 * 10 - 1e308 * 10) < 1",  # nan never turns into a comparison result
    ],
)
def test_undefined_scores(text: str) -> None:
    assert parse_formula(text).evaluate(CONTEXT, OFFER) is None


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        ("1 +", 4, "expected a number, a reference or '(', found the end of the formula"),
        (
            "margin * 2",
            1,
            "unknown name 'margin': expected context.<attribute>, offer.<attribute>, profile.<attribute>",
        ),
        ("__import__('os')", 12, 'unexpected character "\'"'),  # no strings, no calls but min and max
        ("__import__(1)", 1, "unknown name '__import__'"),
        ("offer.price ** 2", 14, "expected a number, a reference or '(', found '*'"),
        ("1 < 2 < 3", 7, "comparisons do not chain; use parentheses"),
        ("min()", 5, "expected a number, a reference or '(', found ')'"),
        ("(1 + 2", 7, "expected ')', found the end of the formula"),
        ("context.a; 1", 10, "unexpected character ';'"),
        ("1 2", 3, "unexpected '2'"),
        ("", 1, "the formula is empty"),
        ("1e999", 1, "number 1e999 is too large"),
        ("-" * 40 + "1", 35, "nested deeper than 32 levels"),
    ],
)
def test_errors_name_the_column(text: str, column: int, reason: str) -> None:
    with pytest.raises(FormulaError) as error:
        parse_formula(text)
    assert error.value.column == column
    assert error.value.reason.startswith(reason)


def test_references_are_collected() -> None:
    formula = parse_formula("offer.margin * min(context.cart_value, context.page.depth)")
    assert formula.context_refs == {"cart_value", "page.depth"}
    assert formula.offer_refs == {"margin"}


# -- property: the parsed tree computes what the same arithmetic computes in Python -----------------
NAMES = ["a", "b", "c"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Any]:
    """(formula text, a function of the values computing the same thing, None when undefined)."""
    if depth > 3 or draw(st.booleans()):
        if draw(st.booleans()):
            number = draw(st.sampled_from([0.0, 1.0, 2.5, 10.0, 0.1, 3.0]))
            return repr(number), lambda v, n=number: n
        scope, name = draw(st.sampled_from([("context", "a"), ("context", "b"), ("offer", "c")]))
        return f"{scope}.{name}", lambda v, key=name: v.get(key)
    kind = draw(st.sampled_from(["+", "-", "*", "/", "<", ">=", "==", "min", "max", "neg"]))
    left_text, left = draw(expressions(depth + 1))
    if kind == "neg":
        return f"-({left_text})", lambda v: None if left(v) is None else -left(v)
    right_text, right = draw(expressions(depth + 1))

    def combine(v: dict[str, float]) -> float | None:
        x, y = left(v), right(v)
        if x is None or y is None:
            return None
        result: float
        if kind == "+":
            result = x + y
        elif kind == "-":
            result = x - y
        elif kind == "*":
            result = x * y
        elif kind == "/":
            if y == 0:
                return None
            result = x / y
        elif kind == "min":
            result = min(x, y)
        elif kind == "max":
            result = max(x, y)
        else:
            result = float({"<": x < y, ">=": x >= y, "==": x == y}[kind])
        return result if math.isfinite(result) else None

    if kind in ("min", "max"):
        return f"{kind}({left_text}, {right_text})", combine
    if kind in ("<", ">=", "=="):
        return f"(({left_text}) {kind} ({right_text}))", combine
    return f"({left_text}) {kind} ({right_text})", combine


values = st.dictionaries(
    st.sampled_from(NAMES), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), max_size=3
)


@given(expressions(), values)
def test_the_tree_computes_what_python_computes(expression: tuple[str, Any], given_values: dict[str, float]) -> None:
    text, expected = expression
    context = {k: v for k, v in given_values.items() if k != "c"}
    offer = {k: v for k, v in given_values.items() if k == "c"}
    assert parse_formula(text).evaluate(context, offer) == expected(given_values)
