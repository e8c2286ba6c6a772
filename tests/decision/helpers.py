"""Helpers to build requests and read responses in the decision tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from decision.v1 import decision_pb2


def decide_request(
    profile_id: str = "p1",
    placements: Sequence[str | tuple[str, int]] = ("banner",),
    channel: str = "web",
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> decision_pb2.DecideRequest:
    request = decision_pb2.DecideRequest(profile_id=profile_id, channel=channel, **fields)
    for placement in placements:
        placement_id, max_items = (placement, 0) if isinstance(placement, str) else placement
        request.placements.add(placement_id=placement_id, max_items=max_items)
    for key, value in (context or {}).items():
        json_format.ParseDict(value, request.context[key])
    return request


def offers(response: decision_pb2.DecideResponse, placement: str | None = None) -> list[str]:
    """Offer ids proposed, in order, for one placement (or the first)."""
    for proposition in response.propositions:
        if placement is None or proposition.placement_id == placement:
            return [item.offer_id for item in proposition.items]
    raise AssertionError(f"no proposition for {placement}")
