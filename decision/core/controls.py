"""Frequency caps, contact policies and dismissal suppression, from a profile's counters. Pure.

A profile's counters are one Redis hash (``ib:c:{<profile>}``, read together
with its memberships). Each field keeps the **latest event times** of one
thing counted — an offer's proposals, impressions, clicks, dismissals or
custom events, or the messages of a contact policy — newest last, at most
``keep`` of them, where ``keep`` is the largest limit any cap, policy or
suppression of the ruleset puts on that field. That is enough to answer every
question exactly: "at most N within a window" holds as long as fewer than N of
the kept times fall in it, whatever the window (rolling, calendar, lifetime).

Total caps (across profiles) are integers per calendar bucket in keys of
their own (``ib:total:{offer:<id>}:...``); see ``decision.core.totals``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from decision.core.counters import offer_counter_field, policy_counter_field
from decision.core.periods import bucket, bucket_end_ms, span_seconds, window_start_ms
from decision.rules.types import (
    DECISION,
    DISMISS,
    Cap,
    CapScope,
    ContactPolicy,
    Offer,
    Period,
    PeriodKind,
    Ruleset,
    Suppression,
)

# How long a profile's counters live after their last change when a lifetime cap needs them forever.
DEFAULT_RETENTION_SECONDS: Final = 400 * 86_400
# A total bucket key outlives its period by this much (late events, clock skew).
TOTAL_BUCKET_GRACE_MS: Final = 86_400_000

Times = tuple[int, ...]


def parse_times(raw: bytes | str | None) -> Times:
    """A counter field's value: comma-separated epoch milliseconds, ascending."""
    if not raw:
        return ()
    text = raw.decode() if isinstance(raw, bytes) else raw
    return tuple(int(part) for part in text.split(",") if part)


def parse_counters(raw: Mapping[bytes, bytes]) -> dict[str, Times]:
    return {key.decode(): parse_times(value) for key, value in raw.items()}


def count_since(times: Times, since_ms: int) -> int:
    """How many of the (ascending) times are at or after ``since_ms``."""
    count = 0
    for moment in reversed(times):
        if moment < since_ms:
            break
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class Check:
    """``field`` may hold at most ``limit`` times at or after ``since_ms``."""

    field: str
    limit: int
    since_ms: int
    # The cap or contact policy checked (what an explanation names); not part of the check itself.
    source: Cap | ContactPolicy | None = dataclasses.field(default=None, compare=False)

    def room(self, counters: Mapping[str, Times]) -> int:
        return self.limit - count_since(counters.get(self.field, ()), self.since_ms)


@dataclass(frozen=True, slots=True)
class TotalCheck:
    """A total cap of an offer, resolved to the counter key of the current bucket."""

    offer_id: str
    counted: str
    bucket: str
    limit: int
    # How long the bucket's key must live from the moment it is counted at (None: a lifetime total,
    # forever). Relative, not absolute: Redis's clock need not agree with ours (an injected clock).
    ttl_ms: int | None


