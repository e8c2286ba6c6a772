"""Hypothesis strategies for random rulesets (as YAML documents) and random requests.

Values come from small pools shared by rules and requests so that equalities,
prefixes and boundaries are hit often; the pools include the values that a
loose engine would confuse ("1" vs 1 vs true, -0.0 vs 0, escapes, unicode).
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

from decision.rules.types import Op

AUDIENCES = ["vip", "gold", "churned", "cart-abandoners", "3f2a1c9e-0b7d-4e8f-9a61-2b5c7d8e9f01", "a.b:c"]
ATTRIBUTES = ["cart_value", "device", "tags", "is_member", "page.path", "x"]
STRINGS = [
    "",
    "a",
    "A",
    "ab",
    "abc",
    "1",
    "1.0",
    "true",
    "ios",
    "Mozilla/5.0",
    'a"b',
    "a\\b",
    "%",
    ".*",
    "é",
    "été",
    "日本",
    "🎉x",
    "a b",
    "a\tb",
    "null",
]
NUMBERS = [0.0, -0.0, 1.0, -1.0, 1.5, 0.1, 100.0, 99.99, 1e10, -1e-7, 9007199254740993.0, 1e300]
EPOCHS = [1_700_000_000.0, 1_700_000_000.5, 1_750_000_000.0, 1_800_000_000.0]

scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans())
numbers = st.one_of(st.sampled_from(NUMBERS), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
attribute = st.sampled_from(ATTRIBUTES)


OPERANDS: dict[Op, st.SearchStrategy[Any]] = {
    **dict.fromkeys((Op.LT, Op.LE, Op.GT, Op.GE), numbers),
    Op.STARTS_WITH: st.one_of(st.sampled_from(STRINGS), st.text(max_size=4)),
    **dict.fromkeys((Op.IN, Op.NOT_IN), st.lists(scalars, min_size=1, max_size=4, unique_by=lambda v: (type(v), v))),
    Op.EXISTS: st.booleans(),
    **dict.fromkeys((Op.EQ, Op.NE, Op.CONTAINS), scalars),
}


@st.composite
def context_predicates(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(list(Op)))
    return {f"context.{draw(attribute)}": {op.value: draw(OPERANDS[op])}}


# Profile attributes: always declared (``profile_attributes:``), so operands follow the declared type.
strings = st.sampled_from(STRINGS)
timestamps = st.sampled_from(EPOCHS)
PROFILE_TYPES: dict[str, tuple[str, dict[Op, st.SearchStrategy[Any]]]] = {
    "tier": ("string", {op: strings for op in (Op.EQ, Op.NE, Op.STARTS_WITH, Op.CONTAINS)} | {
        op: st.lists(strings, min_size=1, max_size=3, unique=True) for op in (Op.IN, Op.NOT_IN)}),
    "ltv": ("number", {op: numbers for op in (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE)} | {
        op: st.lists(numbers, min_size=1, max_size=3, unique=True) for op in (Op.IN, Op.NOT_IN)}),
    "seen": ("timestamp", {op: timestamps for op in (Op.LT, Op.GE, Op.EQ)}),
    "vip": ("bool", {Op.EQ: st.booleans(), Op.NE: st.booleans()}),
    "stores": ("list", {Op.CONTAINS: strings}),
}  # fmt: skip
PROFILE_DECLARATIONS = {name: type_name for name, (type_name, _) in PROFILE_TYPES.items()}


@st.composite
def profile_predicates(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(PROFILE_TYPES)))
    operands = PROFILE_TYPES[name][1]
    op = draw(st.sampled_from([*operands, Op.EXISTS]))
    operand = draw(st.booleans() if op is Op.EXISTS else operands[op])
    return {f"profile.{name}": {op.value: operand}}


def predicates() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(context_predicates(), context_predicates(), profile_predicates())


def conditions(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    return st.recursive(
        predicates(),
        lambda children: st.one_of(
            st.builds(lambda c: {"and": c}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda c: {"or": c}, st.lists(children, min_size=1, max_size=3)),
            st.builds(lambda c: {"not": c}, children),
        ),
        max_leaves=max_leaves,
    )


CONDITIONS = conditions(6)
CONDITION_LISTS = st.lists(conditions(3), min_size=1, max_size=3)


@st.composite
def audience_rules(draw: st.DrawFn) -> dict[str, list[str]]:
    chosen = draw(st.lists(st.sampled_from(AUDIENCES), unique=True, max_size=5))
    rule: dict[str, list[str]] = {}
    for audience in chosen:  # an audience may not be both required and excluded
        rule.setdefault(draw(st.sampled_from(["all", "any", "none"])), []).append(audience)
    return rule


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    zone = timezone(timedelta(hours=1)) if int(epoch) % 2 else UTC
    return datetime.fromtimestamp(epoch, zone).isoformat()


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, str]:
    start, end = sorted(draw(st.lists(st.sampled_from(EPOCHS), min_size=2, max_size=2, unique=True)))
    which = draw(st.sampled_from(["start", "end", "both"]))
    schedule = {}
    if which in ("start", "both"):
        schedule["start"] = _iso(start)
    if which in ("end", "both"):
        schedule["end"] = _iso(end)
    return schedule


@st.composite
def eligibility_rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["audiences"] = draw(audience_rules())
    if draw(st.booleans()):
        rule["conditions"] = draw(st.one_of(CONDITIONS, CONDITION_LISTS))
    if draw(st.integers(0, 3)) == 0:
        rule["schedule"] = draw(schedules())
    return rule


PLACEMENTS = ("p", "q", "r")


@st.composite
def ruleset_documents(draw: st.DrawFn, max_offers: int = 8) -> str:
    """A valid ruleset as YAML text."""
    # Three placements; each offer in one to three of them (engines are built per placement).
    offers: list[dict[str, Any]] = [{"id": "fallback", "placements": list(PLACEMENTS)}]
    for index in range(draw(st.integers(1, max_offers))):
        placements = draw(st.lists(st.sampled_from(PLACEMENTS), min_size=1, max_size=3, unique=True))
        offer: dict[str, Any] = {"id": f"o{index}", "placements": placements, "priority": draw(st.integers(-3, 3))}
        if draw(st.booleans()):
            rules = draw(st.lists(eligibility_rules(), min_size=1, max_size=3))
            offer["eligibility"] = [{"name": f"rule{i}", **r} for i, r in enumerate(rules)]
        else:
            offer["eligibility"] = draw(eligibility_rules())
        offers.append(offer)
    document = {
        "profile_attributes": PROFILE_DECLARATIONS,
        "placements": [{"id": p, "channels": ["web"], "max_items": 3, "fallback": "fallback"} for p in PLACEMENTS],
        "offers": offers,
    }
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


context_values = st.one_of(
    st.sampled_from(STRINGS),
    st.text(max_size=6),
    numbers,
    st.booleans(),
    st.lists(scalars, max_size=4).map(tuple),
)


PROFILE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": strings,
    "number": numbers,
    "timestamp": st.one_of(timestamps, timestamps.map(lambda e: e + 0.5)),
    "bool": st.booleans(),
    "list": st.lists(strings, max_size=3).map(tuple),
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[frozenset[str], dict[str, Any], float]:
    audiences = frozenset(draw(st.lists(st.sampled_from(AUDIENCES), unique=True, max_size=6)))
    context = draw(st.dictionaries(attribute, context_values, max_size=6))
    # The profile's attributes as the rules see them (decision.core.requests.with_profile): mostly of
    # the declared type, sometimes not (Redis may hold another type than a later ruleset declares).
    for name, (type_name, _) in PROFILE_TYPES.items():
        value = draw(st.one_of(st.none(), PROFILE_VALUES[type_name], PROFILE_VALUES[type_name], context_values))
        if value is not None:
            context[f"profile.{name}"] = value
    now = draw(st.one_of(st.sampled_from(EPOCHS), st.sampled_from(EPOCHS).map(lambda e: e - 0.001)))
    return audiences, context, now
