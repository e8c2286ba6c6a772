"""The values stored under the keys of ``inbound_common.keys``: how they are encoded and decoded. Pure.

The other half of the contract between audience_sync (the writer) and the
decision service (the reader), described in docs/redis-keys.md: membership
fields and values, profile attribute fields and values, registry entries (``AudienceEntry``) and the reader's view
of the registry (``AudienceDirectory``), published rulesets and the active
ruleset pointer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

import orjson


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def membership_field(code: int, generation: int) -> str:
    return f"{code}:{generation}"


def membership_value(expires_at: float | None) -> str:
    return "" if expires_at is None else str(int(expires_at))


def membership_expiry(raw_value: bytes) -> float | None:
    """The expiry (epoch seconds) of a membership value, None for one without end (inverse of ``membership_value``)."""
    return float(raw_value) if raw_value else None


def parse_event_time(raw_value: bytes) -> tuple[int, str] | None:
    """(event ms, ``+`` or ``-``) of a value of a profile's event-time hash (``KeySpace.event_times``: the last
    incremental change applied to one audience), None when it does not read as one."""
    text = raw_value.decode(errors="replace")
    stamp, op = text[:-1], text[-1:]
    return (int(stamp), op) if stamp.isdigit() and op in ("+", "-") else None


@dataclass(frozen=True, slots=True)
class AudienceEntry:
    """One audience of the registry."""

    audience_id: str
    code: int
    generation: int
    name: str = ""
    source: str = ""
    synced_at: float | None = None
    members: int | None = None
    # Free-form details a writer records (e.g. the file a snapshot came from).
    extra: Mapping[str, object] = field(default_factory=dict)

    def encode(self) -> bytes:
        body: dict[str, object] = {"code": self.code, "gen": self.generation}
        if self.name:
            body["name"] = self.name
        if self.source:
            body["source"] = self.source
        if self.synced_at is not None:
            body["synced_at"] = self.synced_at
        if self.members is not None:
            body["members"] = self.members
        if self.extra:
            body["extra"] = dict(self.extra)
        return orjson.dumps(body)

    @classmethod
    def decode(cls, audience_id: bytes | str, raw: bytes | str) -> AudienceEntry:
        body = orjson.loads(raw)
        return cls(
            audience_id=_text(audience_id),
            code=int(body["code"]),
            generation=int(body["gen"]),
            name=str(body.get("name", "")),
            source=str(body.get("source", "")),
            synced_at=body.get("synced_at"),
            members=body.get("members"),
            extra=body.get("extra") or {},
        )


# ``extra`` of a registry entry: the identity namespaces whose ids its last snapshot load wrote (audience_sync's
# ``--identity-namespace``; empty: the export's primary identity, or the file's profile ids).
IDENTITY_NAMESPACES = "identity_namespaces"


def identity_namespaces(entry: AudienceEntry) -> tuple[str, ...]:
    """The identity namespaces an audience's last snapshot load wrote ids of (() when it named none)."""
    recorded = entry.extra.get(IDENTITY_NAMESPACES)
    return tuple(str(n) for n in recorded) if isinstance(recorded, list) else ()


def pending_codes(pending: Iterable[bytes | str]) -> list[int]:
    """The audience codes of the field names of ``pending`` (``<code>:<generation>``)."""
    codes = (_text(f).partition(":")[0] for f in pending)
    return [int(c) for c in codes if c.isdigit()]


