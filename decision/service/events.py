"""Feedback events: validate each event alone, then count the good ones once.

**Idempotence.** Each recorded event leaves a key ``ib:e:{<profile>}:<event id>``
(``SET NX`` in the same script that counts it, so "seen" and "counted" never
part) that expires after the dedupe window plus the allowed clock skew. An
event older than the window is rejected, so a retry arriving after its key
expired is refused instead of counted twice: within the window a retry is a
duplicate, after it a rejection — never a second count. Event ids are unique
per profile (the key lives in the profile's slot).

**Custom types the ruleset names.** A custom event's type must be one the active ruleset names: listed under
``custom_events:`` or counted by one of its caps, contact policies or rankings (``Ruleset.custom_event_types``).
Any other is rejected, naming ``custom_type``, before anything is written: every type counted adds a field to
its offer's outcome counters and a digest per token, so names invented by a sender (``a1`` ... ``a100000``,
each once with one token) would grow them without bound.

**One count per token and type.** A tracking token is verified for the event's
profile (its MAC covers the profile it was made for: ``decision.core.tokens``),
and counts each event type — impression, click, dismiss, each custom type — at
most once, whatever the event ids: the same script sets the type's field in
``ib:tok:{<profile>}:<decision id>`` (``HSETNX``), which lives as long as the
token is accepted (``lifetime`` past its decision, plus the skew; older tokens
are rejected), so a replay is a duplicate, never a second count. A click or a
dismissal counts its token's impression too when that was not counted (an item
clicked was shown): clicks never outnumber impressions.

Total caps counted on events are added after the profile's script, in a
second pipelined call: if the server dies between the two, that event's
total is not counted (the retry is a duplicate) — totals err low.

**Outcomes.** Each valid event is also counted in its offer's outcome
counters for its decision's day (``count_outcomes.lua``), in the same pipeline
as the profile's script: one round trip. Those counters live in the offer's
slot, not the profile's, so that script dedupes by itself, by the same rule
(digests of profile and event id, and of the token and type, kept the token
lifetime past the day): it runs for every valid event, recorded or duplicate,
and counts each once — a retry after a failure between the two calls counts
the event there, never twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

import orjson

from decision.core.controls import DeliveryControls, TotalCheck, merge_keep
from decision.core.counters import sticky_variant_field, token_event_field
from decision.core.outcomes import DayClock, event_digest, outcome_field, token_digest
from decision.core.tokens import InvalidToken, ProfileMismatch, TokenKeys, TrackingToken
from decision.core.totals import TotalsView
from decision.rules.patterns import ID_PATTERN
from decision.rules.suggest import did_you_mean
from decision.rules.types import CLICK, CUSTOM_PREFIX, DISMISS, HOLDOUT, IMPRESSION, Ranking
from decision.service.active import PreparedRuleset
from decision.settings import Limits
from decision.store.profiles import OutcomeEvent, OutcomeEvents, ProfileEvents, ProfileStore, StoreError

log = logging.getLogger(__name__)

MAX_EVENT_ID_BYTES = 128
MAX_EVENTS_PER_CALL = 500
CUSTOM = "custom"
# Event types that say the item was shown: counted, they count their token's impression too if it was not.
IMPLY_IMPRESSION: Final = frozenset({CLICK, DISMISS})
SHOWN: Final = IMPLY_IMPRESSION | {IMPRESSION}


# A protobuf Timestamp's nanos: a fraction of the second, never negative, never a whole second.
NANOS_RANGE: Final = range(1_000_000_000)


class EventOutcome(StrEnum):
    """What became of one event of a RecordEvents call (the wire's EventOutcome)."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class EventInput:
    """An event as received, not yet validated. ``kind``: impression, click, dismiss, custom, or "" (unset)."""

    event_id: str
    profile_id: str
    kind: str
    custom_type: str
    tracking_token: str
    timestamp: float | None  # epoch seconds; None when unset
    timestamp_nanos: int = 0  # the wire's nanos, which a valid timestamp keeps within NANOS_RANGE


@dataclass(frozen=True, slots=True)
class EventResult:
    event_id: str
    outcome: EventOutcome
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """A valid event: what it counts (``impression``, ``click``, ``dismiss``, ``custom:<type>``) and when."""

    index: int
    event_id: str
    profile_id: str
    counted: str
    token: TrackingToken
    at_ms: int


class EventsUnavailable(Exception):
    """Redis did not answer: nothing or only part of the batch was recorded; a retry is safe (idempotent)."""


class EventRejected(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"{field}: {reason}")


def _text(value: str, field: str, limit: int) -> str:
    if not value:
        raise EventRejected(field, "required")
    if len(value.encode()) > limit:
        raise EventRejected(field, f"longer than {limit} bytes")
    if not value.isprintable():
        raise EventRejected(field, "contains control characters")
    return value


def validate(
    index: int,
    event: EventInput,
    *,
    now: float,
    window: float,
    skew: float,
    limits: Limits,
    keys: TokenKeys,
    lifetime: float,
    custom_types: frozenset[str] = frozenset(),
) -> FeedbackEvent:
    """The valid event, or EventRejected naming the field (``events[<index>].<field>``). ``lifetime``: how long
    after its decision a token is accepted (seconds); ``custom_types``: the custom event types accepted (the active
    ruleset's ``custom_event_types``)."""
    path = f"events[{index}]"
    event_id = _text(event.event_id, f"{path}.event_id", MAX_EVENT_ID_BYTES)
    profile_id = _text(event.profile_id, f"{path}.profile_id", limits.max_profile_id_bytes)
    if not event.kind:
        raise EventRejected(f"{path}.type", "required")
    if event.kind == CUSTOM:
        if not ID_PATTERN.fullmatch(event.custom_type):
            raise EventRejected(
                f"{path}.custom_type", f"invalid custom event type {event.custom_type!r} (letters, digits, _ . : -)"
            )
        if event.custom_type not in custom_types:
            raise EventRejected(f"{path}.custom_type", _unknown_custom(event.custom_type, custom_types))
        counted = CUSTOM_PREFIX + event.custom_type
    elif event.custom_type:
        raise EventRejected(f"{path}.custom_type", "only for EVENT_TYPE_CUSTOM")
    else:
        counted = event.kind
    if not event.tracking_token:
        raise EventRejected(f"{path}.tracking_token", "required")
    try:
        token = keys.open(event.tracking_token, profile_id)
    except ProfileMismatch:
        raise EventRejected(
            f"{path}.tracking_token", f"not made for {path}.profile_id (a token of another profile), altered or forged"
        ) from None
    except InvalidToken as exc:
        raise EventRejected(f"{path}.tracking_token", str(exc)) from None
    if event.timestamp is None:
        raise EventRejected(f"{path}.timestamp", "required")
    if event.timestamp_nanos not in NANOS_RANGE:
        raise EventRejected(
            f"{path}.timestamp.nanos", f"{event.timestamp_nanos} is outside 0 to 999,999,999 (not a valid timestamp)"
        )
    if event.timestamp > now + skew:
        raise EventRejected(f"{path}.timestamp", f"in the future (more than {skew:g} s ahead of the server's clock)")
    if event.timestamp < now - window:
        raise EventRejected(
            f"{path}.timestamp", f"older than the dedupe window ({window / 3600:g} h): it could be counted twice"
        )
    at_ms = int(event.timestamp * 1000)
    if at_ms < token.decided_at_ms - skew * 1000:
        raise EventRejected(f"{path}.timestamp", "before the decision it is about")
    if now * 1000 - token.decided_at_ms > lifetime * 1000:
        raise EventRejected(
            f"{path}.tracking_token", f"expired: its decision is older than the token lifetime ({lifetime / 3600:g} h)"
        )
    return FeedbackEvent(index, event_id, profile_id, counted, token, at_ms)


def _unknown_custom(name: str, accepted: frozenset[str]) -> str:
    names = sorted(accepted)
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    known = f"it names {listed}" if names else "it names none"
    return (
        f"custom event type {name!r} is not one the active ruleset names{did_you_mean(name, sorted(accepted))} "
        f"({known}; list it under custom_events: to count it)"
    )


class EventMetrics(Protocol):
    """Where recorded events are reported (decision.observe.metrics.Metrics)."""

    def event_recorded(self, placement_id: str, counted: str) -> None: ...


def _sticky(prepared: PreparedRuleset, batch: list[FeedbackEvent]) -> tuple[dict[str, str], int]:
    """The variants of ``allocation: auto`` experiments these impressions (clicks and dismissals imply theirs)
    showed (the first per experiment), and how long to keep them (ms: the longest learning window of those
    experiments)."""
    sticky: dict[str, str] = {}
    ttl = 0
    for e in batch:
        experiment = prepared.auto.get(e.token.experiment_id) if e.token.experiment_id else None
        if experiment is None or e.counted not in SHOWN or e.token.variant == HOLDOUT:
            continue
        sticky.setdefault(sticky_variant_field(experiment.id), e.token.variant)
        ttl = max(ttl, (experiment.learning or Ranking()).days * 86_400_000)
    return sticky, ttl


def _outcome_event(e: FeedbackEvent) -> OutcomeEvent:
    """What count_outcomes.lua counts for an event: its digests and field, and for a click or a dismissal its
    token's impression (counted with it if it was not)."""
    token = e.token
    variant = (token.ruleset_version, token.placement_id, token.experiment_id, token.variant)
    implied = ("", "")
    if e.counted in IMPLY_IMPRESSION:
        implied = (
            token_digest(e.profile_id, token.decision_id, token.placement_id, IMPRESSION),
            outcome_field(*variant, IMPRESSION),
        )
    return OutcomeEvent(
        event_digest(e.profile_id, e.event_id),
        token_digest(e.profile_id, token.decision_id, token.placement_id, e.counted),
        outcome_field(*variant, e.counted),
        *implied,
    )


class EventRecorder:
    """Validates and records batches of events; the totals view learns the new total counts."""

    def __init__(
        self,
        store: ProfileStore,
        totals: TotalsView,
        *,
        window: float,
        skew: float,
        limits: Limits,
        keys: TokenKeys,
        lifetime: float,
        outcome_retention: float = 90 * 86_400.0,
    ) -> None:
        self.keys = keys
        self.outcome_retention_ms = int(outcome_retention * 1000)
        self._days: dict[str, DayClock] = {}
        self.metrics: EventMetrics | None = None
        self.store = store
        self.totals = totals
        self.window = window
        self.skew = skew
        self.limits = limits
        self.lifetime = lifetime

    async def record(self, prepared: PreparedRuleset, events: Sequence[EventInput], now: float) -> list[EventResult]:
        """One result per event, in order. Raises a store error (nothing half-counted) when Redis fails."""
        results: list[EventResult | None] = [None] * len(events)
        by_profile: dict[str, list[FeedbackEvent]] = {}
        for index, event in enumerate(events):
            try:
                valid = validate(
                    index, event, now=now, window=self.window, skew=self.skew, limits=self.limits, keys=self.keys,
                    lifetime=self.lifetime, custom_types=prepared.custom_events,
                )  # fmt: skip
            except EventRejected as exc:
                results[index] = EventResult(event.event_id, EventOutcome.REJECTED, str(exc))
                continue
            by_profile.setdefault(valid.profile_id, []).append(valid)
        controls = prepared.controls
        batches = [self._profile_events(prepared, profile_id, batch, now) for profile_id, batch in by_profile.items()]
        outcomes = self._outcomes(prepared, [e for batch in by_profile.values() for e in batch], now)
        replies, _ = await self.store.record_events(batches, outcomes)
        recorded: list[FeedbackEvent] = []
        for batch, reply in zip(by_profile.values(), replies, strict=True):
            for valid, flag in zip(batch, reply, strict=True):
                results[valid.index] = EventResult(
                    valid.event_id, EventOutcome.RECORDED if flag else EventOutcome.DUPLICATE
                )
                counted = [valid] if flag else []
                if flag == 2:  # its token's impression was counted with it (implied)
                    counted.append(dataclasses.replace(valid, counted=IMPRESSION))
                recorded.extend(counted)
                if self.metrics is not None:
                    for e in counted:
                        self.metrics.event_recorded(e.token.placement_id, e.counted)
        await self._count_totals(controls, recorded)
        return [r for r in results if r is not None]

    def _token_ttl_ms(self, token: TrackingToken, now: float) -> int:
        """How long a token's counts must be kept: as long as it is accepted (its lifetime past its decision)."""
        return max(1, token.decided_at_ms + int((self.lifetime + self.skew) * 1000) - int(now * 1000))

    def _profile_events(
        self, prepared: PreparedRuleset, profile_id: str, batch: list[FeedbackEvent], now: float
    ) -> ProfileEvents:
        """What record_events.lua needs for one profile's events (each with its token's field, and for a click or a
        dismissal its token's impression field and the counters that impression adds to)."""
        controls = prepared.controls
        decisions: dict[str, int] = {}  # decision id -> its 1-based index among the batch's decision keys
        token_ttls: list[int] = []
        rows: list[list[object]] = []
        written: list[str] = []
        for e in batch:
            token = e.token
            if token.decision_id not in decisions:
                decisions[token.decision_id] = len(decisions) + 1
                token_ttls.append(self._token_ttl_ms(token, now))
            names = controls.event_fields(token.offer_id, e.counted, token.channel, token.placement_id)
            implied_field = ""
            implied: tuple[str, ...] = ()
            if e.counted in IMPLY_IMPRESSION:
                implied_field = token_event_field(token.placement_id, token.offer_id, IMPRESSION)
                implied = controls.event_fields(token.offer_id, IMPRESSION, token.channel, token.placement_id)
            written += names
            written += implied
            rows.append([
                e.at_ms, list(names), decisions[token.decision_id],
                token_event_field(token.placement_id, token.offer_id, e.counted), implied_field, list(implied),
            ])  # fmt: skip
        sticky, sticky_ttl = _sticky(prepared, batch)
        payload = orjson.dumps(
            {
                "seen_ttl": int((self.window + self.skew) * 1000),
                "ttl": controls.retention_ms,
                "keep": merge_keep(written, controls.keep),
                "events": rows,
                "token_ttls": token_ttls,
                "sticky": sticky,
                "sticky_ttl": max(sticky_ttl, controls.retention_ms),
            }
        )
        return ProfileEvents(profile_id, [e.event_id for e in batch], list(decisions), payload)

    def _outcomes(self, prepared: PreparedRuleset, events: list[FeedbackEvent], now: float) -> list[OutcomeEvents]:
        """The events grouped by offer and day (of their decision, in the ruleset's zone) for count_outcomes.lua:
        all of a token's events count in one hash, so its click is never counted without its impression."""
        zone = prepared.ruleset.time_zone
        clock = self._days.get(zone)
        if clock is None:
            clock = self._days[zone] = DayClock(zone)
        now_ms = int(now * 1000)
        kept_ms = int((self.lifetime + self.skew) * 1000)
        groups: dict[tuple[str, str], tuple[int, list[OutcomeEvent]]] = {}
        for e in events:
            day, end = clock.day(e.token.decided_at_ms)
            groups.setdefault((e.token.offer_id, day), (end, []))[1].append(_outcome_event(e))
        return [
            OutcomeEvents(offer, day, end - now_ms + self.outcome_retention_ms, end - now_ms + kept_ms, pairs)
            for (offer, day), (end, pairs) in groups.items()
        ]

    async def _count_totals(self, controls: DeliveryControls, recorded: list[FeedbackEvent]) -> None:
        per_offer: dict[str, dict[TotalCheck, int]] = {}
        for event in recorded:
            for check in controls.total_checks(event.token.offer_id, event.counted, event.at_ms):
                counts = per_offer.setdefault(check.offer_id, {})
                counts[check] = counts.get(check, 0) + 1
        if not per_offer:
            return
        changes = [(tuple(counts), list(counts.values())) for counts in per_offer.values()]
        try:
            replies = await self.store.add_totals(changes)
        except StoreError as exc:  # the events are recorded (a retry is a duplicate): these totals err low
            log.warning("total caps not counted for %d recorded event(s): %r", len(recorded), exc)
            return
        for (checks, _), totals in zip(changes, replies, strict=True):
            for check, total in zip(checks, totals, strict=True):
                self.totals.record(check, total)
