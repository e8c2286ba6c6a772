"""Thompson draws from the outcome counters (decision/core/learning.py), pure: counts, exposure, reproducibility.

Learning over real decisions and events: tests/decision/service/test_learning.py.
"""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.learning import Draw, Learner, Rates, draw
from decision.core.outcomes import OutcomeRow
from decision.core.verdicts import rank_key
from decision.rules.types import Allocation, Experiment, HoldoutServes, Location, Offer, Placement, Ranking, Variant

HERE = Location("t.yaml", 1)
PLACEMENT = Placement("banner", frozenset({"web"}), 1, "fb", HERE, ranking=Ranking(min_exposure=10))
CLICKS_PER_IMPRESSION = Ranking(min_exposure=10)


def offer(offer_id: str, position: int, priority: int = 0) -> Offer:
    return Offer(offer_id, ("banner",), priority, {}, "{}", (), position, HERE)


def experiment(*weights: int, min_exposure: int = 10) -> Experiment:
    variants = tuple(Variant(f"v{n}", w) for n, w in enumerate(weights))
    learning = Ranking(per="decision", min_exposure=min_exposure)
    return Experiment("e", variants, 0, HoldoutServes.FALLBACK, HERE, Allocation.AUTO, learning)


def test_rates_add_up_the_rows_by_offer_and_by_variant() -> None:
    rows = [
        OutcomeRow("2026-06-01", "x", "v1", "banner", "e", "a", "click", 2),
        OutcomeRow("2026-06-02", "x", "v2", "banner", "e", "a", "click", 3),
        OutcomeRow("2026-06-02", "x", "v2", "side", "", "", "impression", 7),
    ]
    rates = Rates.of(rows)
    assert rates.offers == {("banner", "x"): {"click": 5}, ("side", "x"): {"impression": 7}}
    assert rates.variants == {("e", "a"): {"click": 5}}


def test_below_the_minimum_exposure_there_is_no_draw() -> None:
    rng = random.Random(1)
    assert draw({"impression": 9, "click": 9}, CLICKS_PER_IMPRESSION, rng) == Draw(9, 9, None, "click", "impression")
    assert draw(None, CLICKS_PER_IMPRESSION, rng).value is None
    assert draw({"impression": 10}, CLICKS_PER_IMPRESSION, rng).value is not None
    assert draw({"decision": 5}, Ranking(per="decision", min_exposure=0), rng).value is not None  # 0 means 1


def test_successes_above_trials_are_capped() -> None:
    found = draw({"impression": 10, "click": 25}, CLICKS_PER_IMPRESSION, random.Random(1))
    assert (found.successes, found.trials) == (10, 10)


def test_draws_are_reproducible_under_a_seed() -> None:
    rates = Rates({("banner", "x"): {"impression": 100, "click": 10}})
    first = [Learner(rates, random.Random(42)).offer(PLACEMENT, "x") for _ in range(2)]
    assert first[0] == first[1] and first[0] is not None and first[0].value is not None


def test_a_placement_without_ranking_draws_nothing() -> None:
    plain = Placement("side", frozenset({"web"}), 1, "fb", HERE)
    assert Learner(Rates({("side", "x"): {"impression": 100}}), random.Random(1)).offer(plain, "x") is None


def test_rank_key_order_priority_then_exploring_then_draw_then_file() -> None:
    learner = Learner(Rates({("banner", "a"): {"impression": 5}, ("banner", "b"): {"impression": 50, "click": 1},
                             ("banner", "c"): {"impression": 50, "click": 40}}), random.Random(1))  # fmt: skip
    offers = [offer("a", 0), offer("b", 1), offer("c", 2), offer("top", 3, priority=5)]
    ranked = sorted(offers, key=lambda o: rank_key(o, None, learner.offer(PLACEMENT, o.id)))
    assert [o.id for o in ranked] == ["top", "a", "c", "b"]  # priority first; "a" is still being explored


def test_a_variant_is_learned_only_once_every_variant_has_its_exposure() -> None:
    counts = {("e", "v0"): {"decision": 100, "click": 90}, ("e", "v1"): {"decision": 100, "click": 1}}
    learner = Learner(Rates(variants=counts), random.Random(2))
    chosen = learner.variant(experiment(1, 1))
    assert chosen is not None and chosen[0].id == "v0" and chosen[1].successes == 90
    assert learner.variant(experiment(1, 1, 1)) is None  # v2 has no exposure yet: by weight
    off = learner.variant(experiment(0, 1))  # a variant switched off (weight 0) stays off
    assert off is not None and off[0].id == "v1"


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "200")), deadline=None)
@given(trials=st.integers(20_000, 10**7), rate=st.floats(0.0, 1.0), seed=st.integers(0, 2**32))
def test_with_many_trials_the_draw_is_close_to_the_rate(trials: int, rate: float, seed: int) -> None:
    successes = round(trials * rate)
    found = draw({"impression": trials, "click": successes}, CLICKS_PER_IMPRESSION, random.Random(seed))
    assert found.value is not None and 0.0 <= found.value <= 1.0
    assert abs(found.value - successes / trials) < 0.03  # the posterior's sd is below 0.004: 8 of them