@dataclass(frozen=True, slots=True)
class AudienceDirectory:
    """The registry as the reader needs it: active (code, generation) -> audience id."""

    version: int
    entries: Mapping[str, AudienceEntry]
    _active: Mapping[bytes, str] = field(repr=False, default_factory=dict)
    # Codes of the registry's audiences and of snapshots being loaded (pending): any other is unknown.
    _codes: frozenset[int] = field(repr=False, default=frozenset())

    @classmethod
    def build(
        cls, version: int, entries: Mapping[str, AudienceEntry], pending: Iterable[int] = ()
    ) -> AudienceDirectory:
        active = {membership_field(e.code, e.generation).encode(): e.audience_id for e in entries.values()}
        return cls(version, dict(entries), active, frozenset(e.code for e in entries.values()) | frozenset(pending))

    @classmethod
    def from_redis(
        cls, version: bytes | str | None, raw: Mapping[bytes, bytes], pending: Iterable[bytes | str] = ()
    ) -> AudienceDirectory:
        """From ``GET version``, ``HGETALL audiences`` and ``HKEYS pending``."""
        entries = {_text(k): AudienceEntry.decode(k, v) for k, v in raw.items()}
        return cls.build(int(version or 0), entries, pending_codes(pending))

    def with_pending(self, pending: Iterable[bytes | str]) -> AudienceDirectory:
        """The same audiences with the codes of the snapshots loading now (``HKEYS pending``): itself when
        they are the codes it knows already. A load announces a new audience's code by its pending record
        alone, without a registry version of its own (a load that is refused leaves the registry as it was)."""
        new = AudienceDirectory.build(self.version, self.entries, pending_codes(pending))
        return self if new._codes == self._codes else new

    def audiences(self, membership: Mapping[bytes, bytes], now: float) -> tuple[frozenset[str], bool]:
        """Decode a profile's membership hash.

        Returns the audiences the profile belongs to at ``now``, and whether
        the hash names an audience code this directory does not know yet (the
        registry changed since it was read). A membership of an unknown code
        or of a generation that is not active does not count.
        """
        active = self._active
        result: set[str] = set()
        unknown = False
        for raw_field, raw_value in membership.items():
            audience = active.get(raw_field)
            if audience is None:
                if not unknown:
                    code, _, _ = raw_field.partition(b":")
                    unknown = code.isdigit() and int(code) not in self._codes
                continue
            if raw_value and float(raw_value) <= now:
                continue  # expired: validUntil has passed
            result.add(audience)
        return frozenset(result), unknown

    def attributes(self, membership: Mapping[bytes, bytes]) -> dict[str, AttributeValue]:
        """The profile's attributes in its hash, snapshot-written ones only of active generations."""
        return profile_attributes(membership, self._active)

    @property
    def active_fields(self) -> Container[bytes]:
        """The membership fields (``<code>:<generation>``) of the audiences' active generations."""
        return self._active


@dataclass(frozen=True, slots=True)
class PublishedRuleset:
    """One published ruleset: a field of ``ib:{rules}:versions``, keyed by its version name.

    A version name stands for one content (``sha256``): republishing a name
    with other content is refused, so the ``ruleset_version`` of a response
    names exactly one ruleset.
    """

    version: str
    seq: int
    sha256: str
    published_at: float
    source: str
    text: str
    # Audit (absent from records published before it: "" and None).
    author: str = ""
    # The version that was active when this one was published ("": none).
    previous: str = ""
    # What changed against ``previous`` (decision.rules.diff.RulesetChanges as JSON); None: not known.
    changes: Mapping[str, Any] | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "seq": self.seq,
                "sha256": self.sha256,
                "published_at": self.published_at,
                "source": self.source,
                "text": self.text,
                "author": self.author,
                "previous": self.previous,
                "changes": self.changes,
            }
        )

    @classmethod
    def decode(cls, version: bytes | str, raw: bytes | str) -> PublishedRuleset:
        body = orjson.loads(raw)
        return cls(
            version=_text(version),
            seq=int(body["seq"]),
            sha256=str(body["sha256"]),
            published_at=float(body["published_at"]),
            source=str(body.get("source", "")),
            text=str(body["text"]),
            author=str(body.get("author") or ""),
            previous=str(body.get("previous") or ""),
            changes=body["changes"] if isinstance(body.get("changes"), dict) else None,
        )


