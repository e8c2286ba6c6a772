"""Protobuf <-> domain translation, with the request's field-level validation.

Every rejection names the field the way a caller wrote it
(``placements[1].placement_id``, ``context.cart_value``).
"""

from __future__ import annotations

import math
import struct
from typing import Final

from google.protobuf import struct_pb2

from decision.core.explain import change_text, never_text, remedy_text, requirement_text, why_not_text
from decision.core.types import (
    Change,
    Decision,
    DecisionRequest,
    Explanation,
    InvalidRequest,
    Item,
    JoinAudience,
    LeaveAudience,
    Outcome,
    PlacementRequest,
    Proposition,
    SetValue,
    WaitUntil,
    WhyNot,
)
from decision.rules.patterns import PROFILE_SCOPE
from decision.rules.types import CLICK, DISMISS, IMPRESSION, ContextValue, Scalar
from decision.service.events import MAX_EVENTS_PER_CALL, EventInput, EventOutcome, EventResult
from decision.settings import Limits
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
    if len(message.why_not) > limits.max_why_not:
        raise InvalidRequest("why_not", f"at most {limits.max_why_not} offers ({len(message.why_not)} sent)")
    return DecisionRequest(
        profile_id=profile_id,
        channel=channel,
        placements=tuple(placements),
        context=context,
        request_id=request_id,
        explain=message.explain or bool(message.why_not),
        why_not=tuple(message.why_not),
        dry_run=message.dry_run,
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
                        experiment_id=i.experiment_id,
                        variant=i.variant,
                    )
                    for i in p.items
                ],
                experiment_id=p.experiment_id,
                variant=p.variant,
            )
            for p in decision.propositions
        ],
        ruleset_version=decision.ruleset_version,
        degraded=decision.degraded,
        request_id=decision.request_id,
        decision_id=decision.decision_id,
        explanations=[_explanation(e) for e in decision.explanations],
        why_not=[_why_not(answer) for answer in decision.why_not],
        dry_run=decision.dry_run,
    )


# DecideResponse written as wire bytes, without building its messages (protobuf's encoding concatenates:
# a message's fields in field-number order, a nested message as its length and bytes). What
# ``decide_response(decision).SerializeToString()`` gives, byte for byte (tests/decision/api/test_convert.py).
_ZERO_DOUBLE: Final = bytes(8)
# An item's fields 1 to 4 (offer, content, rule, priority), as written, by those values: items repeat.
_ITEM_HEADS: dict[tuple[str, str, str, int], bytes] = {}
_MAX_ITEM_HEADS: Final = 4096


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return bytes((value,))
    value &= 0xFFFFFFFFFFFFFFFF  # negative int32: ten bytes, as protobuf writes them
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text(tag: bytes, value: str) -> bytes:
    """A string field (left out when empty, as proto3 does)."""
    if not value:
        return b""
    raw = value.encode()
    return tag + _varint(len(raw)) + raw


def _framed(tag: bytes, body: bytes) -> bytes:
    return tag + _varint(len(body)) + body


def _fallback_and_experiment(fallback_tag: bytes, fallback: bool, experiment_tag: bytes, experiment_id: str,
                             variant: str) -> bytes:  # fmt: skip
    """An item's or a proposition's last three fields: ``fallback`` (bool), then experiment id and variant, whose
    tag follows the experiment id's."""
    written = fallback_tag + b"\x01" if fallback else b""
    if experiment_id or variant:
        written += _text(experiment_tag, experiment_id) + _text(bytes((experiment_tag[0] + 8,)), variant)
    return written


def _item_bytes(item: Item) -> bytes:
    key = (item.offer_id, item.content_json, item.rule, item.priority)
    head = _ITEM_HEADS.get(key)
    if head is None:
        head = _text(b"\x0a", item.offer_id) + _text(b"\x12", item.content_json) + _text(b"\x1a", item.rule)
        if item.priority:
            head += b"\x20" + _varint(item.priority)
        if len(_ITEM_HEADS) >= _MAX_ITEM_HEADS:
            _ITEM_HEADS.clear()
        _ITEM_HEADS[key] = head
    score = struct.pack("<d", item.score)
    body = head + (b"\x29" + score if score != _ZERO_DOUBLE else b"") + _text(b"\x32", item.tracking_token)
    return body + _fallback_and_experiment(b"\x38", item.fallback, b"\x42", item.experiment_id, item.variant)


def _proposition_bytes(proposition: Proposition) -> bytes:
    body = _text(b"\x0a", proposition.placement_id)
    for item in proposition.items:
        body += _framed(b"\x12", _item_bytes(item))
    flags = _fallback_and_experiment(
        b"\x18", proposition.fallback, b"\x22", proposition.experiment_id, proposition.variant
    )
    return body + flags


def decide_response_bytes(decision: Decision) -> bytes:
    """The DecideResponse of ``decision`` as its wire bytes (what Decide answers)."""
    parts = [_framed(b"\x0a", _proposition_bytes(p)) for p in decision.propositions]
    parts.append(_text(b"\x12", decision.ruleset_version))
    if decision.degraded:
        parts.append(b"\x18\x01")
    parts.append(_text(b"\x22", decision.request_id))
    parts.append(_text(b"\x2a", decision.decision_id))
    parts.extend(_framed(b"\x32", _explanation(e).SerializeToString()) for e in decision.explanations)
    parts.extend(_framed(b"\x3a", _why_not(w).SerializeToString()) for w in decision.why_not)
    if decision.dry_run:
        parts.append(b"\x40\x01")
    return b"".join(parts)


