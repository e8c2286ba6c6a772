"""The text of ``decision report``: the table (its words: decision.present.outcomes, which the HTML page uses too)."""

from __future__ import annotations

from decision.core.report import SRM_ALPHA, Report
from decision.present.outcomes import (
    allocation_text,
    always_valid_text,
    lift_of,
    lift_text,
    p_text,
    pct,
    rate_text,
    since_text,
    stop_text,
)


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
        lines += ["", f"experiment {e.experiment_id} — conversion: {e.metric} per proposal; {report.test}",
                  f"  {since_text(e)}"]  # fmt: skip
        lines.append(f"  {'variant':<20} {'exposures':>9} {'conv.':>7}  {'rate [95% Wilson]':<28} "
                     f"{'lift vs control [95%]':<28} {'p':>8}")  # fmt: skip
        lines[-1] += "  always-valid lift"
        for v in e.variants:
            control = " (control)" if v is e.variants[0] and v.variant != "holdout" else ""
            lines.append(f"  {v.variant + control:<20} {v.conversion.trials:>9} {v.conversion.successes:>7}  "
                         f"{rate_text(v.conversion):<28} {lift_text(v.against_control):<28} "
                         f"{p_text(v.against_control):>8}  {always_valid_text(lift_of(v)):<28}".rstrip())  # fmt: skip
        if e.holdout_lift is not None:
            lines.append(f"  holdout lift (variants pooled vs holdout): {lift_text(e.holdout_lift)}, "
                         f"p = {p_text(e.holdout_lift)}")  # fmt: skip
        if e.srm is not None:
            flag = f"SAMPLE RATIO MISMATCH (p < {SRM_ALPHA})" if e.mismatch else "ok"
            lines.append(f"  sample ratio ({', '.join(e.srm_groups)} against their weights): chi-square "
                         f"{e.srm.statistic:.2f}, df {e.srm.df}, p = {e.srm.p_value:.3g}: {flag}")  # fmt: skip
        if e.note:
            lines.append(f"  note: {e.note}")
        lines.append(f"  {stop_text(e, report.min_lift)}")
    if report.experiments:
        lines += ["", f"always-valid lift: {report.sequential}", f"stop rule: {report.stop_rule}"]
    if report.allocations:
        lines += ["", f"Thompson allocation now ({report.allocations[0].method}):"]
        for allocation in report.allocations:
            lines.extend(allocation_text(allocation))
    return "\n".join(lines)
