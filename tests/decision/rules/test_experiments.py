"""Experiments in rulesets (decision/rules/experiments.py): variants, holdout group, allocation; or located errors."""

from __future__ import annotations

import pytest

from decision.rules.experiments import AUTO_DEFAULT, MAX_VARIANTS
from decision.rules.loader import parse
from decision.rules.types import Allocation, Experiment, HoldoutServes, Ranking
from tests.decision.rules.parsed import problems

HEAD = """placements:
  - {id: banner, channels: [web], fallback: fb}
offers:
  - {id: fb, placements: [banner]}
"""


def offer_experiment(experiment: str) -> Experiment:
    ruleset, found = parse(
        (HEAD + f"  - {{id: x, placements: [banner], experiment: {experiment}}}\n").encode(), "r.yaml"
    )
    assert ruleset is not None, [str(p) for p in found]
    parsed = ruleset.offers["x"].experiment
    assert parsed is not None
    return parsed


def test_variants_holdout_and_weights() -> None:
    experiment = offer_experiment(
        "{id: e, variants: [{id: a, weight: 3}, {id: b, weight: 1, content: {title: B}}], "
        "holdout: {weight: 1, serves: nothing}}"
    )
    assert [(v.id, v.weight, v.content_json) for v in experiment.variants] == [
        ("a", 3, None),
        ("b", 1, '{"title":"B"}'),
    ]
    assert (experiment.holdout_weight, experiment.holdout_serves) == (1, HoldoutServes.NOTHING)
    assert experiment.total_weight == 5
    assert (experiment.allocation, experiment.learning) == (Allocation.WEIGHTS, None)


@pytest.mark.parametrize(
    ("allocation", "expected"),
    [
        ("weights", (Allocation.WEIGHTS, None)),
        ("auto", (Allocation.AUTO, AUTO_DEFAULT)),
        (
            "{strategy: thompson, metric: click, per: impression, min_exposure: 5, days: 7}",
            (Allocation.AUTO, Ranking("click", "impression", 5, 7)),
        ),
    ],
)
def test_allocation(allocation: str, expected: tuple[Allocation, Ranking | None]) -> None:
    experiment = offer_experiment(f"{{id: e, variants: [{{id: a, weight: 1}}], allocation: {allocation}}}")
    assert (experiment.allocation, experiment.learning) == expected


def test_auto_learns_from_proposals_by_default() -> None:
    assert AUTO_DEFAULT.per == "decision" and AUTO_DEFAULT.metric == "click"


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ("{id: e, variants: [{id: a, weight: 0}]}", "r.yaml:5: offers[x].experiment.variants: the weights add up to 0"),
        (
            "{id: e, variants: [{id: a, weight: 1}, {id: a, weight: 1}]}",
            "offers[x].experiment.variants[1].id: duplicate variant id 'a'",
        ),
        ("{id: e, variants: [{id: holdout, weight: 1}]}", "'holdout' names the holdout group"),
        (
            "{id: e, variants: [{id: a, weight: 1}], holdout: {weight: 1, serves: coupon}}",
            "offers[x].experiment.holdout.serves: unknown value 'coupon'",
        ),
        ("{id: e, variants: [{id: a, weight: 1, score: x}]}", "variants[0].score: unknown field"),
        ("{id: e, variants: [{id: a, weight: 1, content: [1]}]}", "variants[0].content"),
        ("{id: e}", "offers[x].experiment.variants: required field is missing"),
        (
            "{id: e, variants: [{id: a, weight: 1}], allocation: random}",
            "offers[x].experiment.allocation: unknown allocation 'random'",
        ),
        (
            "{id: e, variants: [{id: a, weight: 1}], allocation: {metric: click}}",
            "offers[x].experiment.allocation.strategy: required field is missing",
        ),
        (
            "{id: e, variants: [{id: a, weight: 1}], allocation: {strategy: thompson, metric: dismiss}}",
            "offers[x].experiment.allocation.metric: dismissals are failures",
        ),
    ],
)
def test_located_errors(experiment: str, expected: str) -> None:
    found = problems(HEAD + f"  - {{id: x, placements: [banner], experiment: {experiment}}}\n")
    assert any(expected in p for p in found), found


def test_every_problem_of_an_experiment_is_reported_at_once() -> None:
    found = problems(HEAD + "  - {id: x, placements: [banner], experiment: {id: e, variants: [{id: holdout, "
                     "weight: 1}], allocation: random}}\n")  # fmt: skip
    assert any("'holdout' names the holdout group" in p for p in found), found
    assert any("offers[x].experiment.allocation: unknown allocation 'random'" in p for p in found), found


def test_at_most_so_many_variants() -> None:
    variants = ", ".join(f"{{id: v{n}, weight: 1}}" for n in range(MAX_VARIANTS + 1))
    found = problems(HEAD + f"  - {{id: x, placements: [banner], experiment: {{id: e, variants: [{variants}]}}}}\n")
    assert any(f"offers[x].experiment.variants: at most {MAX_VARIANTS} variants" in p for p in found), found


def test_a_placement_experiment_varies_the_score_formula() -> None:
    text = """placements:
  - id: banner
    channels: [web]
    fallback: fb
    score: "offer.margin"
    experiment: {id: rank, variants: [{id: a, weight: 1}, {id: b, weight: 1, score: "offer.margin * -1"}]}
offers:
  - {id: fb, placements: [banner], attributes: {margin: 1}}
"""
    ruleset, found = parse(text.encode(), "r.yaml")
    assert ruleset is not None, [str(p) for p in found]
    experiment = ruleset.placements["banner"].experiment
    assert experiment is not None
    assert [v.score is None for v in experiment.variants] == [True, False]
    assert any(
        "placements[banner].experiment.variants[0].content: unknown field" in p
        for p in problems(text.replace("{id: a, weight: 1}", "{id: a, weight: 1, content: {t: 1}}"))
    )
