"""Run a sample of profiles through a ruleset offline (``decision simulate``, the console's comparisons). Pure.

For every profile, the offers it is eligible for are computed once by the
compiled engine (as a server would), then each placement is decided on its
own with ``decision.core.planning.decide``, as if a request asked for that placement
alone. Counted: per offer, the profiles it is eligible for and the ones it
wins; per placement, the share served by the fallback; and the offers that
never win, with what beat them. Per-profile counters (caps, contact policies)
are not applied offline. The sample is read by the callers (an NDJSON file:
``decision.cli.simulate``; Redis: ``decision.service.samples``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from decision.core.planning import decide
from decision.core.requests import check_request, with_profile
from decision.core.types import DecisionRequest, InvalidRequest, PlacementRequest
from decision.rules.engine import CompiledRuleset
from decision.rules.types import Context, ContextValue, Ruleset, Scalar

PROFILE_KEYS = ("profile", "profile_id", "id")


class SampleError(ValueError):
    """A sample line that cannot be read: ``file:line: reason``."""


@dataclass(frozen=True, slots=True)
class Profile:
    profile_id: str
    audiences: frozenset[str]
    context: Context = field(default_factory=dict)
    # The profile's attributes (``profile_attributes`` of a sample line, or its hash in Redis).
    attributes: Context = field(default_factory=dict)


def _context_value(value: object, where: str) -> ContextValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise SampleError(f"{where}: numbers must be finite")
        return number
    if isinstance(value, list):
        items: list[Scalar] = []
        for index, item in enumerate(value):
            scalar = _context_value(item, f"{where}[{index}]")
            if isinstance(scalar, tuple):
                raise SampleError(f"{where}[{index}]: nested lists are not allowed")
            items.append(scalar)
        return tuple(items)
    raise SampleError(f"{where}: expected a string, number, boolean or list, got {type(value).__name__}")


def profile_from_json(body: object, where: str) -> Profile:
    if not isinstance(body, dict):
        raise SampleError(f"{where}: expected a JSON object")
    profile_id = next((body[k] for k in PROFILE_KEYS if k in body), None)
    if not isinstance(profile_id, str) or not profile_id:
        raise SampleError(f"{where}: profile: a non-empty string is required (key profile, profile_id or id)")
    audiences = body.get("audiences", [])
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise SampleError(f"{where}: audiences: expected a list of audience ids")
    raw_context = body.get("context", {})
    if not isinstance(raw_context, dict):
        raise SampleError(f"{where}: context: expected an object")
    context = {str(k): _context_value(v, f"{where}: context.{k}") for k, v in raw_context.items()}
    raw_attributes = body.get("profile_attributes", {})
    if not isinstance(raw_attributes, dict):
        raise SampleError(f"{where}: profile_attributes: expected an object")
    attributes = {str(k): _context_value(v, f"{where}: profile_attributes.{k}") for k, v in raw_attributes.items()}
    return Profile(profile_id, frozenset(audiences), context, attributes)


@dataclass
class OfferStats:
    offer_id: str
    priority: int
    placements: tuple[str, ...]
    eligible: int = 0
    wins: Counter[str] = field(default_factory=Counter)  # by placement
    served_as_fallback: int = 0
    # Eligible for the placement but not proposed: who took the slot instead.
    beaten_by: Counter[str] = field(default_factory=Counter)

    @property
    def total_wins(self) -> int:
        return sum(self.wins.values())


@dataclass
class PlacementStats:
    placement_id: str
    fallback_offer: str
    decisions: int = 0
    fallbacks: int = 0
    winners: Counter[str] = field(default_factory=Counter)

    @property
    def fallback_share(self) -> float:
        return self.fallbacks / self.decisions if self.decisions else 0.0


@dataclass(frozen=True, slots=True)
class NeverWins:
    offer_id: str
    # "never eligible" or "always beaten"
    reason: str
    eligible: int
    beaten_by: tuple[tuple[str, int], ...]

    def describe(self) -> str:
        if self.reason == "never eligible":
            return f"{self.offer_id}: never eligible"
        beaters = ", ".join(f"{offer} ({count})" for offer, count in self.beaten_by)
        return f"{self.offer_id}: eligible for {self.eligible} profile(s), always beaten by {beaters}"


@dataclass
class Simulation:
    ruleset_version: str
    now: float
    profiles: int = 0
    skipped: list[str] = field(default_factory=list)  # profiles whose context the ruleset rejects
    offers: dict[str, OfferStats] = field(default_factory=dict)
    placements: dict[str, PlacementStats] = field(default_factory=dict)

    def never_win(self) -> list[NeverWins]:
        """Offers that no profile of the sample gets, fallback service aside."""
        result = []
        for stats in self.offers.values():
            if stats.total_wins or stats.served_as_fallback:
                continue
            reason = "always beaten" if stats.eligible else "never eligible"
            result.append(NeverWins(stats.offer_id, reason, stats.eligible, tuple(stats.beaten_by.most_common())))
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "ruleset_version": self.ruleset_version,
            "at": self.now,
            "profiles": self.profiles,
            "skipped": self.skipped,
            "offers": {
                o.offer_id: {
                    "priority": o.priority,
                    "eligible": o.eligible,
                    "wins": o.total_wins,
                    "wins_by_placement": dict(o.wins),
                    "served_as_fallback": o.served_as_fallback,
                    "beaten_by": dict(o.beaten_by),
                }
                for o in self.offers.values()
            },
            "placements": {
                p.placement_id: {
                    "decisions": p.decisions,
                    "fallbacks": p.fallbacks,
                    "fallback_share": p.fallback_share,
                    "winners": dict(p.winners),
                }
                for p in self.placements.values()
            },
            "never_win": [
                {"offer": n.offer_id, "reason": n.reason, "beaten_by": dict(n.beaten_by)} for n in self.never_win()
            ],
        }


def simulate(compiled: CompiledRuleset, profiles: Iterable[Profile], now: float) -> Simulation:
    ruleset = compiled.ruleset
    result = Simulation(ruleset.version, now)
    result.offers = {o.id: OfferStats(o.id, o.priority, o.placements) for o in ruleset.offers.values()}
    result.placements = {p.id: PlacementStats(p.id, p.fallback) for p in ruleset.placements.values()}
    requests = placement_requests(ruleset)
    now_ms = int(now * 1000)
    for profile in profiles:
        result.profiles += 1
        refused = rejected(ruleset, profile)  # the context's types (no placement asked: nothing else checked)
        if refused is not None:
            result.skipped.append(refused)
            continue
        context = request_for(ruleset, profile, "", ()).context  # as a server's rules see it
        eligible = compiled.eligible(profile.audiences, context, now)
        for offer_id in eligible:
            result.offers[offer_id].eligible += 1
        for placement_id, (channel, wanted, listed) in requests.items():
            decision = decide(
                ruleset, eligible, request_for(ruleset, profile, channel, wanted), decision_id="sim", now_ms=now_ms
            )
            _count(result, placement_id, decision.propositions[0], eligible, listed)
    return result


def placement_requests(ruleset: Ruleset) -> dict[str, tuple[str, tuple[PlacementRequest, ...], frozenset[str]]]:
    """One request per placement, on a channel it serves: placement id -> (channel, placements, its offers)."""
    return {
        p.id: (min(p.channels), (PlacementRequest(p.id),), frozenset(o.id for o in ruleset.offers_for(p.id)))
        for p in ruleset.placements.values()
    }


def rejected(ruleset: Ruleset, profile: Profile) -> str | None:
    """Why the ruleset rejects the profile's context (as a server checks it), or None."""
    try:
        check_request(ruleset, DecisionRequest(profile.profile_id, "", (), profile.context))
    except InvalidRequest as exc:
        return f"{profile.profile_id}: {exc}"
    return None


def request_for(
    ruleset: Ruleset, profile: Profile, channel: str, placements: tuple[PlacementRequest, ...]
) -> DecisionRequest:
    """The request a server would decide: the profile's context, its attributes as ``profile.<name>``."""
    request = DecisionRequest(profile.profile_id, channel, placements, profile.context)
    return with_profile(ruleset, request, profile.attributes)


def _count(
    result: Simulation, placement_id: str, proposition: Any, eligible: Mapping[str, str], listed: frozenset[str]
) -> None:
    stats = result.placements[placement_id]
    stats.decisions += 1
    if proposition.fallback:
        stats.fallbacks += 1
        result.offers[proposition.items[0].offer_id].served_as_fallback += 1
        return
    chosen = [item.offer_id for item in proposition.items]
    for offer_id in chosen:
        stats.winners[offer_id] += 1
        result.offers[offer_id].wins[placement_id] += 1
    for offer_id in eligible:
        if offer_id in listed and offer_id not in chosen:
            result.offers[offer_id].beaten_by[chosen[-1]] += 1  # the last offer ranked above it
