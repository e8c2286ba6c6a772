"""What became of each offer of a requested placement, as planning decided it: typed verdicts. Pure.

Planning (decision.core.planning) is the only place that decides; a verdict is
its record of one offer in one placement — the outcome, the rank key it used,
and the evidence (which audience, condition, cap, policy, experiment, or the
offer that took the slot; why a rule failed is the reference evaluator's own
``RuleFailure``). ``decision.core.explain`` only words them.
"""

from __future__ import annotations

from dataclasses import dataclass

from decision.core.controls import PolicyReached, ProfileBlock, TotalReached
from decision.core.learning import Draw
from decision.core.types import Outcome
from decision.rules.reference import AudienceMiss, ConditionFalse, OutsideSchedule
from decision.rules.types import Offer

# Priority (higher first); in a ``ranking:`` placement, offers still being explored (below the minimum
# exposure) first, then by their Thompson draw (higher first); then score (higher first, none last), then
# position in the file.
RankKey = tuple[int, int, float, bool, float, int]


def rank_key(offer: Offer, score: float | None = None, draw: Draw | None = None) -> RankKey:
    """The one ordering of offers: by priority, then the learned draw, then the placement's score formula, then
    file order. Without a draw (no ``ranking:``, or below ``min_exposure``) the learned part is neutral."""
    value = None if draw is None else draw.value
    drawn, learned = (0, 0.0) if value is None else (1, -value)
    return (-offer.priority, drawn, learned, score is None, -(score or 0.0), offer.position)


@dataclass(frozen=True, slots=True)
class Shown:
    """Selected: its place among the items of the proposition (1-based) and how many there are."""

    position: int
    of: int


@dataclass(frozen=True, slots=True)
class InPlaceOf:
    """A fallback shown in the place of an offer held out by its experiment."""

    offer_id: str
    experiment_id: str


@dataclass(frozen=True, slots=True)
class ContentValueMissing:
    """The offer's content reads a value the decision lacks, with no default, and says ``on_missing: skip``."""

    reference: str  # profile.<name> or context.<name>


@dataclass(frozen=True, slots=True)
class HeldOut:
    experiment_id: str
    placement: bool  # the placement's experiment (else the offer's)


@dataclass(frozen=True, slots=True)
class Elsewhere:
    placement_id: str


@dataclass(frozen=True, slots=True)
class BeatenBy:
    offer_id: str
    shown: int  # items the proposition shows


@dataclass(frozen=True, slots=True)
class RefusedOnCount:
    """Fit the counters read, but not the live ones when the proposal was counted (a concurrent decision)."""


Evidence = (
    Shown
    | InPlaceOf
    | OutsideSchedule
    | AudienceMiss
    | ConditionFalse
    | ContentValueMissing
    | HeldOut
    | ProfileBlock
    | TotalReached
    | PolicyReached
    | Elsewhere
    | BeatenBy
    | RefusedOnCount
)


@dataclass(frozen=True, slots=True)
class Verdict:
    offer_id: str
    placement_id: str
    outcome: Outcome
    rank_key: RankKey  # the key planning ranked it by (verdicts of a placement come in its order)
    evidence: Evidence | None = None
    rule: str = ""  # the eligibility rule that matched, or the one whose failure is reported
    draw: Draw | None = None  # in a ``ranking:`` placement: the counts and the Thompson draw it was ranked by
