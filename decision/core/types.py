"""Domain types of a decision: what the service is asked and what it answers.

The gRPC layer translates protobuf messages to and from these; nothing below
it knows about protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from decision.rules.types import Context, ContextValue


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


@dataclass(slots=True)  # not frozen: built on every decision, and frozen inits are slow
class Item:
    offer_id: str
    content_json: str
    rule: str
    priority: int
    score: float
    tracking_token: str
    fallback: bool = False
    # The experiment that decided the item (the offer's, else the placement's) and the variant
    # served ("holdout": its control group); empty without one.
    experiment_id: str = ""
    variant: str = ""


@dataclass(slots=True)  # not frozen: built on every decision, and frozen inits are slow
class Proposition:
    placement_id: str
    items: tuple[Item, ...]
    fallback: bool
    # The placement's experiment and this profile's variant ("holdout"), empty without one.
    experiment_id: str = ""
    variant: str = ""


class Outcome(StrEnum):
    """What became of one offer in one placement (decision.core.explain)."""

    SELECTED = "selected"
    FALLBACK = "fallback"  # served as the placement's fallback
    PROFILE_UNAVAILABLE = "profile_unavailable"  # Redis did not answer: fallbacks only
    OUTSIDE_SCHEDULE = "outside_schedule"
    NOT_IN_AUDIENCE = "not_in_audience"
    IN_EXCLUDED_AUDIENCE = "in_excluded_audience"
    CONDITION_FALSE = "condition_false"
    HOLDOUT = "holdout"
    CAPPED = "capped"
    SUPPRESSED = "suppressed"
    TOTAL_CAP_REACHED = "total_cap_reached"
    CONTACT_POLICY = "contact_policy"
    PROPOSED_ELSEWHERE = "proposed_elsewhere"  # shown in another placement of the response
    LOST_RANKING = "lost_ranking"
    CONTENT_MISSING = "content_missing"  # its content needs a value the decision lacks (on_missing: skip)


@dataclass(frozen=True, slots=True)
class Explanation:
    offer_id: str
    placement_id: str
    outcome: Outcome
    reason: str  # one readable sentence
    rule: str = ""  # the eligibility rule that matched, or the one whose failure is reported
    audience: str = ""  # the missing or excluded audience(s)
    condition: str = ""  # the condition that was false, e.g. "context.cart_value > 100"
    attribute: str = ""  # context: its name; a profile attribute: profile.<name>
    actual: ContextValue | None = None  # the attribute's value in the request or profile; None: absent
    beaten_by: str = ""
    limit: int = 0  # cap, total or contact policy maximum
    count: int = 0  # its current count
    experiment_id: str = ""


@dataclass(slots=True)  # not frozen: built on every decision, and frozen inits are slow
class Decision:
    propositions: tuple[Proposition, ...]
    ruleset_version: str
    degraded: bool
    request_id: str
    decision_id: str
    # Filled only when the request asks for it (decision.core.explain).
    explanations: tuple[Explanation, ...] = ()
