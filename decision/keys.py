"""The Redis key layout: every key name is built here, and its values decoded here.

This module is the contract between audience_sync (the writer) and the
decision service (the reader); docs/redis-keys.md describes it for humans and
must change with it. It is pure: no Redis client is imported.

Summary (prefix ``ib`` by default):

* ``ib:m:{<profile>}`` HASH, a profile's audience memberships. Field
  ``<code>:<generation>``, value ``""`` (no expiry) or the expiry as integer
  epoch seconds. ``{<profile>}`` is the hash tag: every key of a profile lives
  in one Redis Cluster slot, so a decision reads a profile in one round trip.
* ``ib:{registry}:audiences`` HASH, the audience registry: audience id -> JSON
  (code, active generation, name, source, last sync, members...).
* ``ib:{registry}:next-code`` STRING, the last audience code handed out.
* ``ib:{registry}:version`` STRING, incremented on every registry change.
* channel ``ib:registry``: a registry change is published there (the new version).

Audiences are stored as small integer *codes* rather than their ids (AEP
segment ids are 36-character UUIDs) to keep a membership to a few bytes. A
membership counts only when its generation is the audience's active one: a
snapshot writes a new generation beside the old one and switches the registry
in one step, so readers see the old or the new membership, never a mix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

DEFAULT_PREFIX: Final = "ib"
REGISTRY_TAG: Final = "{registry}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Builds the key names under one prefix (one deployment may hold several)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "{}: \t\r\n"):
            raise ValueError(f"invalid key prefix {self.prefix!r}: no braces, colons or spaces")

    def membership(self, profile_id: str) -> str:
        return f"{self.prefix}:m:{{{profile_id}}}"

    @property
    def audiences(self) -> str:
        return f"{self.prefix}:{REGISTRY_TAG}:audiences"

    @property
    def next_code(self) -> str:
        return f"{self.prefix}:{REGISTRY_TAG}:next-code"

    @property
    def registry_version(self) -> str:
        return f"{self.prefix}:{REGISTRY_TAG}:version"

    @property
    def registry_channel(self) -> str:
        return f"{self.prefix}:registry"

    def membership_pattern(self) -> str:
        """SCAN pattern matching every membership key."""
        return f"{self.prefix}:m:*"


def membership_field(code: int, generation: int) -> str:
    return f"{code}:{generation}"


def membership_value(expires_at: float | None) -> str:
    return "" if expires_at is None else str(int(expires_at))


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


@dataclass(frozen=True, slots=True)
class AudienceDirectory:
    """The registry as the reader needs it: active (code, generation) -> audience id."""

    version: int
    entries: Mapping[str, AudienceEntry]
    _active: Mapping[bytes, str] = field(repr=False, default_factory=dict)
    _codes: frozenset[int] = field(repr=False, default=frozenset())

    @classmethod
    def build(cls, version: int, entries: Mapping[str, AudienceEntry]) -> AudienceDirectory:
        active = {membership_field(e.code, e.generation).encode(): e.audience_id for e in entries.values()}
        return cls(version, dict(entries), active, frozenset(e.code for e in entries.values()))

    @classmethod
    def from_redis(cls, version: bytes | str | None, raw: Mapping[bytes, bytes]) -> AudienceDirectory:
        entries = {_text(k): AudienceEntry.decode(k, v) for k, v in raw.items()}
        return cls.build(int(version or 0), entries)

    def knows_code(self, code: int) -> bool:
        return code in self._codes

    def audiences(self, membership: Mapping[bytes, bytes], now: float) -> tuple[frozenset[str], bool]:
        """Decode a profile's membership hash.

        Returns the audiences the profile belongs to at ``now``, and whether
        the hash names an audience code this directory does not know yet (the
        registry changed since it was read).
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
