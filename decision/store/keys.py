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
* ``ib:c:{<profile>}`` HASH, the profile's cap and contact-policy counters:
  field ``o|<offer>|<counted>`` or ``p|<policy>``, value the latest event
  times (epoch ms, comma-separated, ascending); ``ib:e:{<profile>}:<event id>``
  STRING with a TTL, a recorded feedback event (dedupe); ``ib:total:{offer:<offer>}:<counted>:<bucket>``
  STRING, an offer's total count across profiles in a period bucket.
* ``ib:{rules}:versions`` HASH, published rulesets: version name -> JSON (seq,
  sha256, published_at, source, the YAML text); ``ib:{rules}:active`` STRING,
  JSON naming the version to serve; ``ib:{rules}:seq`` STRING, publication
  counter; channel ``ib:rules``: an activation is published there.

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
# Published rulesets: one slot, apart from profiles and the registry.
RULES_TAG: Final = "{rules}"


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

    # -- delivery controls (caps, contact policies, feedback events) -------
    def counters(self, profile_id: str) -> str:
        """HASH: counter name (built in ``decision.core.counters``) -> latest event times."""
        return f"{self.prefix}:c:{{{profile_id}}}"

    def event_seen(self, profile_id: str, event_id: str) -> str:
        """STRING with a TTL (the dedupe window): this feedback event was recorded."""
        return f"{self.prefix}:e:{{{profile_id}}}:{event_id}"

    def total_count(self, offer_id: str, counted: str, bucket: str) -> str:
        """STRING (integer): how many ``counted`` events an offer had across profiles in a period bucket.

        Tagged by offer, not by profile: one slot per offer holds all its total counters.
        """
        return f"{self.prefix}:total:{{offer:{offer_id}}}:{counted}:{bucket}"

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

    # -- audience_sync's own keys (the decision service never reads them) --
    def event_times(self, profile_id: str) -> str:
        """HASH: audience code -> last applied event time (ms) and op; beside the profile's memberships."""
        return f"{self.prefix}:t:{{{profile_id}}}"

    @property
    def generations(self) -> str:
        """HASH: audience id -> the last snapshot generation handed out."""
        return f"{self.prefix}:{REGISTRY_TAG}:generations"

    @property
    def pending(self) -> str:
        """HASH: ``<code>:<generation>`` of a snapshot being loaded -> JSON (audience, heartbeat...)."""
        return f"{self.prefix}:{REGISTRY_TAG}:pending"

    @property
    def audience_events(self) -> str:
        """STREAM: membership change events (the default stream ``audience-sync stream`` reads)."""
        return f"{self.prefix}:audience-events"

    def membership_pattern(self) -> str:
        """SCAN pattern matching every membership key."""
        return f"{self.prefix}:m:*"

    def profile_of(self, membership_key: bytes | str) -> str | None:
        """The profile id of a membership key (inverse of ``membership``), None for another key."""
        key = _text(membership_key)
        head = f"{self.prefix}:m:{{"
        if not key.startswith(head) or not key.endswith("}") or len(key) <= len(head) + 1:
            return None
        return key[len(head) : -1]

    @property
    def ruleset_versions(self) -> str:
        return f"{self.prefix}:{RULES_TAG}:versions"

    @property
    def ruleset_active(self) -> str:
        return f"{self.prefix}:{RULES_TAG}:active"

    @property
    def ruleset_seq(self) -> str:
        return f"{self.prefix}:{RULES_TAG}:seq"

    @property
    def rules_channel(self) -> str:
        return f"{self.prefix}:rules"


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

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "seq": self.seq,
                "sha256": self.sha256,
                "published_at": self.published_at,
                "source": self.source,
                "text": self.text,
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
