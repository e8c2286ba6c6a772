"""Request validation: placements known and served on the channel, context values of the declared types. Pure."""

from __future__ import annotations

from decision.core.types import DecisionRequest, InvalidRequest
from decision.rules.suggest import did_you_mean
from decision.rules.types import AttrType, ContextValue, Ruleset


def check_request(ruleset: Ruleset, request: DecisionRequest) -> None:
    """Reject placements the ruleset does not know or does not serve on the request's channel."""
    seen: set[str] = set()
    for index, wanted in enumerate(request.placements):
        field = f"placements[{index}].placement_id"
        placement = ruleset.placements.get(wanted.placement_id)
        if placement is None:
            hint = did_you_mean(wanted.placement_id, ruleset.placements)
            raise InvalidRequest(field, f"unknown placement {wanted.placement_id!r}{hint}")
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
