"""What each offer achieved: proposals and feedback events per offer, placement, experiment variant and day. Pure.

Counted in Redis (``inbound_common.keys`` ``outcomes``: one hash per offer and
day, in the ruleset's time zone). Proposals are tallied here, in each worker,
and added by a background flush (``decision.service.outcomes``): a decision
never waits for them. Events are counted by ``count_outcomes.lua`` in the
round trip that records them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from decision.core.periods import day_span
from decision.core.types import Decision
from decision.rules.types import DECISION

# (offer id, day) -> outcome field -> count
Tally = dict[tuple[str, str], dict[str, int]]
OUTCOME_SEPARATOR: Final = "|"  # no id of the rule language (ID_PATTERN) holds one


def outcome_field(version: str, placement_id: str, experiment_id: str, variant: str, counted: str) -> str:
    """Field of an offer-day's outcome counters (``KeySpace.outcomes``): ruleset version, placement,
    experiment and variant ("" without), counted thing (``decision`` for a proposal, ``impression``,
    ``click``, ``dismiss``, ``custom:<type>``)."""
    return OUTCOME_SEPARATOR.join((version, placement_id, experiment_id, variant, counted))


def outcome_field_parts(field: bytes | str) -> tuple[str, str, str, str, str] | None:
    """Inverse of ``outcome_field``; None for a field of another shape."""
    parts = (field.decode() if isinstance(field, bytes) else field).split(OUTCOME_SEPARATOR)
    if len(parts) != 5:
        return None
    return parts[0], parts[1], parts[2], parts[3], parts[4]


class DayClock:
    """The day (``YYYY-MM-DD``) of a time in one zone, recomputed only when a day ends."""

    def __init__(self, time_zone: str) -> None:
        self.time_zone = time_zone
        self._day, self._start, self._end = "", 0, 0

    def day(self, now_ms: int) -> tuple[str, int]:
        """The day containing ``now_ms`` and when it ends (epoch ms)."""
        if not self._start <= now_ms < self._end:
            self._day, self._start, self._end = day_span(self.time_zone, now_ms)
        return self._day, self._end


@dataclass(slots=True)
class ProposalTally:
    """Proposals counted in memory until the next flush: bounded by offers x placements x variants x days."""

    counts: Tally = field(default_factory=dict)
    ends: dict[str, int] = field(default_factory=dict)  # day -> when it ends (epoch ms), for the keys' TTLs
    _clocks: dict[str, DayClock] = field(default_factory=dict)

    def add(self, decision: Decision, time_zone: str, now_ms: int) -> None:
        """Count every item of the decision (fallbacks too: they were shown)."""
        clock = self._clocks.get(time_zone)
        if clock is None:
            clock = self._clocks[time_zone] = DayClock(time_zone)
        day, end = clock.day(now_ms)
        self.ends[day] = end
        version = decision.ruleset_version
        for proposition in decision.propositions:
            for item in proposition.items:
                name = outcome_field(version, proposition.placement_id, item.experiment_id, item.variant, DECISION)
                fields = self.counts.setdefault((item.offer_id, day), {})
                fields[name] = fields.get(name, 0) + 1

    def take(self) -> tuple[Tally, dict[str, int]]:
        """What was counted since the last take (the tally starts again empty)."""
        counts, ends = self.counts, self.ends
        self.counts, self.ends = {}, {}
        return counts, ends

    def give_back(self, counts: Tally, ends: Mapping[str, int]) -> None:
        """Counts a failed flush did not add: kept for the next one."""
        for key, fields in counts.items():
            mine = self.counts.setdefault(key, {})
            for name, n in fields.items():
                mine[name] = mine.get(name, 0) + n
        for day, end in ends.items():
            self.ends.setdefault(day, end)


def event_digest(profile_id: str, event_id: str) -> str:
    """The event's name in the outcome dedupe hash (64 bits: collisions negligible within an offer-day)."""
    raw = f"{profile_id}\x00{event_id}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def token_digest(profile_id: str, decision_id: str, placement_id: str, counted: str) -> str:
    """A tracking token's count of one event type in the outcome dedupe hash of its offer (the offer is the key's):
    set once, so a token counts each type once there. Never equal to an ``event_digest`` (ids hold no NUL)."""
    raw = f"{profile_id}\x00{decision_id}\x00{placement_id}\x00{counted}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One counter: an offer's count of one thing on one day, in one placement and variant."""

    day: str
    offer_id: str
    version: str
    placement_id: str
    experiment_id: str
    variant: str
    counted: str  # ``decision`` (proposals), ``impression``, ``click``, ``dismiss``, ``custom:<type>``
    count: int


def rows_of(offer_id: str, day: str, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> Iterable[OutcomeRow]:
    """The rows of one ``outcomes`` hash as Redis returns it (fields of another shape are skipped)."""
    for name, value in raw.items():
        parts = outcome_field_parts(name)
        if parts is not None:
            yield OutcomeRow(day, offer_id, *parts, int(value))
