import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WhyNotChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WHY_NOT_CHANGE_KIND_UNSPECIFIED: _ClassVar[WhyNotChangeKind]
    WHY_NOT_CHANGE_KIND_CONTEXT: _ClassVar[WhyNotChangeKind]
    WHY_NOT_CHANGE_KIND_PROFILE: _ClassVar[WhyNotChangeKind]
    WHY_NOT_CHANGE_KIND_JOIN_AUDIENCE: _ClassVar[WhyNotChangeKind]
    WHY_NOT_CHANGE_KIND_LEAVE_AUDIENCE: _ClassVar[WhyNotChangeKind]
    WHY_NOT_CHANGE_KIND_WAIT: _ClassVar[WhyNotChangeKind]
    WHY_NOT_CHANGE_KIND_OUTRANK: _ClassVar[WhyNotChangeKind]

class ExplanationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPLANATION_OUTCOME_UNSPECIFIED: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_SELECTED: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_FALLBACK: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_PROFILE_UNAVAILABLE: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_OUTSIDE_SCHEDULE: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_NOT_IN_AUDIENCE: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_IN_EXCLUDED_AUDIENCE: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_CONDITION_FALSE: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_HOLDOUT: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_CAPPED: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_SUPPRESSED: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_TOTAL_CAP_REACHED: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_CONTACT_POLICY: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_PROPOSED_ELSEWHERE: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_LOST_RANKING: _ClassVar[ExplanationOutcome]
    EXPLANATION_OUTCOME_CONTENT_MISSING: _ClassVar[ExplanationOutcome]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_IMPRESSION: _ClassVar[EventType]
    EVENT_TYPE_CLICK: _ClassVar[EventType]
    EVENT_TYPE_DISMISS: _ClassVar[EventType]
    EVENT_TYPE_CUSTOM: _ClassVar[EventType]

class EventOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_OUTCOME_UNSPECIFIED: _ClassVar[EventOutcome]
    EVENT_OUTCOME_RECORDED: _ClassVar[EventOutcome]
    EVENT_OUTCOME_DUPLICATE: _ClassVar[EventOutcome]
    EVENT_OUTCOME_REJECTED: _ClassVar[EventOutcome]
WHY_NOT_CHANGE_KIND_UNSPECIFIED: WhyNotChangeKind
WHY_NOT_CHANGE_KIND_CONTEXT: WhyNotChangeKind
WHY_NOT_CHANGE_KIND_PROFILE: WhyNotChangeKind
WHY_NOT_CHANGE_KIND_JOIN_AUDIENCE: WhyNotChangeKind
WHY_NOT_CHANGE_KIND_LEAVE_AUDIENCE: WhyNotChangeKind
WHY_NOT_CHANGE_KIND_WAIT: WhyNotChangeKind
WHY_NOT_CHANGE_KIND_OUTRANK: WhyNotChangeKind
EXPLANATION_OUTCOME_UNSPECIFIED: ExplanationOutcome
EXPLANATION_OUTCOME_SELECTED: ExplanationOutcome
EXPLANATION_OUTCOME_FALLBACK: ExplanationOutcome
EXPLANATION_OUTCOME_PROFILE_UNAVAILABLE: ExplanationOutcome
EXPLANATION_OUTCOME_OUTSIDE_SCHEDULE: ExplanationOutcome
EXPLANATION_OUTCOME_NOT_IN_AUDIENCE: ExplanationOutcome
EXPLANATION_OUTCOME_IN_EXCLUDED_AUDIENCE: ExplanationOutcome
EXPLANATION_OUTCOME_CONDITION_FALSE: ExplanationOutcome
EXPLANATION_OUTCOME_HOLDOUT: ExplanationOutcome
EXPLANATION_OUTCOME_CAPPED: ExplanationOutcome
EXPLANATION_OUTCOME_SUPPRESSED: ExplanationOutcome
EXPLANATION_OUTCOME_TOTAL_CAP_REACHED: ExplanationOutcome
EXPLANATION_OUTCOME_CONTACT_POLICY: ExplanationOutcome
EXPLANATION_OUTCOME_PROPOSED_ELSEWHERE: ExplanationOutcome
EXPLANATION_OUTCOME_LOST_RANKING: ExplanationOutcome
EXPLANATION_OUTCOME_CONTENT_MISSING: ExplanationOutcome
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_IMPRESSION: EventType
EVENT_TYPE_CLICK: EventType
EVENT_TYPE_DISMISS: EventType
EVENT_TYPE_CUSTOM: EventType
EVENT_OUTCOME_UNSPECIFIED: EventOutcome
EVENT_OUTCOME_RECORDED: EventOutcome
EVENT_OUTCOME_DUPLICATE: EventOutcome
EVENT_OUTCOME_REJECTED: EventOutcome

