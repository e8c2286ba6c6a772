"""The rule language's domain types: what a validated ruleset is made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from decision.rules.formula import Formula
from decision.rules.patterns import PROFILE_SCOPE
from decision.rules.templates import ContentTemplate

# A scalar value in a context or a rule operand. Numbers are always float:
# YAML ints and protobuf doubles compare alike.
Scalar = str | float | bool
ContextValue = str | float | bool | tuple[Scalar, ...]
Context = Mapping[str, ContextValue]


class Op(StrEnum):
    """Comparison operators of a context predicate."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    EXISTS = "exists"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"


class AttrType(StrEnum):
    """Types a context attribute may be declared with (``attributes:``)."""

    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    LIST = "list"


class ProfileAttrType(StrEnum):
    """Types a profile attribute may be declared with (``profile_attributes:``); stored in Redis with
    the same names (inbound_common.codecs). A timestamp is compared as a number: epoch seconds."""

    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    LIST = "list"

    @property
    def rule_type(self) -> AttrType:
        """How conditions and formulas see it."""
        return AttrType.NUMBER if self is ProfileAttrType.TIMESTAMP else AttrType(self.value)


def shown(attribute: str) -> str:
    """How a rule writes the attribute: ``profile.<name>`` or ``context.<name>``."""
    return attribute if attribute.startswith(PROFILE_SCOPE) else f"context.{attribute}"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a piece of a ruleset was written, for error messages."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Predicate:
    """``context.<attribute> <op> <operand>``, or ``profile.<name> ...`` (``attribute`` then holds
    the ``profile.`` prefix: the key it has in the context the rules see).

    Every operator but ``exists`` is false when the attribute is absent or has
    another type than the operand (no coercion: ``"1"`` is not ``1``).
    """

    attribute: str
    op: Op
    operand: Scalar | tuple[Scalar, ...]
    location: Location = field(compare=False)

    def __str__(self) -> str:
        return f"{shown(self.attribute)} {self.op} {self.operand!r}"


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition


Condition = Predicate | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True)
class AudienceRule:
    """Audience membership required: all of, at least one of, none of."""

    all: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()

    def referenced(self) -> tuple[str, ...]:
        return self.all + self.any + self.none


@dataclass(frozen=True, slots=True)
class Schedule:
    """Active from ``start`` (inclusive) to ``end`` (exclusive), epoch seconds."""

    start: float | None = None
    end: float | None = None

    def contains(self, now: float) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)


def utc_iso(epoch: float, timespec: str = "auto") -> str:
    """A moment as the project writes it (schedules, lint warnings, explanations, the CLI): ISO 8601 in UTC, ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EligibilityRule:
    """One way for an offer to qualify; an offer qualifies when any of its rules does."""

    name: str
    audiences: AudienceRule
    condition: Condition | None
    schedule: Schedule
    location: Location = field(compare=False)


# What a cap or a contact policy counts: a decision that proposes the offer
# (the default), or a feedback event: impression, click, dismiss, or
# "custom:<name>" for a custom event type.
DECISION: Final = "decision"
IMPRESSION: Final = "impression"
CLICK: Final = "click"
DISMISS: Final = "dismiss"
CUSTOM_PREFIX: Final = "custom:"


class PeriodKind(StrEnum):
    LIFETIME = "lifetime"
    ROLLING = "rolling"  # the last ``seconds``
    DAY = "day"  # calendar periods, in ``time_zone``; weeks start on Monday
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    seconds: int = 0
    time_zone: str = "UTC"


class CapScope(StrEnum):
    PROFILE = "profile"  # at most ``max`` for each profile
    TOTAL = "total"  # at most ``max`` across all profiles


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``max`` counted events (``counts``) within ``period``, per profile or in total."""

    max: int
    scope: CapScope
    period: Period
    counts: str
    location: Location = field(compare=False)


@dataclass(frozen=True, slots=True)
class Suppression:
    """Not proposed for ``seconds`` after the latest dismissal, once the profile has dismissed it
    ``dismissals`` times (within ``within_seconds`` when set)."""

    dismissals: int
    seconds: int
    within_seconds: int | None
    location: Location = field(compare=False)


