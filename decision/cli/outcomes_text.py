"""The text of ``decision report``: the table, and the numbers as the HTML page words them too."""

from __future__ import annotations

from decision.core.report import SRM_ALPHA, Rate, Report
from decision.core.stats import Comparison


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


def format_report(report: Report) -> str:
    span = report.days[0] if len(report.days) == 1 else f"{report.days[0]} to {report.days[-1]}"
    lines = [f"outcomes {span}, ruleset {report.version or 'all versions'}", ""]
    lines.append(f"{'placement':<16} {'offer':<22} {'proposals':>9} {'impr.':>8} {'clicks':>7}  "
                 f"{'CTR [95% Wilson]':<28} {'dismiss rate':>12}")  # fmt: skip
    for o in report.offers:
        lines.append(f"{o.placement_id:<16} {o.offer_id:<22} {o.proposals:>9} {o.impressions:>8} {o.clicks:>7}  "
                     f"{rate_text(o.ctr):<28} {pct(o.dismiss_rate.value):>12}")  # fmt: skip
    if not report.offers:
        lines.append("(no outcome counted in these days)")
    for e in report.experiments:
        lines += ["", f"experiment {e.experiment_id} — conversion: {e.metric} per proposal; {report.test}"]
        lines.append(f"  {'variant':<20} {'exposures':>9} {'conv.':>7}  {'rate [95% Wilson]':<28} "
                     f"{'lift vs control [95%]':<28} {'p':>8}")  # fmt: skip
        for v in e.variants:
            control = " (control)" if v is e.variants[0] and v.variant != "holdout" else ""
            lines.append(f"  {v.variant + control:<20} {v.conversion.trials:>9} {v.conversion.successes:>7}  "
                         f"{rate_text(v.conversion):<28} {lift_text(v.against_control):<28} "
                         f"{p_text(v.against_control):>8}")  # fmt: skip
        if e.holdout_lift is not None:
            lines.append(f"  holdout lift (variants pooled vs holdout): {lift_text(e.holdout_lift)}, "
                         f"p = {p_text(e.holdout_lift)}")  # fmt: skip
        if e.srm is not None:
            flag = f"SAMPLE RATIO MISMATCH (p < {SRM_ALPHA})" if e.mismatch else "ok"
            lines.append(f"  sample ratio ({', '.join(e.srm_groups)} against their weights): chi-square "
                         f"{e.srm.statistic:.2f}, df {e.srm.df}, p = {e.srm.p_value:.3g}: {flag}")  # fmt: skip
        if e.note:
            lines.append(f"  note: {e.note}")
    return "\n".join(lines)
