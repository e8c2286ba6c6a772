"""A placement's ``ranking:`` (decision/rules/ranking.py): parsed with its defaults, or located errors."""

from __future__ import annotations

import pytest

from decision.rules.loader import parse
from decision.rules.ranking import MAX_DAYS, MAX_MIN_EXPOSURE
from decision.rules.types import Ranking

HEAD = """placements:
  - id: banner
    channels: [web]
    fallback: fb
    ranking: {ranking}
offers:
  - {{id: fb, placements: [banner]}}
"""


def parsed(ranking: str) -> tuple[Ranking | None, list[str]]:
    ruleset, problems = parse(HEAD.format(ranking=ranking).encode(), "t.yaml")
    return (None if ruleset is None else ruleset.placements["banner"].ranking), [str(p) for p in problems]


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        ("{strategy: thompson}", Ranking()),
        ("{strategy: thompson, metric: custom:signup, per: decision, min_exposure: 0, days: 90}",
         Ranking("custom:signup", "decision", 0, 90)),
        ("{strategy: thompson, metric: interact, per: display}", Ranking("click", "impression")),  # the aliases
    ],
)  # fmt: skip
def test_a_ranking_and_its_defaults(ranking: str, expected: Ranking) -> None:
    assert parsed(ranking) == (expected, [])


@pytest.mark.parametrize(
    ("ranking", "message"),
    [
        ("{strategy: greedy}", "t.yaml:5: placements[banner].ranking.strategy: unknown strategy 'greedy'"),
        ("{metric: click}", "t.yaml:5: placements[banner].ranking.strategy: required field is missing"),
        ("{strategy: thompson, per: click}", "ranking.per: trials are impressions or decisions"),
        ("{strategy: thompson, metric: impression}", "ranking.metric: the same as per (impression)"),
        ("{strategy: thompson, metric: decision}", "ranking.metric: a success is an event"),
        ("{strategy: thompson, metric: dismiss}", "ranking.metric: dismissals are failures"),
        ("{strategy: thompson, min_exposure: -1}", f"ranking.min_exposure: must be between 0 and {MAX_MIN_EXPOSURE}"),
        ("{strategy: thompson, days: 400}", f"ranking.days: must be between 1 and {MAX_DAYS}"),
        ("{strategy: thompson, extra: 1}", "ranking.extra: unknown field"),
    ],
)
def test_errors_are_located(ranking: str, message: str) -> None:
    found, problems = parsed(ranking)
    assert found is None
    assert any(message in p for p in problems), problems
