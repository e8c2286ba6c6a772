"""One profile as Redis holds it, decoded field by field: what ``decision profile`` (and the console) show.

A profile id is one identity: its memberships and attributes (``m:{id}``), the event times of its
incremental changes (``t:{id}``) and its counters (``c:{id}``) are read with the audience registry in
one pipeline, and every field is explained — the audience and generation of a membership and whether
it counts, each attribute field and whether its value is the one decisions read. Whether a field
counts is decided by the readers' own code (``AudienceDirectory``, ``winning_attribute_fields``), never
here. The layout links no identities: another id of the same person is another profile, read apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from inbound_common.codecs import (
    ATTRIBUTE_TAGS,
    REMOVED_TAG,
    AttributeValue,
    AudienceDirectory,
    AudienceEntry,
    decode_attribute,
    identity_namespaces,
    membership_expiry,
    parse_attribute_field,
    parse_event_time,
    parse_membership_field,
    winning_attribute_fields,
)
from inbound_common.keys import KeySpace

if TYPE_CHECKING:  # the commands import this module to word what it reads: without redis-py's import cost
    from decision.store.connect import AnyRedis


class MembershipState(StrEnum):
    MEMBER = "member"  # counts now (until its expiry, if any)
    EXPIRED = "expired"  # of the active generation, but its validUntil has passed
    EXITED = "exited"  # no membership field: the last incremental change removed it
    PENDING = "pending"  # of a snapshot still loading: counts from its cutover on
    REPLACED = "replaced"  # of a generation a later snapshot replaced: left for gc
    NOT_APPLIED = "not applied"  # of a snapshot that was never switched in (refused, failed, killed): left for gc
    UNKNOWN = "unknown audience"  # a code the registry does not know (a deleted audience, a newer registry)


class AttributeState(StrEnum):
    COUNTS = "counts"  # the value decisions read
    REMOVED = "removed"  # the latest is a removal: the attribute is absent
    OLDER = "older"  # another field of the name has a later event time (or wins the tie)
    NOT_ACTIVE = "generation not active"  # written by a snapshot whose generation is not (or no longer) served
    UNREADABLE = "unreadable"  # a value that does not decode: the attribute is absent


@dataclass(frozen=True, slots=True)
class Membership:
    """One audience of the profile: a field of its hash, or an exit recorded by an incremental change."""

    audience_id: str | None  # None: the registry does not know the code
    name: str  # the registry's display name ("" when none)
    code: int
    generation: int | None  # the field's generation; None for an exit (no field)
    active_generation: int | None
    state: MembershipState
    expires_at: float | None  # validUntil, epoch seconds
    # The last incremental change applied to (profile, audience): (event time, epoch seconds; "+" or "-").
    last_change: tuple[float, str] | None


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute field of the profile's hash."""

    name: str
    value: AttributeValue | None  # None for a removal or an unreadable value
    type: str  # string, number, bool, timestamp, list; "removed"; "" when unreadable
    event_time: float | None  # epoch seconds
    # The snapshot that wrote it: (audience id or None when unknown, code, generation); None: a change.
    snapshot: tuple[str | None, int, int] | None
    state: AttributeState


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """What Redis holds under one profile id, read at ``read_at`` (epoch seconds)."""

    profile_id: str
    read_at: float
    keys: tuple[str, ...]  # the profile's keys that exist
    memberships: tuple[Membership, ...]
    attributes: tuple[Attribute, ...]
    counters: Mapping[str, bytes]  # the counters hash as stored (decision.core.counters names its fields)
    counters_ttl_ms: int | None  # when the counters expire (None: they do not, or there are none)
    registry_version: int
    # The identity namespaces whose ids the snapshot loads of its audiences wrote (() when they named none).
    identity_namespaces: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.keys)


