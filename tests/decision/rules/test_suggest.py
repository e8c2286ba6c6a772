"""'Did you mean' hints, and one error per problem (no cascade from a placement that has its own error)."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from decision.rules.errors import Severity
from decision.rules.loader import parse
from decision.rules.suggest import did_you_mean

names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)


@given(name=names, known=st.sets(names, max_size=8))
def test_a_hint_names_only_a_known_name(name: str, known: set[str]) -> None:
    hint = did_you_mean(name, known)
    assert hint == "" or any(hint == f" (did you mean {k!r}?)" for k in known)


@given(name=st.text(alphabet=string.ascii_lowercase, min_size=5, max_size=12), index=st.integers(0, 11))
def test_one_letter_dropped_is_suggested(name: str, index: int) -> None:
    typo = name[: index % len(name)] + name[index % len(name) + 1 :]
    assert did_you_mean(typo, [name]) == f" (did you mean {name!r}?)"


def test_unrelated_names_get_no_hint() -> None:
    assert did_you_mean("checkout", ["home_banner", "app_inbox"]) == ""


RULES = b"""
version: v1
attributes: {cart_value: number}
placements:
  - {id: all, channels: [web]}
  - {id: home, channels: [web], fallback: welcom}
offers:
  - {id: welcome, placements: [all, home]}
  - {id: a, placements: [all, hom]}
  - id: b
    placements: [all]
    eligibility: {conditions: [{context.cart_valu: {gt: 1}}, {context.cart_value: {gte: 2}}]}
  - {id: c, placements: [all], eligibility: {audiences: {any: [vip]}, schedul: {}}}
contact_policies:
  - {id: daily, placements: [all, hom], max: 3, period: day}
"""


def test_each_problem_is_one_error_with_a_hint() -> None:
    ruleset, problems = parse(RULES, "r.yaml")
    assert ruleset is None
    lines = [f"{p.location.line}: {p.field}: {p.reason}" for p in problems if p.severity is Severity.ERROR]
    assert sorted(lines) == sorted(
        [
            # the missing fallback, and nothing about the offers that list placement 'all'
            "5: placements[0].fallback: required field is missing",
            "6: placements[home].fallback: fallback offer 'welcom' does not exist (did you mean 'welcome'?)",
            "9: offers[a].placements[1]: unknown placement 'hom' (did you mean 'home'?)",
            "12: offers[b].eligibility.conditions[0].context.cart_valu: unknown attribute 'cart_valu' "
            "(not declared under attributes:) (did you mean 'cart_value'?)",
            "12: offers[b].eligibility.conditions[1].context.cart_value.gte: unknown operator 'gte' "
            "(did you mean 'ge'?) (expected one of: eq, ne, in, not_in, lt, le, gt, ge, exists, contains, "
            "starts_with)",
            "13: offers[c].eligibility.schedul: unknown field (did you mean 'schedule'?) "
            "(expected one of: audiences, conditions, name, schedule)",
            "15: contact_policies[daily].placements[1]: unknown placement 'hom' (did you mean 'home'?)",
        ]
    )


def test_an_audience_missing_from_the_registry_gets_a_hint() -> None:
    from decision.rules.lint import lint

    ruleset, _ = parse(
        b"""
version: v1
placements: [{id: home, channels: [web], fallback: fb}]
offers:
  - {id: fb, placements: [home]}
  - {id: vip, placements: [home], eligibility: {audiences: {any: [vip-customer]}}}
""",
        "r.yaml",
    )
    assert ruleset is not None
    reasons = [p.reason for p in lint(ruleset, now=0.0, known_audiences={"vip-customers", "loyalty-gold"})]
    assert any(
        "'vip-customer' is not in the audience registry" in r and "(did you mean 'vip-customers'?)" in r
        for r in reasons
    ), reasons
