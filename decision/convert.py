"""Protobuf <-> domain translation, with the request's field-level validation.

Every rejection names the field the way a caller wrote it
(``placements[1].placement_id``, ``context.cart_value``).
"""

from __future__ import annotations

import math

from google.protobuf import struct_pb2

from decision.rules.types import ContextValue, Scalar
from decision.settings import Limits
from decision.types import Decision, DecisionRequest, InvalidRequest, PlacementRequest
from decision.v1 import decision_pb2


def _bounded(value: str, field: str, limit: int, *, required: bool) -> str:
    if not value:
        if required:
            raise InvalidRequest(field, "required")
        return value
    size = len(value.encode())
    if size > limit:
        raise InvalidRequest(field, f"longer than {limit} bytes ({size})")
    if not value.isprintable():
        raise InvalidRequest(field, "contains control characters")
    return value


def _scalar(value: struct_pb2.Value, field: str, limits: Limits) -> Scalar:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        text = value.string_value
        if len(text.encode()) > limits.max_string_bytes:
            raise InvalidRequest(field, f"string longer than {limits.max_string_bytes} bytes")
        return text
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidRequest(field, f"numbers must be finite, got {number}")
        return number + 0.0  # -0.0 stays a float; ints never reach here
    if kind == "bool_value":
        return value.bool_value
    if kind == "null_value" or kind is None:
        raise InvalidRequest(field, "null is not allowed (leave the attribute out instead)")
    raise InvalidRequest(field, "nested objects are not allowed; use a string, number, boolean or list")


def _context_value(value: struct_pb2.Value, field: str, limits: Limits) -> ContextValue:
    if value.WhichOneof("kind") == "list_value":
        items = value.list_value.values
        if len(items) > limits.max_list_items:
            raise InvalidRequest(field, f"list longer than {limits.max_list_items} items")
        result: list[Scalar] = []
        for index, item in enumerate(items):
            if item.WhichOneof("kind") == "list_value":
                raise InvalidRequest(f"{field}[{index}]", "nested lists are not allowed")
            result.append(_scalar(item, f"{field}[{index}]", limits))
        return tuple(result)
    return _scalar(value, field, limits)


def decide_request(message: decision_pb2.DecideRequest, limits: Limits) -> DecisionRequest:
    profile_id = _bounded(message.profile_id, "profile_id", limits.max_profile_id_bytes, required=True)
    channel = _bounded(message.channel, "channel", limits.max_channel_bytes, required=True)
    request_id = _bounded(message.request_id, "request_id", limits.max_request_id_bytes, required=False)
    if not message.placements:
        raise InvalidRequest("placements", "at least one placement is required")
    if len(message.placements) > limits.max_placements:
        raise InvalidRequest("placements", f"at most {limits.max_placements} placements per request")
    placements = []
    for index, placement in enumerate(message.placements):
        field = f"placements[{index}]"
        if not placement.placement_id:
            raise InvalidRequest(f"{field}.placement_id", "required")
        if placement.max_items > limits.max_items_per_placement:
            raise InvalidRequest(f"{field}.max_items", f"at most {limits.max_items_per_placement}")
        placements.append(PlacementRequest(placement.placement_id, placement.max_items))
    if len(message.context) > limits.max_context_keys:
        raise InvalidRequest("context", f"at most {limits.max_context_keys} attributes ({len(message.context)} sent)")
    context: dict[str, ContextValue] = {}
    for key, value in message.context.items():
        if not key or len(key.encode()) > limits.max_context_key_bytes or not key.isprintable():
            raise InvalidRequest("context", f"invalid attribute name {key[:64]!r}")
        context[key] = _context_value(value, f"context.{key}", limits)
    return DecisionRequest(
        profile_id=profile_id,
        channel=channel,
        placements=tuple(placements),
        context=context,
        request_id=request_id,
        explain=message.explain,
    )


def decide_response(decision: Decision) -> decision_pb2.DecideResponse:
    return decision_pb2.DecideResponse(
        propositions=[
            decision_pb2.Proposition(
                placement_id=p.placement_id,
                fallback=p.fallback,
                items=[
                    decision_pb2.Item(
                        offer_id=i.offer_id,
                        content_json=i.content_json,
                        rule=i.rule,
                        priority=i.priority,
                        score=i.score,
                        tracking_token=i.tracking_token,
                        fallback=i.fallback,
                    )
                    for i in p.items
                ],
            )
            for p in decision.propositions
        ],
        ruleset_version=decision.ruleset_version,
        degraded=decision.degraded,
        request_id=decision.request_id,
        decision_id=decision.decision_id,
    )
