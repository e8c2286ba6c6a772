"""``profile_attributes:`` in the rules language: declared, typed, checked with file:line, evaluated."""

from __future__ import annotations

import orjson
import pytest

from decision.core.planning import decide
from decision.core.types import DecisionRequest, PlacementRequest
from decision.rules import reference
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.templates import Escape, OnMissing
from decision.rules.types import ProfileAttrType, Ruleset
from inbound_common.codecs import ATTRIBUTE_TAGS

HEAD = """\
profile_attributes: {tier: string, ltv: number, vip: bool, seen: timestamp, stores: list, first_name: string}
attributes: {city: string}
placements:
  - {id: p, channels: [web], fallback: fb}
offers:
  - {id: fb, placements: [p]}
"""


def errors(offers_yaml: str, head: str = HEAD) -> list[str]:
    ruleset, problems = parse((head + offers_yaml).encode(), "r.yaml")
    assert ruleset is None
    return [str(p) for p in problems]


def load(offers_yaml: str) -> Ruleset:
    ruleset, problems = parse((HEAD + offers_yaml).encode(), "r.yaml")
    assert ruleset is not None, problems
    return ruleset


def test_the_rules_and_the_store_agree_on_types() -> None:
    assert {t.value for t in ProfileAttrType} == set(ATTRIBUTE_TAGS)


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        (
            "  - {id: o, placements: [p], eligibility: {conditions: {profile.points: {gt: 1}}}}",
            "r.yaml:7: offers[o].eligibility.conditions.profile.points: unknown attribute profile.points "
            "(not declared under profile_attributes:)",
        ),
        (
            "  - {id: o, placements: [p], eligibility: {conditions: {profile.tier: {gt: 1}}}}",
            "r.yaml:7: offers[o].eligibility.conditions.profile.tier.gt: type mismatch: attribute is declared "
            "string, operand is number 1.0",
        ),
        (
            "  - {id: o, placements: [p], eligibility: {conditions: {profile.ltv: {in: [gold]}}}}",
            "r.yaml:7: offers[o].eligibility.conditions.profile.ltv.in[0]: type mismatch: attribute is declared "
            "number, operand is string 'gold'",
        ),
        (
            "  - {id: o, placements: [p], eligibility: {conditions: {profile.vip: {contains: x}}}}",
            "r.yaml:7: offers[o].eligibility.conditions.profile.vip.contains: type mismatch: contains needs a "
            "string or list attribute, profile.vip is declared bool",
        ),
        (
            "  - {id: o, placements: [p], eligibility: {conditions: {context.profile.tier: {eq: gold}}}}",
            "r.yaml:7: offers[o].eligibility.conditions.context.profile.tier: context names starting with "
            "'profile.' are reserved",
        ),
        (
            '  - {id: o, placements: [p], content: {t: "Hi {{profile.name}}"}}',
            "r.yaml:7: offers[o].content.t: template column 6: unknown attribute profile.name (not declared under "
            "profile_attributes:)",
        ),
        (
            '  - {id: o, placements: [p], content: {t: "In {{context.town}}"}}',
            "r.yaml:7: offers[o].content.t: template column 6: unknown attribute context.town (not declared under "
            "attributes:)",
        ),
        (
            '  - {id: o, placements: [p], content: {t: ["a", "Hi {{profile.first_name"]}}',
            "r.yaml:7: offers[o].content.t[1]: template column 24: '{{' is never closed by '}}'",
        ),
        (
            "  - {id: o, placements: [p], escape: xml}",
            "r.yaml:7: offers[o].escape: unknown value 'xml' (expected one of: none, html)",
        ),
    ],
)
def test_mistakes_are_located(offer: str, expected: str) -> None:
    assert expected in errors(offer + "\n")


