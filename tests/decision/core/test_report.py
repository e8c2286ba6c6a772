"""What ``decision report`` computes (decision/core/report.py), pure: sums, rates, comparisons, sample ratios.

The command over real decisions and events: tests/decision/cli/test_report.py.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.outcomes import OutcomeRow
from decision.core.report import Rate, build
from decision.rules.types import HOLDOUT, Experiment, HoldoutServes, Location, Variant

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