class HoldoutServes(StrEnum):
    FALLBACK = "fallback"
    NOTHING = "nothing"


HOLDOUT: Final = "holdout"


@dataclass(frozen=True, slots=True)
class Variant:
    id: str
    weight: int
    # Offer experiments: the variant's content (None: the offer's own).
    content_json: str | None = None
    # Placement experiments: the variant's ranking formula (None: the placement's own).
    score: Formula | None = None
    # Offer experiments: the variant's content with placeholders (None: ``content_json`` as it is).
    template: ContentTemplate | None = None


class Allocation(StrEnum):
    WEIGHTS = "weights"  # a hash of (profile, experiment id) over the weights
    AUTO = "auto"  # Thompson sampling over the variants' conversion rates, sticky per profile


@dataclass(frozen=True, slots=True)
class Ranking:
    """Learned ranking (``ranking:`` of a placement, ``allocation: auto`` of an experiment): Thompson sampling.

    Successes are ``metric`` events, trials ``per`` (impressions or proposals: ``decision``), read from the
    outcome counters of the last ``days`` days; below ``min_exposure`` trials the usual order applies.
    """

    metric: str = CLICK
    per: str = IMPRESSION
    min_exposure: int = 100
    days: int = 30
    strategy: str = "thompson"


@dataclass(frozen=True, slots=True)
class Experiment:
    """Variants by weight, plus an optional holdout group; assignment is a hash of (profile, id)."""

    id: str
    variants: tuple[Variant, ...]
    holdout_weight: int
    holdout_serves: HoldoutServes
    location: Location = field(compare=False)
    # AUTO: variants chosen by Thompson sampling (the holdout still by weight), sticky per profile.
    allocation: Allocation = Allocation.WEIGHTS
    learning: Ranking | None = None

    @property
    def total_weight(self) -> int:
        return self.holdout_weight + sum(v.weight for v in self.variants)


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """At most ``max`` messages per profile per ``period`` across offers, in the matching
    channels and placements (empty: all). Fallbacks are neither counted nor limited."""

    id: str
    channels: frozenset[str]
    placements: frozenset[str]
    max: int
    period: Period
    counts: str
    location: Location = field(compare=False)

    def covers(self, channel: str, placement_id: str) -> bool:
        return (not self.channels or channel in self.channels) and (
            not self.placements or placement_id in self.placements
        )


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    placements: tuple[str, ...]
    priority: int
    content: Mapping[str, object]
    # The content serialized once at load time, as sent in responses.
    content_json: str
    rules: tuple[EligibilityRule, ...]
    # Position in the file: breaks ties between equal priorities.
    position: int
    location: Location = field(compare=False)
    caps: tuple[Cap, ...] = ()
    suppression: Suppression | None = None
    experiment: Experiment | None = None
    # Numbers that placement score formulas read as ``offer.<name>``.
    attributes: Mapping[str, float] = field(default_factory=dict)
    # The content with placeholders, rendered per decision; None: ``content_json`` is served as is.
    template: ContentTemplate | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    id: str
    channels: frozenset[str]
    max_items: int
    fallback: str
    location: Location = field(compare=False)
    # Ranks offers of equal priority (higher first); None: file order only.
    score: Formula | None = None
    experiment: Experiment | None = None
    # Thompson sampling among offers of equal priority (None: score, then file order).
    ranking: Ranking | None = None


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A validated ruleset. Offers keep their file order."""

    version: str
    placements: Mapping[str, Placement]
    offers: Mapping[str, Offer]
    attributes: Mapping[str, AttrType]
    allow_duplicates: bool
    source: str
    contact_policies: tuple[ContactPolicy, ...] = ()
    # Default time zone of calendar periods (settings.time_zone).
    time_zone: str = "UTC"
    # ``profile_attributes:``: read from the profile's hash in Redis, seen as ``profile.<name>``.
    profile_attributes: Mapping[str, ProfileAttrType] = field(default_factory=dict)

    def offers_for(self, placement_id: str) -> tuple[Offer, ...]:
        return tuple(o for o in self.offers.values() if placement_id in o.placements)
