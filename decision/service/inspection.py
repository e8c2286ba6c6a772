"""One profile for people: as Redis holds it, with its caps and contact policies as a ruleset counts them.

``decision profile`` prints it; the console (issue 23) shows the same object. Memberships and
attributes are decoded by ``decision.store.inspection``; the counters by the ruleset's delivery
controls (``DeliveryControls.usage``: the decision's own arithmetic). Without a ruleset (none given,
none published) the counters are shown as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from decision.core.controls import DeliveryControls, Times, Usage, parse_times, period_text
from decision.core.counters import STICKY_PREFIX
from decision.rules.types import Cap, ContactPolicy, Ruleset
from decision.service.rulesets import NoPublishedRuleset, active_entry, parse_published
from decision.store.connect import AnyRedis
from decision.store.control import ControlStore
from decision.store.inspection import StoredProfile, read_stored_profile
from inbound_common.keys import KeySpace


@dataclass(frozen=True, slots=True)
class ProfileView:
    stored: StoredProfile
    # The ruleset the counters are read with (None: none was given or published).
    ruleset_version: str | None
    controls: tuple[Usage, ...]
    # ``allocation: auto`` experiments: the variant the profile keeps.
    variants: Mapping[str, str]
    # Counter fields the ruleset does not read (another ruleset's, or all of them without one): their times.
    unread_counters: Mapping[str, Times]

    def to_json(self) -> dict[str, Any]:
        stored = self.stored
        return {
            "profile": stored.profile_id,
            "found": stored.found,
            "read_at": stored.read_at,
            "keys": list(stored.keys),
            "registry_version": stored.registry_version,
            "identity_namespaces": list(stored.identity_namespaces),
            "audiences": [
                {
                    "audience": m.audience_id,
                    "name": m.name,
                    "code": m.code,
                    "generation": m.generation,
                    "active_generation": m.active_generation,
                    "state": m.state.value,
                    "expires_at": m.expires_at,
                    "last_change": None if m.last_change is None else {"at": m.last_change[0], "op": m.last_change[1]},
                }
                for m in stored.memberships
            ],
            "attributes": [
                {
                    "name": a.name,
                    "value": list(a.value) if isinstance(a.value, tuple) else a.value,
                    "type": a.type,
                    "event_time": a.event_time,
                    "snapshot": None
                    if a.snapshot is None
                    else {"audience": a.snapshot[0], "code": a.snapshot[1], "generation": a.snapshot[2]},
                    "state": a.state.value,
                }
                for a in stored.attributes
            ],
            "counters": {
                "ruleset": self.ruleset_version,
                "expires_in": None if stored.counters_ttl_ms is None else stored.counters_ttl_ms / 1000,
                "controls": [usage_json(u) for u in self.controls],
                "variants": dict(self.variants),
                "not_read": {name: [t / 1000 for t in times] for name, times in self.unread_counters.items()},
            },
        }


def usage_json(usage: Usage) -> dict[str, Any]:
    control = usage.control
    return {
        "kind": usage.kind,
        "offer": usage.offer_id,
        "policy": control.id if isinstance(control, ContactPolicy) else None,
        "field": usage.field,
        "counts": control.counts if isinstance(control, Cap | ContactPolicy) else "dismiss",
        "period": period_text(control.period) if isinstance(control, Cap | ContactPolicy) else None,
        "count": usage.count,
        "max": usage.limit,
        "since": usage.since_ms / 1000,
        "reached": usage.reached,
        "until": None if usage.until_ms is None else usage.until_ms / 1000,
    }


async def published_ruleset(control: ControlStore) -> Ruleset | None:
    """The active published ruleset, parsed (not compiled); None when nothing is published. Raises RulesetInvalid."""
    try:
        return parse_published(await active_entry(control))
    except NoPublishedRuleset:
        return None


async def inspect_profile(
    client: AnyRedis, keys: KeySpace, profile_id: str, *, ruleset: Ruleset | None, now: float
) -> ProfileView:
    """Read one profile id (one pipeline) and explain it; ``ruleset`` counts its caps and policies."""
    stored = await read_stored_profile(client, keys, profile_id, now)
    variants = {
        name.removeprefix(STICKY_PREFIX): value.decode(errors="replace")
        for name, value in stored.counters.items()
        if name.startswith(STICKY_PREFIX)
    }
    times = {name: parse_times(value) for name, value in stored.counters.items() if not name.startswith(STICKY_PREFIX)}
    if ruleset is None:
        return ProfileView(stored, None, (), variants, times)
    controls = DeliveryControls.build(ruleset)
    usage = controls.usage(times, int(now * 1000))
    unread = {name: value for name, value in times.items() if name not in controls.keep}
    return ProfileView(stored, ruleset.version, usage, variants, unread)
