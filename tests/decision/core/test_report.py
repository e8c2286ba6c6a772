"""What ``decision report`` computes (decision/core/report.py), pure: sums, rates, comparisons, sample ratios,
the experiments' "can we stop?" verdict and its day-by-day looks.

The command over real decisions and events: tests/decision/cli/test_report.py.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.outcomes import OutcomeRow
from decision.core.report import MIN_EXPOSURES, Rate, Stop, build
from decision.rules.types import HOLDOUT, Allocation, Experiment, HoldoutServes, Location, Variant

HERE = Location("t.yaml", 1)
DAYS = ("2026-06-01", "2026-06-02")


def row(offer: str, variant: str, counted: str, count: int, day: str = DAYS[0], version: str = "v1") -> OutcomeRow:
    return OutcomeRow(day, offer, version, "banner", "exp" if variant else "", variant, counted, count)


def experiment(serves: HoldoutServes = HoldoutServes.FALLBACK, holdout: int = 1) -> Experiment:
    return Experiment("exp", (Variant("control", 1), Variant("bold", 1)), holdout, serves, HERE)


def test_offer_lines_add_up_the_rows_of_the_days_and_version_asked() -> None:
    rows = [
        row("x", "", "decision", 10), row("x", "", "impression", 8), row("x", "", "click", 2, day=DAYS[1]),
        row("x", "", "dismiss", 1), row("x", "", "custom:buy", 1), row("x", "", "click", 50, day="2026-06-03"),
        row("x", "", "click", 70, version="v0"),
    ]  # fmt: skip
    [line] = build(rows, DAYS, version="v1").offers
    assert (line.proposals, line.impressions, line.clicks, line.dismisses) == (10, 8, 2, 1)
    assert line.custom == {"custom:buy": 1}
    assert (line.ctr.value, line.dismiss_rate.value) == (0.25, 0.125)
    [every_version] = build(rows, DAYS).offers
    assert every_version.clicks == 72


def test_variants_against_the_control_and_the_holdout_against_them_all() -> None:
    rows = [
        row("x", "control", "decision", 1000), row("x", "control", "click", 100),
        row("x", "bold", "decision", 1000), row("x", "bold", "click", 150),
        row("fb", HOLDOUT, "decision", 1000), row("fb", HOLDOUT, "click", 50),
    ]  # fmt: skip
    [line] = build(rows, DAYS, experiments={"exp": experiment()}).experiments
    assert [v.variant for v in line.variants] == ["control", "bold", HOLDOUT]
    control, bold, held = line.variants
    assert control.against_control is None
    assert bold.against_control is not None and abs(bold.against_control.lift - 0.5) < 1e-9  # type: ignore[operator]
    assert held.against_control is not None
    assert line.holdout_lift is not None and abs(line.holdout_lift.lift - 1.5) < 1e-9  # type: ignore[operator]
    assert line.srm_groups == ("control", "bold", HOLDOUT) and not line.mismatch  # 1000 each for 1:1:1


def test_what_the_sample_ratio_check_leaves_out_is_said() -> None:
    rows = [row("x", "control", "decision", 100), row("x", "bold", "decision", 100)]
    [nothing] = build(rows, DAYS, experiments={"exp": experiment(HoldoutServes.NOTHING)}).experiments
    assert nothing.srm_groups == ("control", "bold")
    assert "the holdout serves nothing" in nothing.note
    [unknown] = build(rows, DAYS).experiments
    assert unknown.srm is None and "experiment not found" in unknown.note


def test_json_keeps_every_figure() -> None:
    rows = [row("x", "control", "decision", 10), row("x", "control", "click", 3)]
    report = build(rows, DAYS, experiments={"exp": experiment(holdout=0)}).to_json()
    assert (report["from"], report["to"], report["metric"]) == (*DAYS, "click")
    assert report["offers"][0]["ctr"] == {"successes": 3, "trials": 0, "rate": None, "interval": None}
    assert report["experiments"][0]["variants"][0]["conversions"] == 3


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")), deadline=None)
@given(successes=st.integers(0, 10**6), trials=st.integers(0, 10**6))
def test_a_rate_lies_in_its_interval_and_never_above_one(successes: int, trials: int) -> None:
    rate = Rate(successes, trials)
    if trials == 0:
        assert rate.value is None and rate.interval is None
        return
    assert rate.value is not None and rate.interval is not None
    low, high = rate.interval
    assert 0.0 <= low <= rate.value <= high <= 1.0
    assert rate.value == min(successes, trials) / trials  # repeated events never make it exceed one


EXPERIMENT = Experiment("exp", (Variant("a", 1), Variant("b", 1)), 0, HoldoutServes.FALLBACK, HERE)
THREE = Experiment("exp", (Variant("a", 1), Variant("b", 1), Variant("c", 1)), 0, HoldoutServes.FALLBACK, HERE)


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


def auto(holdout: int = 1, serves: HoldoutServes = HoldoutServes.FALLBACK) -> Experiment:
    return Experiment("exp", (Variant("a", 1), Variant("b", 1)), holdout, serves, HERE, Allocation.AUTO)


def test_an_auto_experiment_checks_only_its_holdouts_share_and_says_its_rates_are_biased() -> None:
    """Thompson sampling gave b 9 in 10 of the variants' exposures, as meant: no mismatch, the verdict stands. The
    holdout (by weight: a third) is checked against the variants pooled; off its weight, it is flagged."""
    learned = rows("2026-06-01", a=(2_000, 200), b=(18_000, 2_700), holdout=(10_000, 500))
    [line] = build(learned, ("2026-06-01",), experiments={"exp": auto()}).experiments
    assert line.srm_groups == (HOLDOUT, "a+b") and not line.mismatch
    assert line.stop is Stop.BETTER
    assert "only the holdout's share is checked" in line.note and "biases the pooled rates" in line.note
    assert line.to_json()["sample_ratio"]["groups"] == [HOLDOUT, "a+b"]
    skewed = rows("2026-06-01", a=(2_000, 200), b=(18_000, 2_700), holdout=(5_000, 250))
    [off] = build(skewed, ("2026-06-01",), experiments={"exp": auto()}).experiments
    assert off.mismatch and off.stop is Stop.CHECK
    [none] = build(learned, ("2026-06-01",), experiments={"exp": auto(0)}).experiments
    assert none.srm is None and "no sample-ratio check" in none.note and "biases the pooled rates" in none.note
    [weights] = build(learned, ("2026-06-01",), experiments={"exp": experiment_ab()}).experiments
    assert weights.mismatch and "biases" not in weights.note  # by weight, the same counts are a mismatch


def experiment_ab() -> Experiment:
    return Experiment("exp", (Variant("a", 1), Variant("b", 1)), 1, HoldoutServes.FALLBACK, HERE)


def test_an_experiment_counts_from_its_first_counted_day_whatever_the_reports_first() -> None:
    """Days before the report's first are read for its experiments (not its offers); the looks, the figures and
    the verdict are those of the whole experiment up to the report's last day; later days are left out."""
    found = [
        *rows("2026-06-01", a=(1_000, 100), b=(1_000, 100)),
        *rows("2026-06-02", a=(1_000, 100), b=(1_000, 100)),
        *rows("2026-06-03", a=(1_000, 90), b=(1_000, 160)),
        *rows("2026-06-04", a=(1_000, 100), b=(1_000, 100)),
    ]
    report = build(found, ("2026-06-03",), experiments={"exp": EXPERIMENT})
    [experiment] = report.experiments
    assert experiment.since == "2026-06-01" and experiment.to_json()["since"] == "2026-06-01"
    assert [look.day for look in experiment.looks] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    assert [v.conversion.trials for v in experiment.variants] == [3_000, 3_000]
    whole = build(found, ("2026-06-01", "2026-06-02", "2026-06-03"), experiments={"exp": EXPERIMENT})
    assert whole.experiments == report.experiments  # whatever the first day asked
    assert sum(o.proposals for o in report.offers) == 2_000  # the offers: the report's days only
    assert build(found[:4], ("2026-06-03",), experiments={"exp": EXPERIMENT}).experiments == ()  # not counted then
