"""A pushed request body -> membership changes (pure, no I/O).

Accepted bodies, as JSON (one object or an array of objects) or NDJSON (one object per line):

* AEP profiles, as the HTTP API destination sends them: ``identityMap``, ``segmentMembership`` and
  mapped attributes (ignored), keys with or without the ``xdm:`` prefix (``formats/xdm.py`` reads them);
* the project's delta records: ``profile_id``, ``audience_id``, ``status``, ``event_time``,
  ``valid_until`` (``formats/ndjson_rows.py`` reads them).

An object is a profile when it has an ``identityMap`` or a ``segmentMembership``, else a record.
The whole body is checked before anything is written: ``PayloadError`` lists the bad fields, each
located as ``[index].field`` (array), ``line N: field`` (NDJSON) or ``field`` (one object).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from audience_sync.formats.ndjson_rows import NdjsonOptions, record_change
from audience_sync.formats.xdm import XdmOptions, is_profile, profile_changes
from audience_sync.records import Change, InvalidField

MAX_ERRORS: Final = 20  # listed in a 400 answer (all are counted)
NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass(frozen=True, slots=True)
class PayloadOptions:
    xdm: XdmOptions = field(default_factory=XdmOptions)
    records: NdjsonOptions = field(default_factory=NdjsonOptions)


class PayloadError(ValueError):
    """The body is refused as a whole; ``errors`` locate each bad field (the first MAX_ERRORS)."""

    def __init__(self, errors: list[str], count: int) -> None:
        super().__init__(errors[0])
        self.errors = errors
        self.count = count


def _items(body: bytes, content_type: str) -> list[tuple[str, Any]]:
    """(location, decoded value) per item of the body: ``[i]``, ``line N`` or '' (one object)."""
    if content_type not in NDJSON_TYPES:
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if content_type == "application/json" or b"\n" not in body.strip():
                raise PayloadError([f"body: not JSON ({_decode_reason(body, exc)})"], 1) from None
        else:
            if isinstance(value, list):
                return [(f"[{i}]", item) for i, item in enumerate(value)]
            return [("", value)]
    items: list[tuple[str, Any]] = []
    errors: list[str] = []
    for number, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            errors.append(f"line {number}: not JSON ({_decode_reason(line, exc)})")
    if errors:
        raise PayloadError(errors[:MAX_ERRORS], len(errors))
    return items


def _decode_reason(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte offset {bad.start}"
    return str(exc)


def parse_payload(body: bytes, content_type: str, options: PayloadOptions) -> list[Change]:
    """Every change of the body in order (``Change.line`` is the item's index), or PayloadError."""
    changes: list[Change] = []
    errors: list[str] = []
    count = 0
    known_audiences: set[str] = set()
    for index, (where, item) in enumerate(_items(body, content_type)):
        if not isinstance(item, dict):
            count += 1
            if len(errors) < MAX_ERRORS:
                errors.append(f"{where or 'body'}: expected a JSON object, got {_json_type(item)}")
            continue
        try:
            if is_profile(item):
                changes += profile_changes(item, options.xdm, index, known_audiences)
            else:
                changes.append(record_change(item, options.records, index))
        except InvalidField as exc:
            count += 1
            if len(errors) < MAX_ERRORS:
                errors.append(f"{where}.{exc}" if where.startswith("[") else f"{where}: {exc}" if where else str(exc))
    if count:
        raise PayloadError(errors, count)
    return changes


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__
