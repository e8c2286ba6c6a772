"""Stream events: one membership change per Redis Stream entry (pure decoding).

Entry fields (the same names as the NDJSON format): ``profile_id`` (name
configurable), ``audience_id``, ``status`` (realized/existing/add = member,
exited/remove = not), ``event_time`` (required: out-of-order deliveries are
resolved by it; ISO 8601 or epoch seconds), ``valid_until`` (optional).
Other fields (an event id, ...) are ignored.

An entry with an ``attribute`` field is an attribute change instead: ``profile_id``,
``attribute`` (its name), ``type`` (string — the default —, number, bool, timestamp, list),
``value`` (text, as in a CSV cell: lists separated by ``|``; no ``value`` field: the attribute
is removed) and ``event_time`` (required: the later write wins, per attribute).
"""

from __future__ import annotations

from collections.abc import Mapping

from audience_sync.attribute_mapping import AttributeSource
from audience_sync.attributes import AttributeChange, AttributeRejected, encode
from audience_sync.records import (
    Change,
    InvalidField,
    LineError,
    check_id,
    check_profile_id,
    check_status,
    expiry,
    parse_time,
)


def _field(fields: Mapping[bytes, bytes], name: str) -> str | None:
    raw = fields.get(name.encode())
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise InvalidField(f"{name}: invalid UTF-8 at byte offset {exc.start}") from None


def parse_event(
    entry_id: bytes, fields: Mapping[bytes, bytes] | None, source: str, id_field: str = "profile_id"
) -> Change | AttributeChange | LineError:
    where = entry_id.decode()
    if not fields:
        return LineError(source, where, "entry deleted from the stream before it was read")
    try:
        profile_id = check_profile_id(_field(fields, id_field), id_field)
        event_time = parse_time(_required(fields, "event_time"), "event_time")
        if b"attribute" in fields:
            return _attribute(fields, profile_id, event_time)
        audience_id = check_id(_field(fields, "audience_id"), "audience_id")
        member = check_status(_field(fields, "status"), "status")
        expires_at = expiry(_field(fields, "valid_until"), "valid_until")
    except (InvalidField, AttributeRejected) as exc:
        text = b" ".join(k + b"=" + v for k, v in fields.items())
        return LineError(source, where, str(exc), text)
    return Change(profile_id, audience_id, member, expires_at, event_time, where)


def _required(fields: Mapping[bytes, bytes], name: str) -> str:
    value = _field(fields, name)
    if value is None:
        raise InvalidField(f"{name}: missing")
    return value


def _attribute(fields: Mapping[bytes, bytes], profile_id: str, event_time: float) -> AttributeChange:
    """An attribute entry's change, checked as it will be written (AttributeRejected, InvalidField)."""
    name = _required(fields, "attribute")
    try:
        source = AttributeSource.of("value", _field(fields, "type") or "string", name, spec="attribute entry")
    except ValueError as exc:
        raise InvalidField(str(exc)) from None
    text = _field(fields, "value")
    if text == "" and source.type != "string":
        raise InvalidField(f"value: empty, expected a {source.type} (no value field removes the attribute)")
    value = None if text is None else text if text == "" else source.from_text(text)
    change = AttributeChange(profile_id, name, source.type, value, event_time)
    encode(change)
    return change
