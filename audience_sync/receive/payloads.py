"""A pushed request body -> membership changes and attribute changes (pure, no I/O).

Accepted bodies, as JSON (one object or an array of objects) or NDJSON (one object per line):

* AEP profiles, as the HTTP API destination sends them: ``identityMap``, ``segmentMembership`` and
  mapped attributes, keys with or without the ``xdm:`` prefix (``formats/xdm.py`` reads them);
* the project's delta records: ``profile_id``, ``audience_id``, ``status``, ``event_time``,
  ``valid_until`` (``formats/ndjson_rows.py`` reads them).

An object is a profile when it has an ``identityMap`` or a ``segmentMembership``, else a record.

Attributes (``--attribute``/``--attribute-map``, ``attribute_mapping.py``): a profile's go under the
identities its memberships go under, a record's under its profile id. Their event time (the later
write wins, per attribute; at equal times the later arrival: ``attributes.py``) is, in this order:
the field named by ``--attribute-time-field`` (``PayloadOptions.time_field``), else the object's
top-level ``timestamp`` (the time of the profile as a whole), else the time the request arrived
(``now``). Never a membership's ``lastQualificationTime`` or a record's ``event_time`` unless named:
those do not move when only attributes change. A re-sent payload with times thus changes nothing,
and an older push arriving late never overwrites a newer one.

The whole body is checked before anything is written: ``PayloadError`` lists the bad fields, each
located as ``[index].field`` (array), ``line N: field`` (NDJSON) or ``field`` (one object).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from audience_sync.attribute_mapping import AttributeSource, from_object, value_at
from audience_sync.attributes import AttributeChange, AttributeRejected, encode
from audience_sync.formats.ndjson_rows import NdjsonOptions, record_change
from audience_sync.formats.xdm import XdmOptions, is_profile, read_profile
from audience_sync.records import Change, InvalidField, parse_time

MAX_ERRORS: Final = 20  # listed in a 400 answer (all are counted)
NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


@dataclass(frozen=True, slots=True)
class PayloadOptions:
    xdm: XdmOptions = field(default_factory=XdmOptions)
    records: NdjsonOptions = field(default_factory=NdjsonOptions)
    attributes: tuple[AttributeSource, ...] = ()
    # A member or dotted path of a pushed object holding its attributes' event time (--attribute-time-field).
    time_field: str | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    changes: list[Change]
    attributes: list[AttributeChange]
    # Per object with something to write: the profile ids it is written under (a profile's identities,
    # a record's profile id).
    written_under: list[list[str]] = field(default_factory=list)

    @property
    def identities(self) -> int:
        """The profile ids written to (one profile hash each)."""
        return len({p for ids in self.written_under for p in ids})

    @property
    def profiles(self) -> int:
        """The people the payload is about: objects sharing an identity are one profile (the same person
        pushed twice, or once more with a new device's ECID)."""
        parent: dict[str, str] = {}

        def root(profile_id: str) -> str:
            while parent[profile_id] != profile_id:
                parent[profile_id] = profile_id = parent[parent[profile_id]]
            return profile_id

        for ids in self.written_under:
            for profile_id in ids:
                parent.setdefault(profile_id, profile_id)
            first = root(ids[0])
            for profile_id in ids[1:]:
                parent[root(profile_id)] = first
        return sum(1 for profile_id, up in parent.items() if profile_id == up)


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


def parse_payload(body: bytes, content_type: str, options: PayloadOptions, now: float) -> Payload:
    """Every change of the body in order (``Change.line`` is the item's index), or PayloadError.

    ``now``: the request's arrival, the event time of attributes of an object without a time.
    """
    payload = Payload([], [])
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
                profile_ids, changes = read_profile(item, options.xdm, index, known_audiences)
            else:
                changes = [record_change(item, options.records, index)]
                profile_ids = [changes[0].profile_id]
            attributes = _attributes(item, options, profile_ids, now) if profile_ids else []
            payload.attributes.extend(attributes)
            payload.changes.extend(changes)
            if changes or attributes:
                payload.written_under.append(profile_ids)
        except (InvalidField, AttributeRejected) as exc:
            count += 1
            if len(errors) < MAX_ERRORS:
                errors.append(f"{where}.{exc}" if where.startswith("[") else f"{where}: {exc}" if where else str(exc))
    if count:
        raise PayloadError(errors, count)
    return payload


def _attributes(
    item: dict[str, Any], options: PayloadOptions, profile_ids: list[str], now: float
) -> list[AttributeChange]:
    """An object's attribute changes, each checked as it will be written (AttributeRejected, InvalidField)."""
    if not options.attributes:
        return []  # nothing mapped: its times are not read either
    at = event_time(item, options, now)
    found = [a for profile_id in profile_ids for a in from_object(options.attributes, profile_id, item, at)]
    for change in found:
        encode(change)  # checked now: nothing of a bad body is written
    return found


def event_time(item: dict[str, Any], options: PayloadOptions, now: float) -> float:
    """The event time of an object's attributes: the named field's, else its ``timestamp``, else ``now``
    (the arrival). A field that is null or empty counts as absent. Raises InvalidField naming the field."""
    names = ("timestamp",) if options.time_field is None else (options.time_field, "timestamp")
    for name in names:
        stamp = value_at(item, name)
        if stamp is not None and stamp != "":
            return parse_time(stamp, name)
    return now


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