@dataclass(frozen=True, slots=True)
class ActiveRulesetPointer:
    """The value of ``ib:{rules}:active``: which published version servers must serve."""

    version: str
    activated_at: float
    # "publish" or "rollback".
    action: str

    def encode(self) -> bytes:
        return orjson.dumps({"version": self.version, "at": self.activated_at, "action": self.action})

    @classmethod
    def decode(cls, raw: bytes | str) -> ActiveRulesetPointer:
        body = orjson.loads(raw)
        return cls(str(body["version"]), float(body["at"]), str(body.get("action", "")))


# -- profile attributes: fields of the profile's membership hash --------------------------------
# A membership field starts with a digit (``<code>:<generation>``); an attribute field with ``@``,
# so the two never collide and one HGETALL still reads the whole profile.
ATTRIBUTE_MARK: Final = "@"
# ``@<name>`` is written by incremental changes; ``@<name>/<code>:<generation>`` by a snapshot of
# audience ``code``: it counts only while that generation is active (switched with the memberships).
SNAPSHOT_SEPARATOR: Final = "/"
ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Type tags, the first character of a value; "-" is a removal (kept, with its event time).
ATTRIBUTE_TAGS: Final = {"string": "s", "number": "n", "bool": "b", "timestamp": "t", "list": "l"}
REMOVED_TAG: Final = "-"
MAX_ATTRIBUTE_VALUE_BYTES: Final = 4096

# A decoded value: timestamps are epoch seconds (float), lists are tuples of strings.
AttributeValue = str | float | bool | tuple[str, ...]


class InvalidAttribute(ValueError):
    """An attribute that cannot be encoded: a bad name, type or value (the message says which)."""


def attribute_field(name: str, snapshot: tuple[int, int] | None = None) -> str:
    """The hash field of attribute ``name``; ``snapshot``: the (code, generation) of the load writing it."""
    if not ATTRIBUTE_NAME.fullmatch(name):
        raise InvalidAttribute(f"invalid attribute name {name!r} (letters, digits, _; at most 64)")
    if snapshot is None:
        return ATTRIBUTE_MARK + name
    return f"{ATTRIBUTE_MARK}{name}{SNAPSHOT_SEPARATOR}{membership_field(*snapshot)}"


