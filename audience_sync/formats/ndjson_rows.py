"""NDJSON: one JSON object per line, one membership per object.

Members: the profile id (name configurable, ``profile_id`` by default),
``audience_id`` (or the audience named on the command line), and optionally
``status``, ``valid_until`` and ``event_time`` as in the CSV format.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from audience_sync.records import (
    Change,
    InvalidField,
    LineError,
    ParseStats,
    check_id,
    check_profile_id,
    check_status,
    expiry,
    parse_time,
)


@dataclass(frozen=True, slots=True)
class NdjsonOptions:
    id_field: str = "profile_id"
    audience_field: str = "audience_id"
    audience: str | None = None


def json_object(raw: bytes) -> dict[str, Any]:
    """Decode one line; InvalidField with the reason (invalid UTF-8 included) when it is not a JSON object."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode()
        except UnicodeDecodeError as bad:
            raise InvalidField(f"invalid UTF-8 at byte offset {bad.start}") from None
        raise InvalidField(f"bad JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidField(f"expected a JSON object, got {type(value).__name__}")
    return value


def record_change(body: dict[str, Any], options: NdjsonOptions, line: int) -> Change:
    """The membership of one record (a decoded line, or an item of a pushed payload); InvalidField names the field."""
    profile_id = check_profile_id(body.get(options.id_field), options.id_field)
    audience_id = check_id(body.get(options.audience_field, options.audience), options.audience_field)
    status = body.get("status")
    member = True if status is None else check_status(status, "status")
    expires_at = expiry(body.get("valid_until"), "valid_until")
    when = body.get("event_time")
    event_time = None if when is None else parse_time(when, "event_time")
    return Change(profile_id, audience_id, member, expires_at, event_time, line)


def parse_ndjson(
    lines: Iterable[bytes], source: str, options: NdjsonOptions, stats: ParseStats, start: int = 1
) -> Iterator[Change | LineError]:
    for line, raw in enumerate(lines, start):
        if not raw.strip():
            continue
        stats.lines += 1
        try:
            change = record_change(json_object(raw), options, line)
        except InvalidField as exc:
            stats.bad += 1
            yield LineError(source, line, str(exc), raw)
            continue
        yield change
