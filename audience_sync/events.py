"""Stream events: one membership change per Redis Stream entry (pure decoding).

Entry fields (the same names as the NDJSON format): ``profile_id`` (name
configurable), ``audience_id``, ``status`` (realized/existing/add = member,
exited/remove = not), ``event_time`` (required: out-of-order deliveries are
resolved by it; ISO 8601 or epoch seconds), ``valid_until`` (optional).
Other fields (an event id, ...) are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

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
) -> Change | LineError:
    where = entry_id.decode()
    if not fields:
        return LineError(source, where, "entry deleted from the stream before it was read")
    try:
        profile_id = check_profile_id(_field(fields, id_field), id_field)
        audience_id = check_id(_field(fields, "audience_id"), "audience_id")
        member = check_status(_field(fields, "status"), "status")
        when = _field(fields, "event_time")
        if when is None:
            raise InvalidField("event_time: missing")
        event_time = parse_time(when, "event_time")
        expires_at = expiry(_field(fields, "valid_until"), "valid_until")
    except InvalidField as exc:
        text = b" ".join(k + b"=" + v for k, v in fields.items())
        return LineError(source, where, str(exc), text)
    return Change(profile_id, audience_id, member, expires_at, event_time, where)