def attribute_value(type_name: str, value: object, event_ms: int) -> str:
    """``<tag><event time ms>|<payload>``; ``value`` None writes a removal. Raises InvalidAttribute."""
    if value is None:
        return f"{REMOVED_TAG}{event_ms}|"
    tag = ATTRIBUTE_TAGS.get(type_name)
    if tag is None:
        raise InvalidAttribute(f"unknown attribute type {type_name!r} (expected one of: {', '.join(ATTRIBUTE_TAGS)})")
    payload = _payload(tag, value)
    if len(payload.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
        raise InvalidAttribute(f"value longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    return f"{tag}{event_ms}|{payload}"


def _payload(tag: str, value: object) -> str:
    if tag == "s" and isinstance(value, str):
        return value
    if tag == "b" and isinstance(value, bool):
        return "1" if value else "0"
    if tag in "nt" and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return repr(float(value))
    if tag == "l" and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return orjson.dumps(list(value)).decode()
    expected = {"s": "a string", "b": "a boolean", "n": "a finite number", "t": "epoch seconds", "l": "strings"}[tag]
    raise InvalidAttribute(f"expected {expected}, got {type(value).__name__} {value!r:.60}")


def attribute_event_ms(raw: bytes | str) -> int | None:
    """The event time of a stored value (None: not an attribute value)."""
    text = _text(raw)
    bar = text.find("|")
    head = text[1:bar]
    return int(head) if bar > 1 and head.isdigit() else None


# A stored value's head: its tag, its event time (ms), the bar; one C call per value on the decision path.
_VALUE_HEAD: Final = re.compile(rb"([snbtl-])([0-9]{1,16})\|").match
_UNREADABLE: Final = object()
_S, _N, _B, _T, _L = b"snbtl"  # tags, as the ints indexing bytes gives


def decode_attribute(raw: bytes) -> tuple[int, AttributeValue | None] | None:
    """(event time ms, value; None for a removal), or None for a value that does not decode."""
    head = _VALUE_HEAD(raw)
    if head is None:
        return None
    value = _payload_value(raw[0], raw[head.end() :])
    return None if value is _UNREADABLE else (int(head[2]), cast(AttributeValue | None, value))


def _payload_value(tag: int, payload: bytes) -> object:
    """The value of a payload (None: a removal, ``_UNREADABLE``: corrupt)."""
    try:
        if tag == _S:
            return payload.decode()
        if tag in (_N, _T):
            number = float(payload)
            return number if math.isfinite(number) else _UNREADABLE
        if tag == _B:
            return payload == b"1"
        if tag == _L:
            items = orjson.loads(payload)
            ok = isinstance(items, list) and all(isinstance(i, str) for i in items)
            return tuple(items) if ok else _UNREADABLE
        return None  # _REMOVED: the head's pattern admits no other tag
    except (ValueError, orjson.JSONDecodeError):
        return _UNREADABLE


def profile_attributes(membership: Mapping[bytes, bytes], active: Container[bytes]) -> dict[str, AttributeValue]:
    """A profile's attributes from its hash: per name, the value with the latest event time among the
    fields that count (written by a change, or by a snapshot whose generation is in ``active``).
    At equal times a change beats a snapshot; a removal that wins, or a corrupt value, leaves the
    attribute absent. Only the winners' values are decoded (this runs on every decision)."""
    result: dict[str, AttributeValue] = {}
    for name, (_, _, _, raw_value, end) in _winners(membership, active).items():
        value = _payload_value(raw_value[0], raw_value[end:])
        if value is not None and value is not _UNREADABLE:
            result[name.decode()] = cast(AttributeValue, value)
    return result


def winning_attribute_fields(membership: Mapping[bytes, bytes], active: Container[bytes]) -> dict[str, bytes]:
    """Per attribute name, the field whose value counts (the rule of ``profile_attributes``; its value may be a
    removal or corrupt: then the attribute is absent)."""
    return {name.decode(): raw_field for name, (_, _, raw_field, _, _) in _winners(membership, active).items()}


def _winners(
    membership: Mapping[bytes, bytes], active: Container[bytes]
) -> dict[bytes, tuple[int, bool, bytes, bytes, int]]:
    """Per attribute name: (event ms, written by a change, field, value, where its payload starts) of the field
    that counts."""
    best: dict[bytes, tuple[int, bool, bytes, bytes, int]] = {}
    for raw_field, raw_value in membership.items():
        if raw_field[:1] != b"@":
            continue
        slash = raw_field.find(b"/")
        if slash < 0:
            name, change = raw_field[1:], True
        elif raw_field[slash + 1 :] in active:
            name, change = raw_field[1:slash], False
        else:
            continue  # a replaced snapshot's (or one still loading)
        head = _VALUE_HEAD(raw_value)
        if head is None:
            continue
        event_ms = int(head[2])
        held = best.get(name)
        if held is None or event_ms > held[0] or (event_ms == held[0] and change and not held[1]):
            best[name] = (event_ms, change, raw_field, raw_value, head.end())
    return best


def parse_attribute_field(raw_field: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """(name, (code, generation) of the snapshot that wrote it, or None for a change) of an attribute field
    (the inverse of ``attribute_field``); None for any other field."""
    text = raw_field.decode(errors="replace")
    if not text.startswith(ATTRIBUTE_MARK):
        return None
    name, slash, snapshot = text[1:].partition(SNAPSHOT_SEPARATOR)
    if not slash:
        return name, None
    code, colon, generation = snapshot.partition(":")
    if not (colon and code.isdigit() and generation.isdigit()):
        return None
    return name, (int(code), int(generation))


def parse_membership_field(raw_field: bytes) -> tuple[int, int] | None:
    """(code, generation) of a membership field (the inverse of ``membership_field``); None for another field."""
    code, colon, generation = raw_field.partition(b":")
    return (int(code), int(generation)) if colon and code.isdigit() and generation.isdigit() else None
