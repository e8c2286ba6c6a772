"""From eligible offers to propositions: placement and channel, ranking, max items, duplicates, fallback.

Pure: takes the ruleset, the eligibility result (or None when the profile
could not be read) and the request, and returns the decision.
"""

from __future__ import annotations

from collections.abc import Mapping

from decision.rules.types import AttrType, ContextValue, Offer, Placement, Ruleset
from decision.tokens import TrackingToken
from decision.types import Decision, DecisionRequest, InvalidRequest, Item, Proposition

FALLBACK_RULE = "fallback"


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
    """Fill each requested placement, in request order.

    ``eligible`` maps offer id -> matching rule name; None means the profile
    could not be read, and every placement gets its fallback (degraded).
    """
    used: set[str] = set()
    propositions: list[Proposition] = []
    for wanted in request.placements:
        placement = ruleset.placements[wanted.placement_id]
        limit = min(wanted.max_items or placement.max_items, placement.max_items)
        chosen: list[Item] = []
        if eligible is not None:
            candidates = [
                ruleset.offers[offer_id]
                for offer_id in eligible
                if placement.id in ruleset.offers[offer_id].placements
                and (ruleset.allow_duplicates or offer_id not in used)
            ]
            for offer in rank(candidates)[:limit]:
                chosen.append(_item(offer, eligible[offer.id], placement, ruleset, decision_id, now_ms))
                used.add(offer.id)
        if chosen:
            propositions.append(Proposition(placement.id, tuple(chosen), fallback=False))
        else:
            fallback = ruleset.offers[placement.fallback]
            # A fallback is always served, even if another placement shows it too.
            item = _item(fallback, FALLBACK_RULE, placement, ruleset, decision_id, now_ms, fallback=True)
            propositions.append(Proposition(placement.id, (item,), fallback=True))
    return Decision(
        propositions=tuple(propositions),
        ruleset_version=ruleset.version,
        degraded=eligible is None,
        request_id=request.request_id,
        decision_id=decision_id,
    )


def _item(
    offer: Offer,
    rule: str,
    placement: Placement,
    ruleset: Ruleset,
    decision_id: str,
    now_ms: int,
    *,
    fallback: bool = False,
) -> Item:
    token = TrackingToken(decision_id, placement.id, offer.id, ruleset.version, now_ms).encode()
    return Item(
        offer_id=offer.id,
        content_json=offer.content_json,
        rule=rule,
        priority=offer.priority,
        score=0.0,
        tracking_token=token,
        fallback=fallback,
    )
