"""The values stored under the keys of ``decision.store.keys``: how they are encoded and decoded. Pure.

The other half of the contract between audience_sync (the writer) and the
decision service (the reader), described in docs/redis-keys.md: membership
fields and values, registry entries (``AudienceEntry``) and the reader's view
of the registry (``AudienceDirectory``), published rulesets and the active
ruleset pointer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
        codes = (_text(f).partition(":")[0] for f in pending)
        return cls.build(int(version or 0), entries, (int(c) for c in codes if c.isdigit()))

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
