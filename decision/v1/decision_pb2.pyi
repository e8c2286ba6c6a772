from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlacementRequest(_message.Message):
    __slots__ = ("placement_id", "max_items")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    max_items: int
    def __init__(self, placement_id: _Optional[str] = ..., max_items: _Optional[int] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("profile_id", "channel", "placements", "context", "request_id", "explain")
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
    profile_id: str
    channel: str
    placements: _containers.RepeatedCompositeFieldContainer[PlacementRequest]
    context: _containers.MessageMap[str, _struct_pb2.Value]
    request_id: str
    explain: bool
    def __init__(self, profile_id: _Optional[str] = ..., channel: _Optional[str] = ..., placements: _Optional[_Iterable[_Union[PlacementRequest, _Mapping]]] = ..., context: _Optional[_Mapping[str, _struct_pb2.Value]] = ..., request_id: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("offer_id", "content_json", "rule", "priority", "score", "tracking_token", "fallback")
    OFFER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_JSON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TRACKING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    offer_id: str
    content_json: str
    rule: str
    priority: int
    score: float
    tracking_token: str
    fallback: bool
    def __init__(self, offer_id: _Optional[str] = ..., content_json: _Optional[str] = ..., rule: _Optional[str] = ..., priority: _Optional[int] = ..., score: _Optional[float] = ..., tracking_token: _Optional[str] = ..., fallback: _Optional[bool] = ...) -> None: ...

class Proposition(_message.Message):
    __slots__ = ("placement_id", "items", "fallback")
    PLACEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    placement_id: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    fallback: bool
    def __init__(self, placement_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., fallback: _Optional[bool] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("propositions", "ruleset_version", "degraded", "request_id", "decision_id")
    PROPOSITIONS_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    propositions: _containers.RepeatedCompositeFieldContainer[Proposition]
    ruleset_version: str
    degraded: bool
    request_id: str
    decision_id: str
    def __init__(self, propositions: _Optional[_Iterable[_Union[Proposition, _Mapping]]] = ..., ruleset_version: _Optional[str] = ..., degraded: _Optional[bool] = ..., request_id: _Optional[str] = ..., decision_id: _Optional[str] = ...) -> None: ...
