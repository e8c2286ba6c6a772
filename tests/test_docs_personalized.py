"""docs/personalization.md's "In short" example: it is examples/personalized/rules.yaml, the loader and the
JSON Schema accept it, and it decides what the page says it does."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from decision.core.planning import decide
from decision.core.requests import check_request, with_profile
from decision.core.types import DecisionRequest, PlacementRequest
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.schema import rules_schema
from decision.rules.types import Context, ContextValue

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "personalized" / "rules.yaml"
PAGE = ROOT / "docs" / "personalization.md"
HEADING = "## In short"


def page_example() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    match = re.search(r"^```yaml\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert match is not None, "the section has a yaml block"
    return match.group(1)


def test_the_page_example_is_the_example_file() -> None:
    assert yaml.safe_load(page_example()) == yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def test_the_example_validates() -> None:
    ruleset, problems = parse(EXAMPLE.read_bytes(), str(EXAMPLE))
    assert ruleset is not None, problems
    jsonschema.Draft202012Validator(rules_schema()).validate(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("attributes", "context", "offer", "title"),
    [
        (
            {"tier": "gold", "first_name": "Ana", "stores": ("lyon", "paris"), "ltv": 800.0},
            {"city": "Lyon"},
            "gold-lyon",
            "Hi Ana, 10 % off in Lyon today",
        ),
        ({"tier": "gold", "stores": ("lyon",)}, {"city": "Lyon"}, "gold-lyon", "Hi there, 10 % off in Lyon today"),
        # escape: html escapes the inserted values, not the author's text
        (
            {"tier": "platinum", "first_name": "<b>Al</b>", "stores": ("lyon",)},
            {"city": "L&M"},
            "gold-lyon",
            "Hi &lt;b&gt;Al&lt;/b&gt;, 10 % off in L&amp;M today",
        ),
        # on_missing: skip — no city and no default: the fallback greets instead
        ({"tier": "gold", "first_name": "Ana", "stores": ("lyon",)}, {}, "hello", "Hello Ana"),
        ({"tier": "silver", "first_name": "Ana", "stores": ("lyon",)}, {"city": "Lyon"}, "hello", "Hello Ana"),
        ({}, {"city": "Lyon"}, "hello", "Hello you"),
    ],
)
def test_the_example_decides_as_the_page_says(
    attributes: dict[str, ContextValue], context: Context, offer: str, title: str
) -> None:
    ruleset, problems = parse(EXAMPLE.read_bytes(), str(EXAMPLE))
    assert ruleset is not None, problems
    compiled = compile_and_load(ruleset)
    request = DecisionRequest("p1", "web", (PlacementRequest("home-hero"),), context)
    check_request(ruleset, request)
    request = with_profile(ruleset, request, attributes)
    eligible = compiled.eligible(frozenset(), request.context, 0.0)
    decision = decide(ruleset, eligible, request, decision_id="d", now_ms=0)
    (item,) = decision.propositions[0].items
    assert (item.offer_id, orjson.loads(item.content_json)) == (offer, {"title": title})
