"""The field names of the rule language are stated once; the schema refuses to drift from them."""

from __future__ import annotations

import pytest

from decision.rules import fields
from decision.rules.fields import Fields
from decision.rules.loader import parse
from decision.rules.schema import _object, rules_schema


def test_required_fields_must_be_allowed() -> None:
    with pytest.raises(ValueError, match="not all among"):
        Fields(("id",), ("id", "max"))


def test_the_schema_refuses_a_field_the_loader_does_not_know_and_one_it_misses() -> None:
    with pytest.raises(ValueError, match="do not match"):
        _object(Fields(("id",)), {"id": {}, "extra": {}})
    with pytest.raises(ValueError, match="do not match"):
        _object(Fields(("id", "max")), {"id": {}})


def test_the_schema_states_the_same_names_in_the_same_order() -> None:
    defs = rules_schema()["$defs"]
    assert list(defs["placement"]["properties"]) == list(fields.PLACEMENT.names)
    assert defs["placement"]["required"] == list(fields.PLACEMENT.required_names)
    assert list(defs["offer_experiment"]["properties"]["variants"]["items"]["properties"]) == list(
        fields.OFFER_VARIANT.names
    )
    assert defs["named_rule"]["required"] == list(fields.NAMED_RULE.required_names)


def test_the_loader_names_the_allowed_fields_in_its_error() -> None:
    text = b"placements: [{id: p, channels: [web], fallback: o, colour: red}]\noffers: [{id: o, placements: [p]}]\n"
    _, problems = parse(text, "t.yaml")
    expected = ", ".join(sorted(fields.PLACEMENT.allowed))
    assert any("placements[0].colour" in str(p) and expected in str(p) for p in problems), problems
