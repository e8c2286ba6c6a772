"""The Redis key layout: every key name (and hash field name of a counter) is built here.

This module is the contract between audience_sync (the writer) and the
decision service (the reader); docs/redis-keys.md describes it for humans and
must change with it; the values stored under these keys are encoded in
``inbound_common.codecs``. It is pure: no Redis client is imported.

Summary (prefix ``ib`` by default):

* ``ib:m:{<profile>}`` HASH, a profile's audience memberships. Field
  ``<code>:<generation>``, value ``""`` (no expiry) or the expiry as integer
  epoch seconds. ``{<profile>}`` is the hash tag: every key of a profile lives
  in one Redis Cluster slot, so a decision reads a profile in one round trip.
  The same hash holds the profile's attributes: fields ``@<name>`` (changes) and
  ``@<name>/<code>:<generation>`` (snapshots), values ``<type tag><event ms>|<value>``
  (``inbound_common.codecs``).
* ``ib:{registry}:audiences`` HASH, the audience registry: audience id -> JSON
  (code, active generation, name, source, last sync, members...).
* ``ib:{registry}:next-code`` STRING, the last audience code handed out.
* ``ib:{registry}:version`` STRING, incremented on every registry change.
* ``ib:{registry}:pending`` HASH, snapshots being loaded: ``<code>:<generation>`` -> JSON.
  Readers take the codes from its field names: a code a load writes is known, though not active yet.
* channel ``ib:registry``: a registry change is published there (the new version).
* ``ib:c:{<profile>}`` HASH, the profile's cap and contact-policy counters:
  field ``o|<offer>|<counted>`` or ``p|<policy>``, value the latest event
  times (epoch ms, comma-separated, ascending), or ``x|<experiment>``, value the
  variant of an ``allocation: auto`` experiment the profile saw (field names: ``decision.core.counters``);
  ``ib:e:{<profile>}:<event id>`` STRING with a TTL, a recorded feedback event (dedupe);
  ``ib:tok:{<profile>}:<decision id>`` HASH with a TTL, the event types each tracking token of a decision
  counted (field ``<placement>|<offer>|<counted>``, ``decision.core.counters``): each at most once;
  ``ib:total:{offer:<offer>}:<counted>:<bucket>`` STRING, an offer's total count across profiles in a
  period bucket.
* ``ib:out:{out:<offer>:<day>}`` HASH, what an offer achieved in a day (the ruleset's time zone):
  field ``decision.core.outcomes.outcome_field(...)`` -> count of proposals (``decision``) or events by type;
  ``ib:outseen:{out:<offer>:<day>}`` HASH, digests of the events counted there (dedupe).
* ``ib:{rules}:versions`` HASH, published rulesets: version name -> JSON (seq,
  sha256, published_at, source, the YAML text); ``ib:{rules}:active`` STRING,
  JSON naming the version to serve; ``ib:{rules}:seq`` STRING, publication
  counter; channel ``ib:rules``: an activation is published there.
* ``ib:{health}:write-probe`` STRING with a TTL, written by ``audience-sync receive``'s readiness check.
* ``ib:{registry}:watch:<name>:files`` HASH, the ledger of ``audience-sync watch``: object path -> JSON (its
  ETag/size, outcome, reason); ``...:lease`` STRING with a TTL, ``<token> <owner>`` of the watcher applying
  files; ``...:fence`` STRING, the last lease token handed out (fencing: a cutover checks the lease).

Audiences are stored as small integer *codes* rather than their ids (AEP
segment ids are 36-character UUIDs) to keep a membership to a few bytes. A
membership counts only when its generation is the audience's active one: a
snapshot writes a new generation beside the old one and switches the registry
in one step, so readers see the old or the new membership, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_PREFIX: Final = "ib"
REGISTRY_TAG: Final = "{registry}"
# Published rulesets: one slot, apart from profiles and the registry.
RULES_TAG: Final = "{rules}"
# ``YYYY-MM-DD``: the day in an ``outcomes`` key.
DAY_LENGTH: Final = 10


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

    def token_events(self, profile_id: str, decision_id: str) -> str:
        """HASH with a TTL (the token lifetime past the decision): field ``decision.core.counters.token_event_field``
        -> ``1``, the event types the decision's tracking tokens counted (each token counts each type once)."""
        return f"{self.prefix}:tok:{{{profile_id}}}:{decision_id}"

    def total_count(self, offer_id: str, counted: str, bucket: str) -> str:
        """STRING (integer): how many ``counted`` events an offer had across profiles in a period bucket.

        Tagged by offer, not by profile: one slot per offer holds all its total counters.
        """
        return f"{self.prefix}:total:{{offer:{offer_id}}}:{counted}:{bucket}"

    # -- outcomes (decision.service.outcomes) --------------------------------
    def outcomes(self, offer_id: str, day: str) -> str:
        """HASH: outcome field (``decision.core.outcomes``) -> count, for one offer and one day (``YYYY-MM-DD``).

        Tagged by offer and day: a day of an offer is one slot (its events are counted by one script
        call), and offers and days spread over the Cluster instead of one hot slot.
        """
        return f"{self.prefix}:out:{{out:{offer_id}:{day}}}"

    def outcomes_seen(self, offer_id: str, day: str) -> str:
        """HASH beside ``outcomes`` (same tag): event digest -> 1, the events already counted there."""
        return f"{self.prefix}:outseen:{{out:{offer_id}:{day}}}"

    def outcomes_pattern(self) -> str:
        """SCAN pattern matching every ``outcomes`` hash (not the ``outcomes_seen`` ones)."""
        return f"{self.prefix}:out:{{out:*}}"

    def outcome_key_of(self, key: bytes | str) -> tuple[str, str] | None:
        """(offer id, day) of an ``outcomes`` key (inverse of ``outcomes``), None for another key."""
        text = _text(key)
        head = f"{self.prefix}:out:{{out:"
        if not text.startswith(head) or not text.endswith("}"):
            return None
        offer_id, sep, day = text[len(head) : -1].rpartition(":")
        return (offer_id, day) if sep and offer_id and len(day) == DAY_LENGTH else None

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
        """HASH: ``<code>:<generation>`` of a snapshot being loaded -> JSON (audience, heartbeat...).

        Written by audience_sync; servers read its field names only, to know the codes a load writes.
        """
        return f"{self.prefix}:{REGISTRY_TAG}:pending"

    @property
    def audience_events(self) -> str:
        """STREAM: membership change events (the default stream ``audience-sync stream`` reads)."""
        return f"{self.prefix}:audience-events"

    @property
    def write_probe(self) -> str:
        """STRING with a short TTL: ``audience-sync receive``'s readiness check (``GET /health``) writes it to
        learn whether Redis takes writes (not full: OOM; not a replica: READONLY)."""
        return f"{self.prefix}:{{health}}:write-probe"

    # -- audience-sync watch (under the registry's tag: a cutover checks the lease and writes the ledger) --
    def watch_ledger(self, name: str) -> str:
        """HASH: object path -> JSON record (ETag/size, outcome, reason) of the files a watcher saw."""
        return f"{self.prefix}:{REGISTRY_TAG}:watch:{name}:files"

    def watch_lease(self, name: str) -> str:
        """STRING with a TTL: ``<token> <owner>`` of the one watcher of ``name`` allowed to apply files."""
        return f"{self.prefix}:{REGISTRY_TAG}:watch:{name}:lease"

    def watch_fence(self, name: str) -> str:
        """STRING (integer): the last lease token handed out; each acquisition takes the next one."""
        return f"{self.prefix}:{REGISTRY_TAG}:watch:{name}:fence"

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
