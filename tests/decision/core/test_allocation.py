"""The learned rankings' current allocation: the server's own draws, repeated, against exact Beta integrals."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate  # type: ignore[import-untyped]
from scipy import stats as sps  # type: ignore[import-untyped]

from decision.core.allocation import ROUNDS, current, experiment_allocation, placement_allocation
from decision.core.learning import Rates
from decision.rules.loader import parse
from decision.rules.types import HOLDOUT, Ruleset

RULES = """
placements:
  - id: banner
    channels: [web]
    max_items: 1
    fallback: fb
    ranking: {strategy: thompson, metric: click, per: impression, min_exposure: 50}
  - id: hero
    channels: [web]
    max_items: 1
    fallback: fb
    experiment:
      id: copy
      allocation: {strategy: thompson, metric: click, per: decision, min_exposure: 50}
      variants: [{id: plain, weight: 1}, {id: bold, weight: 3}]
      holdout: {weight: 1, serves: fallback}
offers:
  - {id: fb, placements: [banner, hero], priority: -1}
  - {id: x, placements: [banner, hero]}
  - {id: y, placements: [banner]}
"""


def ruleset(text: str = RULES) -> Ruleset:
    parsed, problems = parse(text.encode(), "t.yaml")
    assert parsed is not None, [str(p) for p in problems]
    return parsed


def p_better(a: tuple[int, int], b: tuple[int, int]) -> float:
    """P(Beta(a) > Beta(b)) exactly: the integral of a's density times b's distribution function."""
    first, second = sps.beta(a[0] + 1, a[1] - a[0] + 1), sps.beta(b[0] + 1, b[1] - b[0] + 1)
    value, _ = integrate.quad(lambda x: first.pdf(x) * second.cdf(x), 0, 1, limit=200, epsabs=1e-12)
    return min(1.0, max(0.0, float(value)))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 200), st.integers(50, 400), st.integers(0, 200), st.integers(50, 400))
def test_two_offers_share_as_the_exact_probability_of_being_best(sx: int, nx: int, sy: int, ny: int) -> None:
    sx, sy = min(sx, nx), min(sy, ny)
    rates = Rates(offers={("banner", "x"): {"impression": nx, "click": sx}, ("banner", "y"): {"impression": ny,
                                                                                           "click": sy}})  # fmt: skip
    rules = ruleset()
    allocation = placement_allocation(rules, rules.placements["banner"], rates)
    shares = {arm.arm: arm.share for arm in allocation.arms}
    exact = p_better((sx, nx), (sy, ny))
    assert abs(shares["x"] - exact) <= 4 * math.sqrt(exact * (1 - exact) / ROUNDS) + 1e-3
    assert abs(shares["x"] + shares["y"] - 1) < 1e-12
    assert placement_allocation(rules, rules.placements["banner"], rates) == allocation  # fixed seed: reproducible


def test_exploring_offers_go_first_and_priority_wins() -> None:
    rules = ruleset()
    few = Rates(offers={("banner", "x"): {"impression": 500, "click": 400}, ("banner", "y"): {"impression": 10}})
    allocation = placement_allocation(rules, rules.placements["banner"], few)
    assert allocation.exploring and {a.arm: (a.share, a.exploring) for a in allocation.arms} == {
        "x": (0.0, False),
        "y": (1.0, True),
    }
    ranked = ruleset(
        RULES.replace("  - {id: y, placements: [banner]}", "  - {id: y, placements: [banner], priority: 1}")
    )
    both = Rates(offers={("banner", "x"): {"impression": 500, "click": 400}, ("banner", "y"): {"impression": 500}})
    assert {a.arm: a.share for a in placement_allocation(ranked, ranked.placements["banner"], both).arms}["y"] == 1.0


def test_an_auto_experiment_keeps_its_holdout_and_weights_while_exploring() -> None:
    experiment = ruleset().placements["hero"].experiment
    assert experiment is not None
    exploring = experiment_allocation(experiment, Rates())
    assert exploring.exploring
    assert {a.arm: a.share for a in exploring.arms} == {"plain": 0.2, "bold": 0.6, HOLDOUT: 0.2}
    counts = {("copy", "plain"): {"decision": 400, "click": 80}, ("copy", "bold"): {"decision": 400, "click": 40}}
    learned = experiment_allocation(experiment, Rates(variants=counts))
    shares = {a.arm: a.share for a in learned.arms}
    exact = p_better((80, 400), (40, 400))
    assert abs(shares["plain"] - 0.8 * exact) < 0.01 and abs(shares[HOLDOUT] - 0.2) < 1e-12
    assert [a.kind for a in current(ruleset(), Rates(variants=counts))] == ["placement", "experiment"]
