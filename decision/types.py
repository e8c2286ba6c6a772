"""Domain types of a decision: what the service is asked and what it answers.

The gRPC layer translates protobuf messages to and from these; nothing below
it knows about protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass

from decision.rules.types import Context


class InvalidRequest(Exception):
    """A request that cannot be decided; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    placement_id: str
    # 0: the placement's own max_items.
    max_items: int = 0


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    profile_id: str
    channel: str
    placements: tuple[PlacementRequest, ...]
    context: Context
    request_id: str = ""
    explain: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    offer_id: str
    content_json: str
    rule: str
    priority: int
    score: float
    tracking_token: str
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Proposition:
    placement_id: str
    items: tuple[Item, ...]
    fallback: bool


@dataclass(frozen=True, slots=True)
class Decision:
    propositions: tuple[Proposition, ...]
    ruleset_version: str
    degraded: bool
    request_id: str
    decision_id: str