def _why_not(answer: WhyNot) -> decision_pb2.WhyNot:
    """The answer and its wording (decision.core.explain: the same text as ``decision explain --why-not``)."""
    return decision_pb2.WhyNot(
        offer_id=answer.offer_id,
        placement_id=answer.placement_id,
        outcome=f"EXPLANATION_OUTCOME_{answer.outcome.name}",
        shown=answer.shown,
        remedies=[
            decision_pb2.WhyNotRemedy(changes=[_change(c) for c in r.changes], rule=r.rule, text=remedy_text(r))
            for r in answer.remedies
        ],
        never=[never_text(n) for n in answer.never],
        text=why_not_text(answer),
    )


def _change(change: Change) -> decision_pb2.WhyNotChange:
    message = decision_pb2.WhyNotChange(text=change_text(change))
    if isinstance(change, SetValue):
        profile = change.attribute.startswith(PROFILE_SCOPE)
        message.kind = decision_pb2.WHY_NOT_CHANGE_KIND_PROFILE if profile else decision_pb2.WHY_NOT_CHANGE_KIND_CONTEXT
        message.attribute = change.attribute
        message.requirements.extend(requirement_text(r) for r in change.requirements)
        if change.actual is not None:
            _set_value(message.actual, change.actual)
        if change.value is not None:
            _set_value(message.value, change.value)
    elif isinstance(change, JoinAudience):
        message.kind = decision_pb2.WHY_NOT_CHANGE_KIND_JOIN_AUDIENCE
        message.audiences.extend(change.audiences)
        message.any = change.any
    elif isinstance(change, LeaveAudience):
        message.kind = decision_pb2.WHY_NOT_CHANGE_KIND_LEAVE_AUDIENCE
        message.audiences.append(change.audience)
    elif isinstance(change, WaitUntil):
        message.kind = decision_pb2.WHY_NOT_CHANGE_KIND_WAIT
        message.until.FromMilliseconds(change.at_ms)
        message.reason = change.reason.value
    else:
        message.kind = decision_pb2.WHY_NOT_CHANGE_KIND_OUTRANK
        message.offer_id = change.offer_id
        message.reason = change.part.value
    return message


def outcome_of(value: int) -> Outcome:
    """The outcome of an ``ExplanationOutcome`` (the proto enum mirrors decision.core.types.Outcome by name)."""
    return Outcome[decision_pb2.ExplanationOutcome.Name(value).removeprefix("EXPLANATION_OUTCOME_")]


def _explanation(e: Explanation) -> decision_pb2.OfferExplanation:
    message = decision_pb2.OfferExplanation(
        offer_id=e.offer_id,
        placement_id=e.placement_id,
        outcome=f"EXPLANATION_OUTCOME_{e.outcome.name}",  # the proto enum mirrors decision.core.types.Outcome
        reason=e.reason,
        rule=e.rule,
        audience=e.audience,
        condition=e.condition,
        attribute=e.attribute,
        beaten_by=e.beaten_by,
        limit=e.limit,
        count=e.count,
        experiment_id=e.experiment_id,
    )
    if e.actual is not None:
        _set_value(message.actual, e.actual)
    return message


def _set_value(target: struct_pb2.Value, value: ContextValue) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, float):
        target.number_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        for member in value:
            _set_value(target.list_value.values.add(), member)


# Wire event types -> what they count (numbers 1 and 2 were also DISPLAY and INTERACT, once aliases).
_EVENT_KINDS = {
    decision_pb2.EVENT_TYPE_IMPRESSION: IMPRESSION,
    decision_pb2.EVENT_TYPE_CLICK: CLICK,
    decision_pb2.EVENT_TYPE_DISMISS: DISMISS,
    decision_pb2.EVENT_TYPE_CUSTOM: "custom",
}
_OUTCOMES = {
    EventOutcome.RECORDED: decision_pb2.EVENT_OUTCOME_RECORDED,
    EventOutcome.DUPLICATE: decision_pb2.EVENT_OUTCOME_DUPLICATE,
    EventOutcome.REJECTED: decision_pb2.EVENT_OUTCOME_REJECTED,
}


def record_events_request(message: decision_pb2.RecordEventsRequest) -> list[EventInput]:
    """The batch's events, unvalidated: each is checked alone (a bad one does not fail the batch)."""
    if not message.events:
        raise InvalidRequest("events", "at least one event is required")
    if len(message.events) > MAX_EVENTS_PER_CALL:
        raise InvalidRequest("events", f"at most {MAX_EVENTS_PER_CALL} events per call ({len(message.events)} sent)")
    return [
        EventInput(
            event_id=event.event_id,
            profile_id=event.profile_id,
            kind=_EVENT_KINDS.get(event.type, ""),
            custom_type=event.custom_type,
            tracking_token=event.tracking_token,
            timestamp=event.timestamp.seconds + event.timestamp.nanos / 1e9 if event.HasField("timestamp") else None,
            timestamp_nanos=event.timestamp.nanos,
        )
        for event in message.events
    ]


def record_events_response(results: list[EventResult]) -> decision_pb2.RecordEventsResponse:
    return decision_pb2.RecordEventsResponse(
        results=[
            decision_pb2.EventResult(event_id=r.event_id, outcome=_OUTCOMES[r.outcome], reason=r.reason)
            for r in results
        ]
    )
