"""An offer's ``content:`` at load time (decision/rules/content.py): JSON once, placeholders parsed and checked."""

from __future__ import annotations

import pytest

from decision.rules.loader import parse
from decision.rules.templates import Escape, OnMissing
from decision.rules.types import Offer

HEAD = """attributes: {city: string}
profile_attributes: {first_name: string}
placements: [{id: p, channels: [web], fallback: fb}]
offers:
  - {id: fb, placements: [p]}
"""


def offer(fields: str) -> Offer:
    ruleset, problems = parse((HEAD + f"  - {{id: x, placements: [p], {fields}}}\n").encode(), "o.yaml")
    assert ruleset is not None, [str(p) for p in problems]
    return ruleset.offers["x"]


def problems(fields: str) -> list[str]:
    ruleset, found = parse((HEAD + f"  - {{id: x, placements: [p], {fields}}}\n").encode(), "o.yaml")
    assert ruleset is None
    return [str(p) for p in found]


def test_content_without_placeholders_is_served_as_written() -> None:
    plain = offer("content: {title: Hello, n: 2, tags: [a, b]}")
    assert plain.content_json == '{"title":"Hello","n":2,"tags":["a","b"]}'
    assert plain.template is None


def test_placeholders_become_a_template_with_the_offers_options() -> None:
    templated = offer("""content: {title: 'Hi {{profile.first_name | default: "you"}}', city: "{{context.city}}"}, """
                      "escape: html, on_missing: skip")  # fmt: skip
    assert templated.template is not None
    assert (templated.template.escape, templated.template.on_missing) == (Escape.HTML, OnMissing.SKIP)
    rendered = templated.template.render_json({"profile.first_name": "<Ann>", "city": "Lyon"})
    assert rendered == '{"title":"Hi &lt;Ann&gt;","city":"Lyon"}'
    assert templated.template.render_json({"profile.first_name": "Ann"}) is None  # city missing: skip


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("content: [1, 2]", "o.yaml:6: offers[x].content: must be a mapping, got a list"),
        ('content: {t: "{{context.town}}"}', "offers[x].content.t: template column 3: unknown attribute context.town"),
        ('content: {t: "{{profile.last_name}}"}', "unknown attribute profile.last_name (not declared under profile_"),
        ('content: {t: "{{context.city"}', "offers[x].content.t: template column"),
        ("escape: xml", "offers[x].escape: unknown value 'xml' (expected one of: "),
        ("on_missing: fail", "offers[x].on_missing: unknown value 'fail'"),
    ],
)
def test_mistakes_are_located(fields: str, expected: str) -> None:
    found = problems(fields)
    assert any(expected in p for p in found), found
