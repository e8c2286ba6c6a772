"""The catalog sections (decision/rules/catalog.py): attribute declarations, placements and offers."""

from __future__ import annotations

import pytest

from decision.rules.catalog import MAX_ITEMS_LIMIT
from decision.rules.types import AttrType, ProfileAttrType
from tests.decision.rules.parsed import loaded, problems

HEAD = "placements: [{id: p, channels: [web, app], fallback: fb}]\noffers:\n  - {id: fb, placements: [p]}\n"


def test_sections_are_read_in_order_and_keep_file_order() -> None:
    ruleset = loaded(
        "attributes: {cart: number, tags: list}\nprofile_attributes: {tier: string, since: timestamp}\n"
        "placements:\n  - {id: p, channels: [web], max_items: 3, fallback: fb, description: home}\n"
        "  - {id: q, channels: [app], fallback: fb}\n"
        "offers:\n  - {id: b, placements: [p], priority: 2}\n  - {id: fb, placements: [p, q]}\n"
        "  - {id: a, placements: [q]}\n"
    )  # fmt: skip
    assert ruleset.attributes == {"cart": AttrType.NUMBER, "tags": AttrType.LIST}
    assert ruleset.profile_attributes == {"tier": ProfileAttrType.STRING, "since": ProfileAttrType.TIMESTAMP}
    assert list(ruleset.offers) == ["b", "fb", "a"]
    assert [o.position for o in ruleset.offers.values()] == [0, 1, 2]
    p = ruleset.placements["p"]
    assert (p.channels, p.max_items, p.fallback) == (frozenset({"web"}), 3, "fb")
    assert ruleset.placements["q"].max_items == 1  # the default
    assert [o.id for o in ruleset.offers_for("q")] == ["fb", "a"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("attributes: {cart: money}\n" + HEAD, "r.yaml:1: attributes.cart: unknown type 'money' (expected one of:"),
        ("attributes: [cart]\n" + HEAD, "attributes: must be a mapping of attribute name to type, got a list"),
        ("attributes: {profile.tier: string}\n" + HEAD, "attributes.profile.tier: names starting with 'profile.'"),
        ("profile_attributes: {tier: list_of_str}\n" + HEAD, "profile_attributes.tier: unknown type 'list_of_str'"),
        ("profile_attributes: {tier.x: string}\n" + HEAD, "profile_attributes: invalid attribute name"),
        (HEAD + "  - {id: fb, placements: [p]}\n", "offers[fb].id: duplicate offer id 'fb'"),
        (HEAD + "  - {id: x, placements: [pp]}\n", "r.yaml:4: offers[x].placements[0]: unknown placement 'pp'"),
        (HEAD + "  - {id: x, placements: [p], priority: high}\n", "offers[x].priority: must be an integer"),
        (HEAD + "  - {id: 'a b', placements: [p]}\n", "offers[1].id: invalid offer id 'a b'"),
        (HEAD.replace("fallback: fb", f"fallback: fb, max_items: {MAX_ITEMS_LIMIT + 1}"),
         f"placements[p].max_items: must be between 1 and {MAX_ITEMS_LIMIT}"),
        (HEAD.replace("channels: [web, app], ", ""), "placements[0].channels: required field is missing"),
        (HEAD.replace("}]", "}, {id: p, channels: [web], fallback: fb}]", 1),
         "placements[p].id: duplicate placement id 'p'"),
    ],
)  # fmt: skip
def test_mistakes_are_located(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found