@dataclass(frozen=True, slots=True)
class CapReached:
    """A per-profile cap whose window already holds ``count`` of its ``cap.max``."""

    cap: Cap
    count: int


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Dismissed ``count`` times, the last at ``last_ms``: not proposed for ``suppression.seconds`` after it."""

    suppression: Suppression
    count: int
    last_ms: int


# Why the profile's counters keep an offer out.
ProfileBlock = CapReached | Suppressed


@dataclass(frozen=True, slots=True)
class Usage:
    """How much of one per-profile cap, dismissal suppression or contact policy a profile's counters hold now.

    ``count`` of ``limit`` times of ``field`` fall in the window starting at ``since_ms`` (for a
    suppression: dismissals within its ``within``, counted as the decision counts them); ``reached``:
    it keeps the offer (the placement, for a policy) out now, until ``until_ms`` (None: for good, a
    lifetime cap). What ``blocked`` and ``policy_reached`` decide, read for every control at once.
    """

    control: Cap | Suppression | ContactPolicy
    offer_id: str | None  # the offer capped or suppressed; None for a contact policy
    field: str
    count: int
    limit: int
    since_ms: int
    reached: bool
    until_ms: int | None

    @property
    def kind(self) -> str:
        """``cap``, ``suppression`` or ``policy``."""
        if isinstance(self.control, Cap):
            return "cap"
        return "policy" if isinstance(self.control, ContactPolicy) else "suppression"


@dataclass(frozen=True, slots=True)
class TotalReached:
    """A total cap (across profiles) used up in its current bucket, as this server last saw it."""

    check: TotalCheck
    count: int


@dataclass(frozen=True, slots=True)
class PolicyReached:
    """A contact policy covering the placement whose window already holds ``count`` of its ``policy.max``."""

    policy: ContactPolicy
    count: int


@dataclass(frozen=True, slots=True)
class _FieldCap:
    field: str
    cap: Cap


@dataclass
class DeliveryControls:
    """A ruleset's caps, suppressions and contact policies, indexed for decisions and events."""

    # Counter field -> how many times it keeps.
    keep: dict[str, int] = field(default_factory=dict)
    profile_caps: dict[str, tuple[_FieldCap, ...]] = field(default_factory=dict)
    total_caps: dict[str, tuple[Cap, ...]] = field(default_factory=dict)
    suppressions: dict[str, Offer] = field(default_factory=dict)
    policies: tuple[ContactPolicy, ...] = ()
    # Offers with any cap or suppression: the others skip every check.
    controlled: set[str] = field(default_factory=set)
    # The counters hash's TTL after a write, in ms.
    retention_ms: int = DEFAULT_RETENTION_SECONDS * 1000

    @classmethod
    def build(cls, ruleset: Ruleset, lifetime_retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> DeliveryControls:
        controls = cls(policies=ruleset.contact_policies)
        spans: list[int | None] = []
        for offer in ruleset.offers.values():
            profile: list[_FieldCap] = []
            totals: list[Cap] = []
            for cap in offer.caps:
                if cap.scope is CapScope.TOTAL:
                    totals.append(cap)
                    continue
                name = offer_counter_field(offer.id, cap.counts)
                controls._keep(name, cap.max)
                profile.append(_FieldCap(name, cap))
                spans.append(span_seconds(cap.period))
            if profile:
                controls.profile_caps[offer.id] = tuple(profile)
            if totals:
                controls.total_caps[offer.id] = tuple(totals)
            if offer.caps or offer.suppression is not None:
                controls.controlled.add(offer.id)
            if offer.suppression is not None:
                controls.suppressions[offer.id] = offer
                controls._keep(offer_counter_field(offer.id, DISMISS), offer.suppression.dismissals)
                suppression = offer.suppression
                spans.append(suppression.seconds + (suppression.within_seconds or 0))
                if suppression.within_seconds is None:
                    spans.append(None)
        for policy in ruleset.contact_policies:
            controls._keep(policy_counter_field(policy.id), policy.max)
            spans.append(span_seconds(policy.period))
        longest = lifetime_retention_seconds if None in spans else max((s for s in spans if s), default=0)
        controls.retention_ms = max(longest, 3600) * 1000
        return controls

    def _keep(self, name: str, limit: int) -> None:
        self.keep[name] = max(self.keep.get(name, 0), limit)

    # -- decisions ----------------------------------------------------------
    def blocked(self, offer_id: str, counters: Mapping[str, Times], now_ms: int) -> ProfileBlock | None:
        """Why the profile may not get the offer now (the first reached cap, a suppression), or None."""
        return next(self.blocks(offer_id, counters, now_ms), None)

    def blocks(self, offer_id: str, counters: Mapping[str, Times], now_ms: int) -> Iterator[ProfileBlock]:
        """Every reason the profile may not get the offer now: its reached caps, then its suppression."""
        for item in self.profile_caps.get(offer_id, ()):
            cap = item.cap
            count = count_since(counters.get(item.field, ()), window_start_ms(cap.period, now_ms))
            if count >= cap.max:
                yield CapReached(cap, count)
        offer = self.suppressions.get(offer_id)
        if offer is not None and offer.suppression is not None:
            rule = offer.suppression
            times = counters.get(offer_counter_field(offer_id, DISMISS), ())
            dismissed = _suppressing(rule, times, now_ms)
            if dismissed is not None:
                yield Suppressed(rule, dismissed, times[-1])

    def usage(self, counters: Mapping[str, Times], now_ms: int) -> tuple[Usage, ...]:
        """Every per-profile cap, suppression and contact policy of the ruleset, with the profile's use of it
        (``decision profile``): offers in the ruleset's order, then the policies. Total caps count across
        profiles, in keys of their own: not here."""
        found: list[Usage] = []
        for offer_id in self.profile_caps:
            found.extend(self.cap_usage(offer_id, counters, now_ms))
        for offer_id, offer in self.suppressions.items():
            assert offer.suppression is not None
            found.append(_suppression_usage(offer.suppression, offer_id, counters, now_ms))
        found.extend(_window_usage(p, None, policy_counter_field(p.id), p.max, counters, now_ms) for p in self.policies)
        return tuple(found)

    def cap_usage(self, offer_id: str, counters: Mapping[str, Times], now_ms: int) -> tuple[Usage, ...]:
        """The offer's per-profile caps, with the profile's use of each (``until_ms``: when that cap has room)."""
        return tuple(
            _window_usage(item.cap, offer_id, item.field, item.cap.max, counters, now_ms)
            for item in self.profile_caps.get(offer_id, ())
        )

    def decision_checks(self, offer_id: str, now_ms: int) -> tuple[tuple[Check, ...], tuple[str, ...]]:
        """The profile caps counted on decision: what a proposal must fit, and the fields it adds to."""
        checks = tuple(
            Check(item.field, item.cap.max, window_start_ms(item.cap.period, now_ms), item.cap)
            for item in self.profile_caps.get(offer_id, ())
            if item.cap.counts == DECISION
        )
        return checks, tuple(dict.fromkeys(c.field for c in checks))

    def policy_checks(self, channel: str, placement_id: str, now_ms: int) -> tuple[tuple[Check, ...], tuple[str, ...]]:
        """The contact policies counted on decision that cover a placement on a channel."""
        checks = tuple(
            Check(policy_counter_field(p.id), p.max, window_start_ms(p.period, now_ms), p)
            for p in self.policies
            if p.counts == DECISION and p.covers(channel, placement_id)
        )
        return checks, tuple(c.field for c in checks)

    def policy_reached(
        self, channel: str, placement_id: str, counters: Mapping[str, Times], now_ms: int
    ) -> PolicyReached | None:
        """The first contact policy covering this placement that the counters read already fill.

        Whatever it counts: counters only grow until the proposal is counted, so a policy full
        now refuses every non-fallback item of the placement then too."""
        for policy in self.policies:
            if not policy.covers(channel, placement_id):
                continue
            since = window_start_ms(policy.period, now_ms)
            count = count_since(counters.get(policy_counter_field(policy.id), ()), since)
            if count >= policy.max:
                return PolicyReached(policy, count)
        return None

    def total_checks(self, offer_id: str, counted: str | None, now_ms: int) -> tuple[TotalCheck, ...]:
        """The offer's total caps (only those counting ``counted`` unless None), at their current bucket."""
        return tuple(
            TotalCheck(
                offer_id,
                cap.counts,
                bucket(cap.period, now_ms),
                cap.max,
                None if (end := bucket_end_ms(cap.period, now_ms)) is None else end - now_ms + TOTAL_BUCKET_GRACE_MS,
            )
            for cap in self.total_caps.get(offer_id, ())
            if counted is None or cap.counts == counted
        )

    # -- events ----------------------------------------------------------------
    def event_fields(self, offer_id: str, counted: str, channel: str, placement_id: str) -> tuple[str, ...]:
        """The counter fields an event adds its time to (only those the ruleset reads)."""
        fields: list[str] = []
        name = offer_counter_field(offer_id, counted)
        if name in self.keep:
            fields.append(name)
        for policy in self.policies:
            if policy.counts == counted and policy.covers(channel, placement_id):
                fields.append(policy_counter_field(policy.id))
        return tuple(fields)


def suppressed_until_ms(rule: Suppression, last_dismissal_ms: int) -> int:
    """The first moment a suppressed offer may be proposed again: ``rule.seconds`` after the latest dismissal."""
    return last_dismissal_ms + rule.seconds * 1000


def reopens_ms(period: Period, limit: int, times: Times, now_ms: int) -> int | None:
    """The first moment after ``now_ms`` at which the window of ``period`` holds fewer than ``limit`` of ``times``
    (a cap or contact policy has room again), with the windows of ``window_start_ms``; None: never (a lifetime)."""
    if count_since(times, window_start_ms(period, now_ms)) < limit:
        return now_ms
    if period.kind is PeriodKind.LIFETIME:
        return None
    if period.kind is PeriodKind.ROLLING:  # the window moves with the clock: room once an old time leaves it
        moments = sorted(t + period.seconds * 1000 for t in times if t + period.seconds * 1000 > now_ms)
    else:  # a calendar window starts afresh at each bucket's end
        moments, moment = [], now_ms
        for _ in range(len(times) + 1):
            end = bucket_end_ms(period, moment)
            assert end is not None
            moments.append(moment := end)
    return next((m for m in moments if count_since(times, window_start_ms(period, m)) < limit), None)


def _dismissals_since(rule: Suppression, times: Times) -> int:
    """The earliest dismissal time that counts toward a suppression, given the dismissal times (latest last)."""
    return times[-1] - rule.within_seconds * 1000 + 1 if rule.within_seconds else 0


def _suppressing(rule: Suppression, times: Times, now_ms: int) -> int | None:
    """The dismissals that suppress the offer now (``Suppressed.count``), None when it is not suppressed."""
    if not times or now_ms >= suppressed_until_ms(rule, times[-1]):
        return None
    count = count_since(times, _dismissals_since(rule, times))
    return count if count >= rule.dismissals else None


def _window_usage(
    control: Cap | ContactPolicy,
    offer_id: str | None,
    name: str,
    limit: int,
    counters: Mapping[str, Times],
    now_ms: int,
) -> Usage:
    times = counters.get(name, ())
    since = window_start_ms(control.period, now_ms)
    count = count_since(times, since)
    if count < limit:
        return Usage(control, offer_id, name, count, limit, since, False, None)
    until = reopens_ms(control.period, limit, times, now_ms)  # None: a lifetime cap, for good
    return Usage(control, offer_id, name, count, limit, since, True, until)


def _suppression_usage(rule: Suppression, offer_id: str, counters: Mapping[str, Times], now_ms: int) -> Usage:
    name = offer_counter_field(offer_id, DISMISS)
    times = counters.get(name, ())
    if not times:
        return Usage(rule, offer_id, name, 0, rule.dismissals, 0, False, None)
    since = _dismissals_since(rule, times)
    if _suppressing(rule, times, now_ms) is None:
        return Usage(rule, offer_id, name, count_since(times, since), rule.dismissals, since, False, None)
    count = count_since(times, since)
    return Usage(rule, offer_id, name, count, rule.dismissals, since, True, suppressed_until_ms(rule, times[-1]))


def period_text(period: Period) -> str:
    if period.kind.value == "rolling":
        return f"rolling {period.seconds // 3600}h"
    if period.kind.value == "lifetime":
        return "lifetime"
    return f"{period.kind.value} in {period.time_zone}"


def merge_keep(fields: Iterable[str], keep: Mapping[str, int]) -> dict[str, int]:
    """The ``keep`` of the given fields, for a script that writes them."""
    return {name: keep[name] for name in dict.fromkeys(fields) if name in keep}
