"""The rule language's domain types: what a validated ruleset is made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

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


@dataclass(frozen=True, slots=True)
class Location:
    """Where a piece of a ruleset was written, for error messages."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Predicate:
    """``context.<attribute> <op> <operand>``.

    Every operator but ``exists`` is false when the attribute is absent or has
    another type than the operand (no coercion: ``"1"`` is not ``1``).
    """

    attribute: str
    op: Op
    operand: Scalar | tuple[Scalar, ...]
    location: Location = field(compare=False)

    def __str__(self) -> str:
        return f"context.{self.attribute} {self.op} {self.operand!r}"


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

    @property
    def unbounded(self) -> bool:
        return self.start is None and self.end is None


@dataclass(frozen=True, slots=True)
class EligibilityRule:
    """One way for an offer to qualify; an offer qualifies when any of its rules does."""

    name: str
    audiences: AudienceRule
    condition: Condition | None
    schedule: Schedule
    location: Location = field(compare=False)


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


@dataclass(frozen=True, slots=True)
class Placement:
    id: str
    channels: frozenset[str]
    max_items: int
    fallback: str
    location: Location = field(compare=False)


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A validated ruleset. Offers keep their file order."""

    version: str
    placements: Mapping[str, Placement]
    offers: Mapping[str, Offer]
    attributes: Mapping[str, AttrType]
    allow_duplicates: bool
    source: str

    def offers_for(self, placement_id: str) -> tuple[Offer, ...]:
        return tuple(o for o in self.offers.values() if placement_id in o.placements)
