"""Experiments (decision/core/experiments.py), pure: deterministic, uniform assignment; sticky and learned
variants; variants and holdouts in decisions. Over gRPC and Redis: tests/decision/service/test_reservations.py
(holdout stand-ins with counters) and test_decider.py (the retail example)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from decision.core.counters import STICKY_PREFIX
from decision.core.experiments import assign, choose, point, split_sticky
from decision.core.learning import Learner, Rates
from decision.core.stats import chi_square_sf as chi_square_p_value  # one implementation: the report's
from decision.rules.types import Allocation, Experiment, HoldoutServes, Location, Ranking, Variant
from tests.decision.core.profiles import HEAD, Profiles

HERE = Location("t.yaml", 1)


def test_the_p_value_matches_published_quantiles() -> None:
    # chi-square tables: the 95th percentile for 1 and 5 degrees of freedom, the 99th for 10.
    assert abs(chi_square_p_value(3.841459, 1) - 0.05) < 1e-6
    assert abs(chi_square_p_value(11.070498, 5) - 0.05) < 1e-6
    assert abs(chi_square_p_value(23.209251, 10) - 0.01) < 1e-6
    assert abs(chi_square_p_value(0.554300, 5) - 0.99) < 1e-6


EXPERIMENT = Experiment(
    "home-copy-2026",
    (Variant("control", 2), Variant("urgent", 1), Variant("playful", 1)),
    holdout_weight=1,
    holdout_serves=HoldoutServes.FALLBACK,
    location=HERE,
)


def test_assignment_is_uniform_over_100k_profiles() -> None:
    profiles = 100_000
    seen = Counter(
        (variant.id if (variant := assign(EXPERIMENT, f"profile-{n}")) else "holdout") for n in range(profiles)
    )
    weights = {"holdout": 1, "control": 2, "urgent": 1, "playful": 1}
    expected = {name: profiles * w / 5 for name, w in weights.items()}
    statistic = sum((seen[name] - expected[name]) ** 2 / expected[name] for name in weights)
    assert chi_square_p_value(statistic, len(weights) - 1) > 0.01, seen
    # Points themselves are uniform too, over 100 equal buckets.
    buckets = Counter(point("other-experiment", f"profile-{n}", 100) for n in range(profiles))
    statistic = sum((buckets[b] - profiles / 100) ** 2 / (profiles / 100) for b in range(100))
    assert chi_square_p_value(statistic, 99) > 0.01


POINT_1001 = 2417644365
POINT_1002 = 2940181429
HOME_POINTS = [244, 227, 195, 826, 160]


def test_assignment_is_stable_across_processes_and_releases() -> None:
    # Fixed vectors (the top 32 bits of BLAKE2b-64 of "exp\0<profile>"): a change here would
    # reshuffle every running experiment.
    assert point("exp", "p-1001", 2**32) == POINT_1001
    assert point("exp", "p-1002", 2**32) == POINT_1002
    assert [point("home-copy-2026", f"p-{n}", 1000) for n in range(5)] == HOME_POINTS


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_experiments_assign_independently(first_id: str, profile: str) -> None:
    # Same profile, another experiment id: an independent point (no shared prefix effect).
    assert 0 <= point(first_id, profile, 1000) < 1000
    assert assign(EXPERIMENT, profile) == assign(EXPERIMENT, profile)


AUTO = Experiment("auto", (Variant("a", 1), Variant("b", 1), Variant("off", 0)), 1, HoldoutServes.FALLBACK, HERE,
                  Allocation.AUTO, Ranking(per="decision", min_exposure=10))  # fmt: skip


def test_an_auto_experiment_keeps_the_variant_seen_else_learns_else_weighs() -> None:
    profile = next(f"p{n}" for n in range(100) if assign(AUTO, f"p{n}") is not None)
    held = next(f"p{n}" for n in range(100) if assign(AUTO, f"p{n}") is None)
    learner = Learner(Rates(variants={("auto", "a"): {"decision": 100, "click": 1},
                                      ("auto", "b"): {"decision": 100, "click": 99}}), random.Random(1))  # fmt: skip
    assert choose(AUTO, held, {"auto": "a"}, learner) is None  # the holdout stays by weight
    assert choose(AUTO, profile, {"auto": "a"}, learner) == Variant("a", 1)  # sticky
    assert choose(AUTO, profile, {"auto": "off"}, learner) == Variant("b", 1)  # a variant switched off is not kept
    assert choose(AUTO, profile, {}, learner) == Variant("b", 1)  # learned
    assert choose(AUTO, profile, {}, None) == assign(AUTO, profile)  # nothing learned yet: by weight
    weighed = Experiment("w", AUTO.variants, 1, HoldoutServes.FALLBACK, HERE)
    assert choose(weighed, profile, {"w": "a"}, learner) == assign(weighed, profile)  # weights ignore the rest


def test_the_sticky_variants_are_read_apart_from_the_counters() -> None:
    raw = {b"o|x|decision": b"1,2", f"{STICKY_PREFIX}auto".encode(): b"b"}
    assert split_sticky(raw) == ({b"o|x|decision": b"1,2"}, {"auto": "b"})


OFFERS = (
    HEAD
    + """  - {id: side_fb, placements: [side], priority: -100, eligibility: {audiences: {all: [nobody]}}}
  - id: hero
    placements: [banner, side]
    priority: 20
    content: {title: Plain}
    experiment:
      id: hero-copy
      variants:
        - {id: plain, weight: 1}
        - {id: bold, weight: 1, content: {title: BOLD}}
      holdout: {weight: 1, serves: fallback}
  - id: quiet
    placements: [side]
    priority: 20
    experiment:
      id: quiet-test
      variants: [{id: shown, weight: 1}]
      holdout: {weight: 1, serves: nothing}
  - {id: other, placements: [side], priority: 10}