@pytest.mark.parametrize(
    ("condition", "hint"),
    [
        ("{profile.teir: {eq: gold}}", "unknown attribute profile.teir (not declared under profile_attributes:) "
         "(did you mean 'profile.tier'?)"),
        ("{profle.tier: {eq: gold}}", "(did you mean 'profile.tier'?)"),  # a misspelt scope
        ("{context.tier: {eq: gold}}", "unknown attribute 'tier' (not declared under attributes:) "
         "(did you mean 'profile.tier'?)"),  # a profile attribute read from the context
        ("{context.cty: {eq: Lyon}}", "(did you mean 'city'?)"),
    ],
)  # fmt: skip
def test_did_you_mean_covers_profile_attributes(condition: str, hint: str) -> None:
    found = errors(f"  - {{id: o, placements: [p], eligibility: {{conditions: [{condition}]}}}}\n")
    assert any(hint in e for e in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Hi {{profile.frist_name | default: "you"}}',
         "template column 6: unknown attribute profile.frist_name (not declared under profile_attributes:) "
         "(did you mean 'profile.first_name'?)"),
        ("{{profile.tier}} in {{context.cty}}",
         "template column 23: unknown attribute context.cty (not declared under attributes:) "
         "(did you mean 'context.city'?)"),
        ("In {{contxt.city}}",
         "template column 6: expected profile.<name>, context.<name> or a \"string\", found 'contxt.city' "
         "(did you mean 'context.city'?)"),
        ("Hi {{profle.tier}}",
         "template column 6: expected profile.<name>, context.<name> or a \"string\", found 'profle.tier' "
         "(did you mean 'profile.tier'?)"),
    ],
)  # fmt: skip
def test_a_misspelt_placeholder_gets_its_column_and_did_you_mean(text: str, expected: str) -> None:
    offer = f"  - {{id: o, placements: [p], content: {{t: {orjson.dumps(text).decode()}}}}}\n"
    assert f"r.yaml:7: offers[o].content.t: {expected}" in errors(offer)


def test_declarations_are_checked() -> None:
    head = HEAD.replace("first_name: string}", "first_name: text, 'bad-name': string}")
    found = errors("", head)
    assert (
        "r.yaml:1: profile_attributes.first_name: unknown type 'text' (expected one of: string, number, bool, "
        "timestamp, list)" in found
    )
    assert any(e.startswith("r.yaml:1: profile_attributes: invalid attribute name 'bad-name'") for e in found), found
    reserved = errors("", "attributes: {profile.tier: string}\n" + HEAD.split("\n", 2)[2])
    assert "r.yaml:1: attributes.profile.tier: names starting with 'profile.' are reserved" in reserved


def test_formulas_read_declared_numbers() -> None:
    head = HEAD.replace("fallback: fb}", 'fallback: fb, score: "profile.ltv + profile.seen / 1e9"}')
    ruleset, problems = parse(head.encode(), "r.yaml")
    assert ruleset is not None, problems
    score = ruleset.placements["p"].score
    assert score is not None and score.profile_refs == {"ltv", "seen"}
    assert score.evaluate({"profile.ltv": 10.0, "profile.seen": 2e9}, {}) == 12.0
    assert score.evaluate({"ltv": 10.0, "profile.seen": 2e9}, {}) is None  # the request's ltv is not the profile's
    mistyped = errors("", HEAD.replace("fallback: fb}", 'fallback: fb, score: "profile.tier * 2"}'))
    assert "r.yaml:4: placements[p].score: profile.tier is declared string; a formula reads numbers only" in mistyped


def test_engine_and_reference_see_profile_attributes_as_the_context_does() -> None:
    ruleset = load(
        """\
  - id: gold
    placements: [p]
    escape: html
    on_missing: skip
    content: {t: "Hi {{profile.first_name}}"}
    eligibility:
      conditions: [{profile.tier: {in: [gold, platinum]}}, {not: {profile.stores: {contains: paris}}}]
"""
    )
    compiled = compile_and_load(ruleset)
    for tier, stores, expected in [("gold", ("lyon",), True), ("gold", ("paris",), False), ("silver", (), False)]:
        context = {"profile.tier": tier, "profile.stores": stores}
        assert ("gold" in compiled.eligible(frozenset(), context, 0.0)) is expected
        assert ("gold" in reference.eligible(ruleset, frozenset(), context, 0.0)) is expected
    template = ruleset.offers["gold"].template
    assert template is not None and (template.escape, template.on_missing) == (Escape.HTML, OnMissing.SKIP)
    assert ruleset.offers["fb"].template is None  # no placeholder: its content_json is served as it is


def test_an_offer_variants_content_is_personalized_with_the_offers_options() -> None:
    ruleset = load(
        """\
  - id: promo
    placements: [p]
    escape: html
    content: {t: "A {{profile.first_name}}"}
    experiment:
      id: e1
      variants:
        - {id: b, weight: 1, content: {t: 'B {{profile.first_name | default: "you"}}'}}
"""
    )
    variant = ruleset.offers["promo"].experiment.variants[0]  # type: ignore[union-attr]
    assert variant.template is not None and variant.template.escape is Escape.HTML
    for context, title in [({"profile.first_name": "<i>Ana</i>"}, "B &lt;i&gt;Ana&lt;/i&gt;"), ({}, "B you")]:
        request = DecisionRequest("p1", "web", (PlacementRequest("p"),), context)
        decision = decide(ruleset, {"promo": "promo"}, request, decision_id="d", now_ms=0)
        assert orjson.loads(decision.propositions[0].items[0].content_json) == {"t": title}