async def read_stored_profile(client: AnyRedis, keys: KeySpace, profile_id: str, now: float) -> StoredProfile:
    """Read one profile id and the registry (one pipeline: two slots on a Cluster) and decode them at ``now``."""
    names = (keys.membership(profile_id), keys.event_times(profile_id), keys.counters(profile_id))
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(name)
        pipe.pttl(keys.counters(profile_id))
        pipe.get(keys.registry_version)
        pipe.hgetall(keys.audiences)
        pipe.hkeys(keys.pending)
        membership, times, counters, ttl, version, registry, pending = await pipe.execute()
    directory = AudienceDirectory.from_redis(version, registry, pending)
    loading = {parsed for field in pending if (parsed := parse_membership_field(_bytes(field))) is not None}
    found = memberships(membership, times, directory, frozenset(loading), now)
    entries = [directory.entries.get(m.audience_id) for m in found if m.audience_id is not None]
    namespaces = (identity_namespaces(entry) for entry in entries if entry is not None)
    return StoredProfile(
        profile_id=profile_id,
        read_at=now,
        keys=tuple(name for name, held in zip(names, (membership, times, counters), strict=True) if held),
        memberships=found,
        attributes=attributes(membership, directory),
        counters={_bytes(k).decode(): v for k, v in counters.items()},
        counters_ttl_ms=int(ttl) if counters and int(ttl) >= 0 else None,
        registry_version=directory.version,
        identity_namespaces=tuple(dict.fromkeys(n for names in namespaces for n in names)),
    )


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def memberships(
    membership: Mapping[bytes, bytes],
    event_times: Mapping[bytes, bytes],
    directory: AudienceDirectory,
    loading: frozenset[tuple[int, int]],
    now: float,
) -> tuple[Membership, ...]:
    """Every membership field of the hash, and every exit the event times record, by audience."""
    by_code = {entry.code: entry for entry in directory.entries.values()}
    changes = {int(code): stamp for code, raw in event_times.items() if (stamp := parse_event_time(raw)) is not None}
    found: list[Membership] = []
    for raw_field, raw_value in membership.items():
        parsed = parse_membership_field(raw_field)
        if parsed is None:
            continue  # an attribute field
        code, generation = parsed
        entry = by_code.get(code)
        counted, _ = directory.audiences({raw_field: raw_value}, now)  # the reader's verdict, field by field
        if counted:
            state = MembershipState.MEMBER
        elif entry is None:
            state = MembershipState.PENDING if parsed in loading else MembershipState.UNKNOWN
        elif generation == entry.generation:
            state = MembershipState.EXPIRED
        elif parsed in loading:
            state = MembershipState.PENDING
        else:
            state = MembershipState.REPLACED if generation < entry.generation else MembershipState.NOT_APPLIED
        found.append(_membership(entry, code, generation, state, membership_expiry(raw_value), changes.get(code)))
    held = {m.code for m in found if m.generation == (m.active_generation or -1)}
    for code, (event_ms, op) in changes.items():
        if op == "-" and code not in held:
            found.append(_membership(by_code.get(code), code, None, MembershipState.EXITED, None, (event_ms, op)))
    order = list(MembershipState)
    found.sort(key=lambda m: (order.index(m.state), m.audience_id or "", m.code, m.generation or 0))
    return tuple(found)


def _membership(
    entry: AudienceEntry | None, code: int, generation: int | None, state: MembershipState,
    expires_at: float | None, change: tuple[int, str] | None,
) -> Membership:  # fmt: skip
    return Membership(
        audience_id=entry.audience_id if entry else None,
        name=entry.name if entry else "",
        code=code,
        generation=generation,
        active_generation=entry.generation if entry else None,
        state=state,
        expires_at=expires_at,
        last_change=None if change is None else (change[0] / 1000, change[1]),
    )


def attributes(membership: Mapping[bytes, bytes], directory: AudienceDirectory) -> tuple[Attribute, ...]:
    """Every attribute field of the hash, the one decisions read first for each name."""
    winners = set(winning_attribute_fields(membership, directory.active_fields).values())
    by_code = {entry.code: entry.audience_id for entry in directory.entries.values()}
    found: list[Attribute] = []
    for raw_field, raw_value in membership.items():
        parsed = parse_attribute_field(raw_field)
        if parsed is None:
            continue
        name, snapshot = parsed
        decoded = decode_attribute(raw_value)
        event_ms, value = decoded if decoded is not None else (None, None)
        if decoded is None:
            state = AttributeState.UNREADABLE
        elif raw_field in winners:
            state = AttributeState.COUNTS if value is not None else AttributeState.REMOVED
        elif snapshot is not None and raw_field.partition(b"/")[2] not in directory.active_fields:
            state = AttributeState.NOT_ACTIVE
        else:
            state = AttributeState.OLDER
        found.append(
            Attribute(
                name=name,
                value=value,
                type=_type_of(raw_value) if decoded is not None else "",
                event_time=None if event_ms is None else event_ms / 1000,
                snapshot=None if snapshot is None else (by_code.get(snapshot[0]), *snapshot),
                state=state,
            )
        )
    order = list(AttributeState)
    found.sort(key=lambda a: (a.name, order.index(a.state), -(a.event_time or 0)))
    return tuple(found)


def _type_of(raw_value: bytes) -> str:
    tag = raw_value[:1].decode()
    return "removed" if tag == REMOVED_TAG else next((name for name, t in ATTRIBUTE_TAGS.items() if t == tag), "")