"""
)


def test_offer_experiments_in_decisions() -> None:
    profiles = Profiles.of(OFFERS)
    hero, quiet = (profiles.ruleset.offers[o].experiment for o in ("hero", "quiet"))
    assert hero is not None and quiet is not None
    seen: Counter[str] = Counter()
    for n in range(60):
        profile = f"user-{n}"
        decision = profiles.decide(0.0, profile, ("banner", "side"))
        [banner] = decision.propositions[0].items
        variant = assign(hero, profile)
        assert (banner.experiment_id, banner.variant) == ("hero-copy", variant.id if variant else "holdout")
        if variant is None:  # the holdout sees the placement's fallback in the offer's place
            assert banner.offer_id == "fb" and banner.fallback
        else:
            assert banner.offer_id == "hero"
            assert banner.content_json == ('{"title":"BOLD"}' if variant.id == "bold" else '{"title":"Plain"}')
        side = [(i.offer_id, i.variant) for i in decision.propositions[1].items]
        if assign(quiet, profile) is not None:
            assert ("quiet", "shown") in side
        else:  # "nothing": the held-out offer is left out and the next one takes its place
            assert side == [("other", "")]
        again = profiles.decide(0.0, profile, ("banner", "side"))  # stable: asked again, the same answer
        assert [(i.offer_id, i.variant) for p in again.propositions for i in p.items] == [
            (i.offer_id, i.variant) for p in decision.propositions for i in p.items
        ]
        seen[banner.variant] += 1
    assert set(seen) == {"plain", "bold", "holdout"}


def test_a_placement_experiment_varies_the_ranking_and_holds_out() -> None:
    profiles = Profiles.of(
        """
attributes: {cart_value: number}
placements:
  - id: banner
    channels: [web]
    max_items: 2
    fallback: fb
    score: "offer.margin"
    experiment:
      id: ranking-test
      variants:
        - {id: by_margin, weight: 1}
        - {id: by_fit, weight: 1, score: "0 - max(offer.price - context.cart_value, context.cart_value - offer.price)"}
      holdout: {weight: 1, serves: nothing}
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: cheap, placements: [banner], attributes: {margin: 5, price: 20}}
  - {id: pricey, placements: [banner], attributes: {margin: 40, price: 200}}
"""
    )
    experiment = profiles.ruleset.placements["banner"].experiment
    assert experiment is not None
    found = set()
    for n in range(40):
        profile = f"visitor-{n}"
        [proposition] = profiles.decide(0.0, profile, context={"cart_value": 25.0}).propositions
        variant = assign(experiment, profile)
        assert (proposition.experiment_id, proposition.variant) == (
            "ranking-test",
            variant.id if variant else "holdout",
        )
        got = [(i.offer_id, i.score) for i in proposition.items]
        if variant is None:
            assert got == [] and not proposition.fallback  # holdout: nothing at all
        elif variant.id == "by_margin":
            assert got == [("pricey", 40.0), ("cheap", 5.0)]
        else:
            assert got == [("cheap", -5.0), ("pricey", -175.0)]
        assert all(i.experiment_id == "ranking-test" for i in proposition.items)
        found.add(proposition.variant)
    assert found == {"by_margin", "by_fit", "holdout"}
