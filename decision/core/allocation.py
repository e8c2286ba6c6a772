"""How the learned rankings and ``allocation: auto`` experiments split the traffic now, from the outcome counts. Pure.

By Monte Carlo of the server's own code, never a second model of it: ``rounds`` times, the draws one decision
makes — ``Learner.offer`` for every offer of a ``ranking:`` placement, ordered by the one rank key
(``verdicts.rank_key``: priority, offers still exploring first, then the draw, then file order; scores aside, they
depend on the request), or ``Learner.variant`` for an auto experiment — from a ``random.Random`` with a fixed seed,
so the figures are reproducible. An arm's share is the fraction of rounds it is ranked first (assigned): the
probability it is best given the counts, within ±2·sqrt(p(1-p)/rounds) (±0.01 at 10,000 rounds). While an arm is
below ``min_exposure`` the server draws nothing for it and the usual order (exploring offers first; variants by
weight) decides: the shares say so. An auto experiment's holdout keeps its weight; a profile that saw a variant
keeps it (sticky): the shares are those of profiles not assigned yet.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from decision.core.learning import Learner, Rates, observed
from decision.core.verdicts import rank_key
from decision.rules.types import HOLDOUT, Experiment, Placement, Ranking, Ruleset
from decision.rules.types import Allocation as AllocationKind

ROUNDS = 10_000
SEED = 0
METHOD = "Monte Carlo of the server's Thompson draws (decision.core.learning), {rounds} rounds, seed {seed}"


@dataclass(frozen=True, slots=True)
class Arm:
    """One offer (variant) and the share of decisions (assignments) it gets now."""

    arm: str
    successes: int
    trials: int
    share: float
    exploring: bool = False  # below the minimum exposure: no draw yet

    def to_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "successes": self.successes, "trials": self.trials, "share": self.share,
                "exploring": self.exploring}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Allocation:
    """A ``ranking:`` placement (``kind`` placement) or an auto experiment (``kind`` experiment), now."""

    kind: str
    id: str
    learning: Ranking
    arms: tuple[Arm, ...]
    rounds: int
    seed: int
    exploring: bool = False  # an arm is below the minimum exposure: the usual order decides

    @property
    def method(self) -> str:
        return METHOD.format(rounds=self.rounds, seed=self.seed)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "metric": self.learning.metric, "per": self.learning.per,
                "min_exposure": self.learning.min_exposure, "days": self.learning.days, "method": self.method,
                "exploring": self.exploring, "arms": [a.to_json() for a in self.arms]}  # fmt: skip


def current(ruleset: Ruleset, rates: Rates, *, rounds: int = ROUNDS, seed: int = SEED) -> tuple[Allocation, ...]:
    """Every ``ranking:`` placement and ``allocation: auto`` experiment of the ruleset, in file order."""
    found: list[Allocation] = []
    experiments: dict[str, Experiment] = {}
    for placement in ruleset.placements.values():
        if placement.ranking is not None:
            found.append(placement_allocation(ruleset, placement, rates, rounds=rounds, seed=seed))
        if placement.experiment is not None:
            experiments.setdefault(placement.experiment.id, placement.experiment)
    for offer in ruleset.offers.values():
        if offer.experiment is not None:
            experiments.setdefault(offer.experiment.id, offer.experiment)
    for experiment in experiments.values():
        if experiment.allocation is AllocationKind.AUTO:
            found.append(experiment_allocation(experiment, rates, rounds=rounds, seed=seed))
    return tuple(found)


def placement_allocation(
    ruleset: Ruleset, placement: Placement, rates: Rates, *, rounds: int = ROUNDS, seed: int = SEED
) -> Allocation:
    """The share of decisions each offer of the placement (its fallback aside) is ranked first, all eligible."""
    learning = placement.ranking or Ranking()
    offers = [o for o in ruleset.offers_for(placement.id) if o.id != placement.fallback]
    learner = Learner(rates, random.Random(seed))
    wins: Counter[str] = Counter()
    for _ in range(rounds):
        best = min(offers, key=lambda offer: rank_key(offer, None, learner.offer(placement, offer.id)))
        wins[best.id] += 1
    arms = []
    for offer in offers:
        successes, trials = observed(rates.offers.get((placement.id, offer.id)), learning)
        arms.append(Arm(offer.id, successes, trials, wins[offer.id] / rounds, trials < max(learning.min_exposure, 1)))
    return Allocation("placement", placement.id, learning, tuple(arms), rounds, seed, any(a.exploring for a in arms))


def experiment_allocation(
    experiment: Experiment, rates: Rates, *, rounds: int = ROUNDS, seed: int = SEED
) -> Allocation:
    """The share of new assignments each variant gets (the holdout by its weight)."""
    learning = experiment.learning or Ranking()
    learner = Learner(rates, random.Random(seed))
    total = experiment.total_weight
    held = experiment.holdout_weight / total if total else 0.0
    wins: Counter[str] = Counter()
    exploring = False
    for _ in range(rounds):
        chosen = learner.variant(experiment)
        if chosen is None:  # a variant below the minimum exposure: assignment by weight, as the server does
            exploring = True
            break
        wins[chosen[0].id] += 1
    arms = []
    for variant in experiment.variants:
        successes, trials = observed(rates.variants.get((experiment.id, variant.id)), learning)
        share = variant.weight / total if exploring else (1 - held) * wins[variant.id] / rounds
        arms.append(Arm(variant.id, successes, trials, share, trials < max(learning.min_exposure, 1)))
    if experiment.holdout_weight:
        successes, trials = observed(rates.variants.get((experiment.id, HOLDOUT)), learning)
        arms.append(Arm(HOLDOUT, successes, trials, held))
    return Allocation("experiment", experiment.id, learning, tuple(arms), rounds, seed, exploring)
