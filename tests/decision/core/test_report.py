"""The experiment report's "can we stop?" verdict and its day-by-day looks (decision.core.report)."""

from __future__ import annotations

from decision.core.outcomes import OutcomeRow
from decision.core.report import MIN_EXPOSURES, Stop, build
from decision.rules.types import Experiment, HoldoutServes, Location, Variant

EXPERIMENT = Experiment("exp", (Variant("a", 1), Variant("b", 1)), 0, HoldoutServes.FALLBACK, Location("t.yaml", 1))
THREE = Experiment("exp", (Variant("a", 1), Variant("b", 1), Variant("c", 1)), 0, HoldoutServes.FALLBACK,
                   Location("t.yaml", 1))  # fmt: skip


def rows(day: str, **groups: tuple[int, int]) -> list[OutcomeRow]:
    """Exposures and clicks per variant on one day."""
    found = []
    for variant, (exposures, clicks) in groups.items():
        found.append(OutcomeRow(day, "x", "v1", "banner", "exp", variant, "decision", exposures))
        found.append(OutcomeRow(day, "x", "v1", "banner", "exp", variant, "click", clicks))
    return found


def verdict(*found: OutcomeRow, experiment: Experiment = EXPERIMENT, min_lift: float = 0.05) -> Stop:
    report = build(found, ("2026-06-01", "2026-06-02"), experiments={"exp": experiment}, min_lift=min_lift)
    return report.experiments[0].stop


def test_a_clear_winner_a_clear_loser_and_no_difference_worth_having() -> None:
    assert verdict(*rows("2026-06-01", a=(10_000, 1_000), b=(10_000, 1_500))) is Stop.BETTER
    assert verdict(*rows("2026-06-01", a=(10_000, 1_500), b=(10_000, 1_000))) is Stop.WORSE
    assert verdict(*rows("2026-06-01", a=(400_000, 40_000), b=(400_000, 40_100))) is Stop.SAME
    assert verdict(*rows("2026-06-01", a=(400_000, 40_000), b=(400_000, 40_100)), min_lift=0.001) is Stop.CONTINUE


def test_never_on_the_fixed_horizon_p_value_alone() -> None:
    report = build(rows("2026-06-01", a=(10_000, 1_047), b=(10_000, 1_184)), ("2026-06-01",),
                   experiments={"exp": EXPERIMENT})  # fmt: skip
    [_, b] = report.experiments[0].variants
    assert b.against_control is not None and b.against_control.p_value < 0.01  # "significant" at one look
    assert b.stop is Stop.CONTINUE and report.experiments[0].stop is Stop.CONTINUE
    assert b.sequential is not None and b.sequential.lift is not None
    assert b.sequential.lift.interval[0] < 0 < b.sequential.lift.interval[1]


def test_too_little_data_or_a_mismatch_decides_nothing() -> None:
    few = MIN_EXPOSURES - 1
    assert verdict(*rows("2026-06-01", a=(few, 0), b=(few, few))) is Stop.CONTINUE
    assert verdict(*rows("2026-06-01", a=(10_000, 0), b=(10_000, 3_000))) is Stop.CONTINUE  # no lift without a rate
    assert verdict(*rows("2026-06-01", a=(10_000, 1_000), b=(12_000, 1_800))) is Stop.CHECK  # 10,000 vs 12,000 at 1:1


def test_every_variant_must_be_decided_each_at_a_bonferroni_level() -> None:
    decided = rows("2026-06-01", a=(20_000, 2_000), b=(20_000, 3_000), c=(20_000, 1_000))
    assert verdict(*decided, experiment=THREE) is Stop.BETTER
    undecided = rows("2026-06-01", a=(20_000, 2_000), b=(20_000, 3_000), c=(20_000, 2_050))
    assert verdict(*undecided, experiment=THREE) is Stop.CONTINUE
    report = build(decided, ("2026-06-01",), experiments={"exp": THREE})
    [_, b, _] = report.experiments[0].variants
    assert b.sequential is not None and abs(b.sequential.alpha - 0.025) < 1e-12


def test_looks_are_cumulative_day_by_day_and_end_with_the_whole() -> None:
    found = [
        *rows("2026-06-01", a=(1_000, 100), b=(1_000, 130)),
        *rows("2026-06-02", a=(1_000, 90), b=(1_000, 140)),
        *rows("2026-06-04", a=(1_000, 110), b=(1_000, 150)),
    ]
    days = ("2026-05-31", "2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04")
    [experiment] = build(found, days, experiments={"exp": EXPERIMENT}).experiments
    assert [look.day for look in experiment.looks] == list(days[1:])  # from the first day with data
    assert [look.variants[1].conversion.trials for look in experiment.looks] == [1_000, 2_000, 2_000, 3_000]
    assert experiment.looks[-1].variants == experiment.variants
    widths = []
    for look in experiment.looks:
        sequence = look.variants[1].sequential
        assert sequence is not None
        widths.append(sequence.difference.interval[1] - sequence.difference.interval[0])
    assert widths[0] > widths[1] > widths[3]
