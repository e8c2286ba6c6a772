"""Thompson sampling from the outcome counters: offers of a ``ranking:`` placement, variants of an auto experiment.

Pure: planning asks a ``Learner`` for draws; the counts it draws from are a
snapshot each worker refreshes in the background (decision.service.learning),
so a decision never reads Redis for them. Each offer (variant) with at least
``min_exposure`` trials gets a draw from Beta(successes + 1, failures + 1);
below it, no draw: the usual order applies (offers being explored rank first
among their priority, so every offer reaches ``min_exposure``; see
``decision.core.verdicts.rank_key``). Draws come from the ``random.Random``
given: a seed makes them reproducible (tests).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from decision.core.outcomes import OutcomeRow
from decision.rules.types import Experiment, Placement, Ranking, Variant

# (placement id, offer id) or (experiment id, variant) -> counted -> count
Counts = Mapping[tuple[str, str], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class Draw:
    """What ranked an offer (or chose a variant): its counts and the draw (None: below ``min_exposure``)."""

    successes: int
    trials: int
    value: float | None
    metric: str = ""
    per: str = ""

    def text(self) -> str:
        seen = f"{self.successes} {self.metric} in {self.trials} {self.per}"
        if self.value is None:
            return f"exploring: {seen} (below the minimum exposure, usual order)"
        failures = max(self.trials - self.successes, 0)
        return f"Thompson draw {self.value:.4f} from Beta({self.successes} + 1, {failures} + 1) ({seen})"


@dataclass(frozen=True, slots=True)
class Rates:
    """The outcome counts learning reads: by placement and offer, and by experiment and variant."""

    offers: Counts = field(default_factory=dict)
    variants: Counts = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[OutcomeRow]) -> Rates:
        offers: dict[tuple[str, str], dict[str, int]] = {}
        variants: dict[tuple[str, str], dict[str, int]] = {}
        for row in rows:
            mine = offers.setdefault((row.placement_id, row.offer_id), {})
            mine[row.counted] = mine.get(row.counted, 0) + row.count
            if row.experiment_id:
                theirs = variants.setdefault((row.experiment_id, row.variant), {})
                theirs[row.counted] = theirs.get(row.counted, 0) + row.count
        return cls(offers, variants)


def observed(counts: Mapping[str, int] | None, learning: Ranking) -> tuple[int, int]:
    """(successes, trials) of one arm as learning reads them (successes above trials are capped: repeated events)."""
    counts = counts or {}
    trials = counts.get(learning.per, 0)
    return min(counts.get(learning.metric, 0), trials), trials


def draw(counts: Mapping[str, int] | None, learning: Ranking, rng: random.Random) -> Draw:
    """A draw for one arm from its counts (``observed``)."""
    successes, trials = observed(counts, learning)
    if trials < max(learning.min_exposure, 1):
        return Draw(successes, trials, None, learning.metric, learning.per)
    value = rng.betavariate(successes + 1, trials - successes + 1)
    return Draw(successes, trials, value, learning.metric, learning.per)


class Learner:
    """Draws for one decision (or many: the random source runs on)."""

    def __init__(self, rates: Rates, rng: random.Random) -> None:
        self.rates = rates
        self.rng = rng

    def offer(self, placement: Placement, offer_id: str) -> Draw | None:
        """The offer's draw in a ``ranking:`` placement; None for a placement without one."""
        if placement.ranking is None:
            return None
        return draw(self.rates.offers.get((placement.id, offer_id)), placement.ranking, self.rng)

    def variant(self, experiment: Experiment) -> tuple[Variant, Draw] | None:
        """The variant with the highest draw; None while a variant is below ``min_exposure`` (use the weights)."""
        learning = experiment.learning or Ranking()
        best: tuple[Variant, Draw] | None = None
        for variant in experiment.variants:
            if variant.weight == 0:  # a variant switched off stays off
                continue
            found = draw(self.rates.variants.get((experiment.id, variant.id)), learning, self.rng)
            if found.value is None:
                return None
            if best is None or found.value > (best[1].value or 0.0):
                best = (variant, found)
        return best
