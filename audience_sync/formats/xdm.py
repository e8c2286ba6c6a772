"""AEP XDM profile export: NDJSON, one profile per line.

    {"identityMap": {"ECID": [{"id": "e-1", "primary": true}, {"id": "e-2"}], "CRMID": [{"id": "c-1"}]},
     "segmentMembership": {"ups": {"<audience id>": {"status": "realized",
                                                     "lastQualificationTime": "2026-11-02T10:00:00Z",
                                                     "validUntil": "2026-12-01T00:00:00Z"}}}}

Every key may carry the ``xdm:`` prefix. ``identityMap`` lists *several* ids per namespace (one person,
two devices: two ECIDs). With namespaces chosen (``--identity-namespace ECID --identity-namespace
CRMID``) the profile is written under **every id listed under each of them** (e-1, e-2 and c-1 above),
so the website (either ECID) and the app (CRMID) each find it in one read; a profile lacking some of the
namespaces is written under those it has, and is refused only when it has none. With no namespace chosen
it is written under the one identity flagged ``primary`` (e-1), whatever its namespace: AEP flags one per
profile, and the HTTP API destination flags none, so choose namespaces for its pushes. The same id under
two namespaces is one profile id. ``realized`` and ``existing`` mean member, ``exited`` not;
``validUntil`` is the membership's end. An audience whose state is ``null`` is absent: Spark writes a
JSON-inferred ``segmentMembership`` as struct columns, with a null for every audience a profile is not in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from audience_sync.formats.ndjson_rows import json_object
from audience_sync.records import (
    MEMBER_STATUSES,
    Change,
    InvalidField,
    LineError,
    ParseStats,
    check_id,
    check_profile_id,
    check_status,
    expiry,
    parse_time,
    seconds,
)


@dataclass(frozen=True, slots=True)
class XdmOptions:
    # Empty: the identity flagged primary, whatever its namespace; several: one profile id per namespace.
    identity_namespaces: tuple[str, ...] = ()
    segment_namespace: str = "ups"


def _get(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    return body.get("xdm:" + name) if value is None else value


def _namespace(mapping: dict[str, Any], name: str) -> Any:
    """A namespace entry: exact name, else case-insensitive (AEP writes ``ECID``, ``Email``, ``email``...)."""
    value = mapping.get(name)
    if value is None:
        folded = name.casefold()
        for key, candidate in mapping.items():
            if key.casefold() == folded or key.casefold() == "xdm:" + folded:
                return candidate
    return value


def _primary(identity_map: dict[str, Any]) -> str:
    for ns, identities in identity_map.items():
        if isinstance(identities, list):
            for i, identity in enumerate(identities):
                if isinstance(identity, dict) and _get(identity, "primary") is True:
                    return check_profile_id(_get(identity, "id"), f"identityMap.{ns}[{i}].id")
    raise InvalidField("identityMap: no primary identity (choose one with --identity-namespace)")


def identities(body: dict[str, Any], namespaces: tuple[str, ...]) -> list[str]:
    """The profile ids to write a profile under: every id listed under each chosen namespace it has (at
    least one), in order, each once; with no namespace chosen, its primary identity."""
    identity_map = _get(body, "identityMap")
    if not isinstance(identity_map, dict):
        raise InvalidField("identityMap: missing" if identity_map is None else "identityMap: expected an object")
    if not namespaces:
        return [_primary(identity_map)]
    found: list[str] = []
    for namespace in namespaces:
        listed = _namespace(identity_map, namespace)
        if listed is None:
            continue
        if not isinstance(listed, list):
            raise InvalidField(f"identityMap.{namespace}: expected a list of identities")
        for i, identity in enumerate(listed):
            if not isinstance(identity, dict):
                raise InvalidField(f"identityMap.{namespace}[{i}]: expected an object")
            profile_id = check_profile_id(_get(identity, "id"), f"identityMap.{namespace}[{i}].id")
            if profile_id not in found:  # the same id twice (two namespaces) is one profile hash
                found.append(profile_id)
    if not found:
        raise InvalidField(f"identityMap.{'/'.join(namespaces)}: missing")
    return found


class Profile(NamedTuple):
    """One exported profile: the ids it is written under and its membership changes (under each id)."""

    identities: list[str]
    changes: list[Change]


def read_profile(
    body: dict[str, Any], options: XdmOptions, line: int, known_audiences: set[str] | None = None
) -> Profile:
    """The identities and memberships of one exported profile; InvalidField names the first bad field.

    ``known_audiences`` remembers audience ids already checked: an export repeats the same few on every line.
    """
    profile_ids = identities(body, options.identity_namespaces)
    changes: list[Change] = []
    membership = _get(body, "segmentMembership")
    if membership is None:
        return Profile(profile_ids, changes)
    if not isinstance(membership, dict):
        raise InvalidField("segmentMembership: expected an object")
    segments = _namespace(membership, options.segment_namespace)
    if segments is None:
        return Profile(profile_ids, changes)
    if not isinstance(segments, dict):
        raise InvalidField(f"segmentMembership.{options.segment_namespace}: expected an object")
    known = known_audiences if known_audiences is not None else set()
    for audience_id, state in segments.items():
        if audience_id not in known:
            check_id(audience_id, f"segmentMembership.{options.segment_namespace}.{audience_id!r}")
            known.add(audience_id)
        if state.__class__ is not dict:
            if state is None:  # absent: a struct column's audience the profile is not in
                continue
            raise InvalidField(f"segmentMembership.{options.segment_namespace}.{audience_id}: expected an object")
        # Plain keys first: the common case costs one lookup per member.
        status = state.get("status") or state.get("xdm:status")
        member = MEMBER_STATUSES.get(status) if status.__class__ is str else None
        if member is None:
            member = check_status(status, f"segmentMembership.{options.segment_namespace}.{audience_id}.status")
        qualified = state.get("lastQualificationTime") or state.get("xdm:lastQualificationTime")
        until = state.get("validUntil") or state.get("xdm:validUntil")
        try:  # the common case: ISO strings, seen before (cached)
            event_time = None if qualified is None else seconds(qualified) if qualified.__class__ is str else None
            expires_at = None if until is None else int(seconds(until)) if until.__class__ is str else None
        except ValueError:
            event_time = expires_at = None
        if (event_time is None and qualified is not None) or (expires_at is None and until is not None):
            where = f"segmentMembership.{options.segment_namespace}.{audience_id}"
            event_time = None if qualified is None else parse_time(qualified, f"{where}.lastQualificationTime")
            expires_at = expiry(until, f"{where}.validUntil")
        if len(profile_ids) == 1:
            changes.append(Change(profile_ids[0], audience_id, member, expires_at, event_time, line))
        else:
            changes += [Change(p, audience_id, member, expires_at, event_time, line) for p in profile_ids]
    return Profile(profile_ids, changes)


def parse_xdm(
    lines: Iterable[bytes], source: str, options: XdmOptions, stats: ParseStats, start: int = 1
) -> Iterator[Change | LineError]:
    known_audiences: set[str] = set()
    for line, raw in enumerate(lines, start):
        if not raw.strip():
            continue
        stats.lines += 1
        try:
            profile = read_profile(json_object(raw), options, line, known_audiences)
        except InvalidField as exc:
            stats.bad += 1
            yield LineError(source, line, str(exc), raw)
            continue
        stats.profiles += 1
        stats.identities += len(profile.identities)
        yield from profile.changes


PROFILE_KEYS: Final = frozenset({"identityMap", "segmentMembership", "xdm:identityMap", "xdm:segmentMembership"})


def is_profile(body: dict[str, Any]) -> bool:
    """An object is an XDM profile, rather than a flat record, when it has an identityMap or a segmentMembership."""
    return not PROFILE_KEYS.isdisjoint(body)
