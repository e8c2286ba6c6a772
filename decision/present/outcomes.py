"""The words of ``decision report``'s figures, shared by its text table, its HTML page and the console."""

from __future__ import annotations

from decision.core.allocation import Allocation
from decision.core.report import MIN_EXPOSURES, ExperimentLine, Rate, Stop, VariantLine
from decision.core.stats import AlwaysValid, Comparison


def pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def rate_text(rate: Rate) -> str:
    if rate.value is None or rate.interval is None:
        return "-"
    low, high = rate.interval
    return f"{pct(rate.value)} [{pct(low)}, {pct(high)}]"


def lift_text(comparison: Comparison | None) -> str:
    if comparison is None or comparison.lift is None:
        return "-"
    interval = comparison.lift_interval
    around = f" [{100 * interval[0]:+.1f}%, {100 * interval[1]:+.1f}%]" if interval else ""
    return f"{100 * comparison.lift:+.1f}%{around}"


def p_text(comparison: Comparison | None) -> str:
    return "-" if comparison is None else f"{comparison.p_value:.3g}"


def always_valid_text(estimate: AlwaysValid | None) -> str:
    """``+12.0% [+1.2%, +23.9%]``: the estimate with its always-valid interval."""
    if estimate is None:
        return "-"
    low, high = estimate.interval
    return f"{100 * estimate.estimate:+.1f}% [{100 * low:+.1f}%, {100 * high:+.1f}%]"


def lift_of(line: VariantLine) -> AlwaysValid | None:
    return None if line.sequential is None else line.sequential.lift


_VERDICTS = {
    Stop.BETTER: "better than the control (the always-valid interval of its lift lies above 0)",
    Stop.WORSE: "worse than the control (the always-valid interval of its lift lies below 0)",
    Stop.SAME: "no difference worth having (the always-valid interval of its lift lies within ±{min_lift:.0%})",
}


def variant_stop_text(line: VariantLine, min_lift: float) -> str:
    """Why one variant is decided, or not yet."""
    if line.stop is None:
        return ""
    if line.stop in _VERDICTS:
        return _VERDICTS[line.stop].format(min_lift=min_lift)
    if line.sequential is None or line.sequential.lift is None or line.conversion.trials < MIN_EXPOSURES:
        return f"too little data yet ({MIN_EXPOSURES} exposures and a conversion in each group)"
    return f"undecided: its lift {always_valid_text(line.sequential.lift)} straddles 0 or ±{min_lift:.0%}"


def since_text(experiment: ExperimentLine) -> str:
    """Where the experiment's figures start (``ExperimentLine.since``), whatever the report's first day."""
    return f"since {experiment.since}, its first counted day (cumulative from it, whatever the report's first day)"


def stop_text(experiment: ExperimentLine, min_lift: float) -> str:
    """The experiment's "can we stop?" answer, variant by variant."""
    verdict = experiment.stop
    if verdict is Stop.CHECK:
        return "can we stop? no: sample ratio mismatch, check the assignment before reading any result"
    parts = "; ".join(f"{v.variant}: {variant_stop_text(v, min_lift)}" for v in experiment.variants if v.stop)
    if verdict is Stop.CONTINUE:
        return f"can we stop? not yet ({parts})" if parts else "can we stop? not yet (no variant to compare)"
    return f"can we stop? yes ({parts})"


def allocation_text(allocation: Allocation) -> list[str]:
    learning = allocation.learning
    what = "placement" if allocation.kind == "placement" else "experiment (allocation: auto)"
    lines = [f"{what} {allocation.id}: {learning.metric} per {learning.per}, last {learning.days} days"
             + (f"; exploring (an arm below {learning.min_exposure} {learning.per}s: usual order)"
                if allocation.exploring else "")]  # fmt: skip
    for arm in allocation.arms:
        seen = f"{arm.successes} in {arm.trials}"
        lines.append(f"  {arm.arm:<22} {seen:>16}  {pct(arm.share, 1):>7} of decisions now"
                     + ("  (exploring)" if arm.exploring else ""))  # fmt: skip
    return lines