class PlacementRequest(_message.Message):
    __slots__ = ("placement_id", "max_items")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    max_items: int
    def __init__(self, placement_id: _Optional[str] = ..., max_items: _Optional[int] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("profile_id", "channel", "placements", "context", "request_id", "explain", "why_not", "dry_run")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _struct_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    WHY_NOT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    profile_id: str
    channel: str
    placements: _containers.RepeatedCompositeFieldContainer[PlacementRequest]
    context: _containers.MessageMap[str, _struct_pb2.Value]
    request_id: str
    explain: bool
    why_not: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    def __init__(self, profile_id: _Optional[str] = ..., channel: _Optional[str] = ..., placements: _Optional[_Iterable[_Union[PlacementRequest, _Mapping]]] = ..., context: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., request_id: _Optional[str] = ..., explain: _Optional[bool] = ..., why_not: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("offer_id", "content_json", "rule", "priority", "score", "tracking_token", "fallback", "experiment_id", "variant")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_JSON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TRACKING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    content_json: str
    rule: str
    priority: int
    score: float
    tracking_token: str
    fallback: bool
    experiment_id: str
    variant: str
    def __init__(self, offer_id: _Optional[str] = ..., content_json: _Optional[str] = ..., rule: _Optional[str] = ..., priority: _Optional[int] = ..., score: _Optional[float] = ..., tracking_token: _Optional[str] = ..., fallback: _Optional[bool] = ..., experiment_id: _Optional[str] = ..., variant: _Optional[str] = ...) -> None: ...

class Proposition(_message.Message):
    __slots__ = ("placement_id", "items", "fallback", "experiment_id", "variant")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    fallback: bool
    experiment_id: str
    variant: str
    def __init__(self, placement_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., fallback: _Optional[bool] = ..., experiment_id: _Optional[str] = ..., variant: _Optional[str] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("propositions", "ruleset_version", "degraded", "request_id", "decision_id", "explanations", "why_not", "dry_run")
    PROPOSITIONS_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    WHY_NOT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    propositions: _containers.RepeatedCompositeFieldContainer[Proposition]
    ruleset_version: str
    degraded: bool
    request_id: str
    decision_id: str
    explanations: _containers.RepeatedCompositeFieldContainer[OfferExplanation]
    why_not: _containers.RepeatedCompositeFieldContainer[WhyNot]
    dry_run: bool
    def __init__(self, propositions: _Optional[_Iterable[_Union[Proposition, _Mapping]]] = ..., ruleset_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., request_id: _Optional[str] = ..., decision_id: _Optional[str] = ..., explanations: _Optional[_Iterable[_Union[OfferExplanation, _Mapping]]] = ..., why_not: _Optional[_Iterable[_Union[WhyNot, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class WhyNot(_message.Message):
    __slots__ = ("offer_id", "placement_id", "outcome", "shown", "remedies", "never", "text")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SHOWN_FIELD_NUMBER: _ClassVar[int]
    REMEDIES_FIELD_NUMBER: _ClassVar[int]
    NEVER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    placement_id: str
    outcome: ExplanationOutcome
    shown: bool
    remedies: _containers.RepeatedCompositeFieldContainer[WhyNotRemedy]
    never: _containers.RepeatedScalarFieldContainer[str]
    text: str
    def __init__(self, offer_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., outcome: _Optional[_Union[ExplanationOutcome, str]] = ..., shown: _Optional[bool] = ..., remedies: _Optional[_Iterable[_Union[WhyNotRemedy, _Mapping]]] = ..., never: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ...) -> None: ...

class WhyNotRemedy(_message.Message):
    __slots__ = ("changes", "rule", "text")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[WhyNotChange]
    rule: str
    text: str
    def __init__(self, changes: _Optional[_Iterable[_Union[WhyNotChange, _Mapping]]] = ..., rule: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class WhyNotChange(_message.Message):
    __slots__ = ("kind", "attribute", "actual", "value", "requirements", "audiences", "any", "until", "reason", "offer_id", "text")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    kind: WhyNotChangeKind
    attribute: str
    actual: _struct_pb2.Value
    value: _struct_pb2.Value
    requirements: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    any: bool
    until: _timestamp_pb2.Timestamp
    reason: str
    offer_id: str
    text: str
    def __init__(self, kind: _Optional[_Union[WhyNotChangeKind, str]] = ..., attribute: _Optional[str] = ..., actual: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., requirements: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., any: _Optional[bool] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., offer_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class OfferExplanation(_message.Message):
    __slots__ = ("offer_id", "placement_id", "outcome", "reason", "rule", "audience", "condition", "attribute", "actual", "beaten_by", "limit", "count", "experiment_id")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    BEATEN_BY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    placement_id: str
    outcome: ExplanationOutcome
    reason: str
    rule: str
    audience: str
    condition: str
    attribute: str
    actual: _struct_pb2.Value
    beaten_by: str
    limit: int
    count: int
    experiment_id: str
    def __init__(self, offer_id: _Optional[str] = ..., placement_id: _Optional[str] = ..., outcome: _Optional[_Union[ExplanationOutcome, str]] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ..., audience: _Optional[str] = ..., condition: _Optional[str] = ..., attribute: _Optional[str] = ..., actual: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., beaten_by: _Optional[str] = ..., limit: _Optional[int] = ..., count: _Optional[int] = ..., experiment_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "profile_id", "type", "custom_type", "tracking_token", "timestamp")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRACKING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    profile_id: str
    type: EventType
    custom_type: str
    tracking_token: str
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., profile_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., custom_type: _Optional[str] = ..., tracking_token: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("event_id", "outcome", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    outcome: EventOutcome
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., outcome: _Optional[_Union[EventOutcome, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ...) -> None: ...
