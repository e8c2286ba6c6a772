"""From eligible offers to propositions: placement and channel, ranking, max items, duplicates, fallback.

Pure: takes the ruleset, the eligibility result (or None when the profile
could not be read) and the request, and returns the decision.
"""

from __future__ import annotations

from collections.abc import Mapping

from decision.core.planning import FALLBACK_RULE, build_plan, fill, render
from decision.core.types import Decision, DecisionRequest, InvalidRequest
from decision.rules.types import AttrType, ContextValue, Offer, Ruleset

__all__ = ["FALLBACK_RULE", "check_request", "decide", "rank"]


def check_request(ruleset: Ruleset, request: DecisionRequest) -> None:
    """Reject placements the ruleset does not know or does not serve on the request's channel."""
    seen: set[str] = set()
    for index, wanted in enumerate(request.placements):
        field = f"placements[{index}].placement_id"
        placement = ruleset.placements.get(wanted.placement_id)
        if placement is None:
            raise InvalidRequest(field, f"unknown placement {wanted.placement_id!r}")
        if wanted.placement_id in seen:
            raise InvalidRequest(field, f"placement {wanted.placement_id!r} is requested twice")
        seen.add(wanted.placement_id)
        if request.channel not in placement.channels:
            served = ", ".join(sorted(placement.channels))
            raise InvalidRequest(
                field, f"placement {wanted.placement_id!r} is not served on channel {request.channel!r} (only {served})"
            )
    if ruleset.attributes:
        _check_context_types(ruleset, request)


def _check_context_types(ruleset: Ruleset, request: DecisionRequest) -> None:
    for name, declared in ruleset.attributes.items():
        value = request.context.get(name)
        if value is not None and _type_of(value) is not declared:
            raise InvalidRequest(
                f"context.{name}", f"the ruleset declares a {declared}, the request sent a {_type_of(value)}"
            )


def _type_of(value: ContextValue) -> AttrType:
    if isinstance(value, tuple):
        return AttrType.LIST
    if isinstance(value, bool):
        return AttrType.BOOL
    return AttrType.STRING if isinstance(value, str) else AttrType.NUMBER


def rank(offers: list[Offer]) -> list[Offer]:
    """Highest priority first; equal priorities keep the ruleset's order (deterministic)."""
    return sorted(offers, key=lambda o: (-o.priority, o.position))


def decide(
    ruleset: Ruleset,
    eligible: Mapping[str, str] | None,
    request: DecisionRequest,
    *,
    decision_id: str,
    now_ms: int,
) -> Decision:
    """Fill each requested placement, in request order, without counters (no caps in play).

    ``eligible`` maps offer id -> matching rule name; None means the profile
    could not be read, and every placement gets its fallback (degraded).
    Decisions with caps and contact policies go through ``decision.service.reservations``.
    """
    plan = build_plan(ruleset, eligible, request, now_ms=now_ms)
    return render(plan, fill(plan, {}), ruleset, request, decision_id=decision_id, degraded=eligible is None)
