"""Domain types of a decision (decision/core/types.py): a refused request names its field."""

from __future__ import annotations

from decision.core.types import DecisionRequest, InvalidRequest, PlacementRequest


def test_an_invalid_request_names_its_field() -> None:
    refused = InvalidRequest("placements[0].placement_id", "unknown placement 'x'")
    assert (refused.field, refused.reason) == ("placements[0].placement_id", "unknown placement 'x'")
    assert str(refused) == "placements[0].placement_id: unknown placement 'x'"


def test_a_request_defaults_to_the_placements_own_max_items_and_no_explanations() -> None:
    request = DecisionRequest("p", "web", (PlacementRequest("banner"),), {})
    assert (request.placements[0].max_items, request.explain, request.request_id) == (0, False, "")
