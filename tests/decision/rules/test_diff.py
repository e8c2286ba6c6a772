"""The ruleset diff: offers and placements added, removed, changed, and exactly which fields."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from decision.rules.diff import OFFER_FIELDS, PLACEMENT_FIELDS, RulesetChanges, diff
from decision.rules.loader import parse
from decision.rules.types import Ruleset
from tests.decision.rules.strategies import ruleset_documents
from tests.decision.rules.test_schema import BASE


def load(document: dict[str, Any] | str) -> Ruleset:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    ruleset, problems = parse(text.encode(), "t.yaml")
    assert ruleset is not None, problems
    return ruleset


# One edit per field of an offer of BASE ("sale") and of its placement, each valid on its own.
OFFER_EDITS: dict[str, Any] = {
    "placements": ["banner", "side"],
    "priority": 6,
    "content": {"title": "new"},
    "eligibility": {"conditions": {"context.cart": {"gt": 1}}},
    "attributes": {"margin": 4},
    "caps": [{"max": 3, "period": "day"}],
    "suppress": {"after_dismissals": 1, "for": "1d"},
    "experiment": {"id": "copy", "variants": [{"id": "a", "weight": 2}]},
}
PLACEMENT_EDITS: dict[str, Any] = {
    "channels": ["web", "app"],
    "max_items": 3,
    "fallback": "fb2",
    "score": "offer.margin * 2",
    "experiment": {"id": "rank", "variants": [{"id": "a", "weight": 1, "score": "1"}]},
    "ranking": {"strategy": "thompson", "min_exposure": 5},
}


def base() -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document["placements"].append({"id": "side", "channels": ["web"], "fallback": "fb2"})
    document["offers"].append({"id": "fb2", "placements": ["banner", "side"]})
    document["contact_policies"][0]["channels"] = ["web", "app"]  # a channel the edits may give
    document["placements"].append({"id": "other", "channels": ["app"], "fallback": "fb2"})
    document["offers"][-1]["placements"].append("other")
    return document


def test_every_field_the_diff_compares_has_an_edit() -> None:
    assert set(OFFER_EDITS) == set(OFFER_FIELDS)
    assert set(PLACEMENT_EDITS) == set(PLACEMENT_FIELDS)


@pytest.mark.parametrize("name", sorted(OFFER_EDITS))
def test_an_offer_field_edit_is_reported_as_that_field_only(name: str) -> None:
    old = base()
    new = copy.deepcopy(old)
    new["offers"][1][name] = OFFER_EDITS[name]
    changes = diff(load(old), load(new))
    assert changes.offers.changed == {"sale": (name,)}
    assert not changes.offers.added and not changes.offers.removed and not changes.placements


@pytest.mark.parametrize("name", sorted(PLACEMENT_EDITS))
def test_a_placement_field_edit_is_reported_as_that_field_only(name: str) -> None:
    old = base()
    new = copy.deepcopy(old)
    new["placements"][0][name] = PLACEMENT_EDITS[name]
    if name == "score":  # the new formula reads what the old one read: still valid
        assert "offer.margin" in PLACEMENT_EDITS[name]
    changes = diff(load(old), load(new))
    assert changes.placements.changed == {"banner": (name,)}
    assert not changes.offers and not changes.other


def test_added_removed_and_ruleset_wide_changes() -> None:
    old = base()
    new = copy.deepcopy(old)
    new["offers"].append({"id": "fresh", "placements": ["side"]})
    new["offers"] = [o for o in new["offers"] if o["id"] != "sale"]
    new["placements"] = [p for p in new["placements"] if p["id"] != "other"]
    new["offers"][-2]["placements"].remove("other")  # fb2
    new["settings"]["time_zone"] = "UTC"
    new["contact_policies"][0].update(max=4, channels=["web"])  # "app" left with placement "other"
    new["placements"][0]["score"] = "1"  # sale, the only offer with a margin, is gone
    changes = diff(load(old), load(new))
    assert changes.offers.added == ("fresh",) and changes.offers.removed == ("sale",)
    assert changes.offers.changed == {"fb2": ("placements",)}
    assert changes.placements.removed == ("other",) and changes.placements.changed == {"banner": ("score",)}
    assert changes.other == ("settings", "contact_policies")
    assert changes.summary() == "offers +1 -1 ~1, placements +0 -1 ~1, settings, contact_policies"
    assert changes.lines()[:3] == ["+ offer fresh", "- offer sale", "~ offer fb2: placements"]


def test_layout_comments_and_descriptions_are_not_changes() -> None:
    old = base()
    new = copy.deepcopy(old)
    new["offers"][1]["description"] = "now described"
    text = "# a comment\n" + yaml.safe_dump(new, sort_keys=True, default_flow_style=True)
    changes = diff(load(old), load(text))
    assert not changes and changes.summary() == "no changes" and changes.lines() == []


@settings(max_examples=60, deadline=None)
@given(ruleset_documents(max_offers=5), ruleset_documents(max_offers=5))
def test_the_diff_is_antisymmetric_and_round_trips_through_json(a: str, b: str) -> None:
    old, new = load(a), load(b)
    forward, backward = diff(old, new), diff(new, old)
    assert set(forward.offers.added) == set(backward.offers.removed)
    assert set(forward.offers.removed) == set(backward.offers.added)
    assert forward.offers.changed.keys() == backward.offers.changed.keys()
    for offer_id, fields in forward.offers.changed.items():
        assert set(fields) == set(backward.offers.changed[offer_id])
        assert all(OFFER_FIELDS[f](old.offers[offer_id]) != OFFER_FIELDS[f](new.offers[offer_id]) for f in fields)
    unchanged = old.offers.keys() & new.offers.keys() - forward.offers.changed.keys()
    # every field of an offer is compared: the unchanged ones are equal but for their place in the file
    assert all(replace(old.offers[o], position=0) == replace(new.offers[o], position=0) for o in unchanged)
    assert not diff(old, old)
    assert RulesetChanges.from_json(forward.to_json()) == forward
