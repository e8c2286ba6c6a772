"""Request validation: placements known and served on the channel, context values of the declared types;
the profile's attributes joined to the context the rules see. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from decision.core.types import DecisionRequest, InvalidRequest
from decision.rules.patterns import PROFILE_SCOPE
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
    if request.why_not:
        _check_why_not(ruleset, request)
    if ruleset.attributes:
        _check_context_types(ruleset, request)
    if ruleset.profile_attributes:
        for name in request.context:
            if name.startswith(PROFILE_SCOPE):  # the context must never pass for the profile
                raise InvalidRequest(f"context.{name}", f"names starting with {PROFILE_SCOPE!r} are reserved")


def with_profile(ruleset: Ruleset, request: DecisionRequest, attributes: Mapping[str, ContextValue]) -> DecisionRequest:
    """The request whose context also holds the profile's declared attributes, as ``profile.<name>``
    (the request was checked: it sends no such name). Undeclared attributes stay out."""
    declared = ruleset.profile_attributes
    found = {PROFILE_SCOPE + name: value for name, value in attributes.items() if name in declared}
    if not found:
        return request
    return dataclasses.replace(request, context={**request.context, **found})


def _check_why_not(ruleset: Ruleset, request: DecisionRequest) -> None:
    """Every offer asked about is known, asked once, and offered by a requested placement."""
    requested = {p.placement_id for p in request.placements}
    for index, offer_id in enumerate(request.why_not):
        field = f"why_not[{index}]"
        offer = ruleset.offers.get(offer_id)
        if offer is None:
            raise InvalidRequest(field, f"unknown offer {offer_id!r}{did_you_mean(offer_id, ruleset.offers)}")
        if offer_id in request.why_not[:index]:
            raise InvalidRequest(field, f"offer {offer_id!r} is asked about twice")
        if not requested.intersection(offer.placements):
            where = ", ".join(offer.placements)
            raise InvalidRequest(field, f"offer {offer_id!r} is in none of the requested placements (it is in {where})")


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


def context_of_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``(where, "key=value")`` pairs as a request's context, as ``--context`` and the console's form take them: a
    value that parses as JSON is taken as such (120, true, ["a"]), else as a string. ValueError naming ``where``."""
    context: dict[str, Any] = {}
    for where, pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{where} {pair!r}: expected key=value")
        try:
            context[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            context[key] = raw
    return context
