"""``decision report --html``: one self-contained page, inline SVG (rates with their 95 % intervals), no script.

Its body (``body``) is also the console's Offers page; the simulation's chart (decision/cli/report_html.py) shares
its style. Every value is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from decision.core.allocation import Allocation
from decision.core.report import SRM_ALPHA, ExperimentLine, Rate, Report, Stop
from decision.present.outcomes import (
    allocation_text,
    always_valid_text,
    lift_text,
    p_text,
    pct,
    rate_text,
    since_text,
    stop_text,
)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr:nth-child(even) { background: #f4f4f4; }
.never { color: #a33; }
svg text { font: 12px system-ui, sans-serif; }
"""

ROW = 24
LABEL = 200
PLOT = 420
VALUE = 220
BAR = "#3b6ea8"
HOLDOUT_BAR = "#b0b0b0"
WHISKER = "#222"
EXTRA_STYLE = (".flag { color: #a33; font-weight: bold; } .note { color: #555; } .stop { font-weight: bold; }"
               " .go { color: #2a7a2a; } .wait { color: #8a6d00; }")  # fmt: skip
SEQUENCE = "#9fbfe0"  # the always-valid interval
FIXED = "#1f3f66"  # the fixed-horizon interval
LOOK = 28  # px per day


def looks_chart(experiment: ExperimentLine, variant: str, min_lift: float) -> str:
    """Day by day (cumulative), the lift of ``variant`` with its always-valid interval (wide, light) and its
    fixed-horizon interval — the table's, ``Comparison.lift_interval`` — (narrow, dark): what someone looking each
    day saw. Dashed: 0 and ±min_lift."""
    points = []
    for look in experiment.looks:
        line = next((v for v in look.variants if v.variant == variant), None)
        lift = None if line is None or line.sequential is None else line.sequential.lift
        if line is not None and lift is not None:
            fixed = None if line.against_control is None else line.against_control.lift_interval
            points.append((look.day, lift.estimate, lift.interval, fixed))
    if not points:
        return ""
    span = max(max(abs(i[0]), abs(i[1])) for _, _, i, _ in points)
    top = max(min(span, 5.0), min_lift * 1.5) or 1.0
    height, width = 160, LABEL + LOOK * len(points) + 20

    def y(value: float) -> float:
        return height / 2 - (height / 2 - 8) * max(-1.0, min(1.0, value / top))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" role="img" '
           f'aria-label="{escape(variant)}: lift by day">']  # fmt: skip
    for level, dash in ((0.0, ""), (min_lift, ' stroke-dasharray="4 3"'), (-min_lift, ' stroke-dasharray="4 3"')):
        out.append(
            f'<line x1="{LABEL}" x2="{width - 10}" y1="{y(level):.1f}" y2="{y(level):.1f}" stroke="#999"{dash}/>'
        )
    out.append(f'<text x="{LABEL - 6}" y="{y(top) + 4:.1f}" text-anchor="end">{100 * top:+.0f}%</text>'
               f'<text x="{LABEL - 6}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>'
               f'<text x="{LABEL - 6}" y="{y(-top) + 4:.1f}" text-anchor="end">{-100 * top:+.0f}%</text>')  # fmt: skip
    for index, (day, estimate, sequence, fixed) in enumerate(points):
        x = LABEL + LOOK * index + LOOK / 2
        one_look = "-" if fixed is None else f"[{100 * fixed[0]:+.1f}%, {100 * fixed[1]:+.1f}%]"
        title = (f"{escape(day)}: lift {100 * estimate:+.1f}%, always-valid [{100 * sequence[0]:+.1f}%, "
                 f"{100 * sequence[1]:+.1f}%], fixed-horizon {one_look}")  # fmt: skip
        dark = ("" if fixed is None else
                f'<line x1="{x}" x2="{x}" y1="{y(fixed[0]):.1f}" y2="{y(fixed[1]):.1f}" stroke="{FIXED}" '
                'stroke-width="3"/>')  # fmt: skip
        out.append(
            f"<g><title>{title}</title>"
            f'<line x1="{x}" x2="{x}" y1="{y(sequence[0]):.1f}" y2="{y(sequence[1]):.1f}" stroke="{SEQUENCE}" '
            f'stroke-width="10"/>{dark}'
            f'<circle cx="{x}" cy="{y(estimate):.1f}" r="3" fill="#000"/></g>'
        )
        if index in (0, len(points) - 1):
            out.append(f'<text x="{x}" y="{height + 14}" text-anchor="middle">{escape(day[5:])}</text>')
    out.append("</svg>")
    return "".join(out)


def allocation_table(allocation: Allocation) -> str:
    lines = allocation_text(allocation)
    rows = "".join(
        f"<tr><td>{escape(a.arm)}</td><td>{a.successes}</td><td>{a.trials}</td><td>{pct(a.share, 1)}</td>"
        f"<td>{'exploring' if a.exploring else ''}</td></tr>"
        for a in allocation.arms
    )
    learning = allocation.learning
    return (f"<h3>{escape(lines[0])}</h3><table><tr><th>arm</th><th>{escape(learning.metric)}</th>"
            f"<th>{escape(learning.per)}</th><th>share of decisions now</th><th></th></tr>{rows}</table>")  # fmt: skip


def rates_chart(title: str, rows: Sequence[tuple[str, Rate, str]]) -> str:
    """Horizontal bars of rates, each with its Wilson interval as a whisker; the scale fits the widest upper bound."""
    shown = [(label, rate, color) for label, rate, color in rows if rate.value is not None]
    if not shown:
        return "<p class=note>no exposures</p>"
    top = max((rate.interval or (0.0, 0.0))[1] for _, rate, _ in shown) or 1.0
    height = ROW * len(shown) + 24
    width = LABEL + PLOT + VALUE
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}">']  # fmt: skip
    for index, (label, rate, color) in enumerate(shown):
        assert rate.value is not None and rate.interval is not None
        y = index * ROW + 2
        low, high = (PLOT * bound / top for bound in rate.interval)
        length = max(1.0, PLOT * rate.value / top)
        mid = y + ROW / 2 - 1
        out.append(
            f'<text x="{LABEL - 6}" y="{y + 16}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL}" y="{y + 4}" width="{length:.1f}" height="{ROW - 8}" fill="{color}">'
            f"<title>{escape(label)}: {escape(rate_text(rate))} ({rate.successes} of {rate.trials})</title></rect>"
            f'<line x1="{LABEL + low:.1f}" x2="{LABEL + high:.1f}" y1="{mid}" y2="{mid}" stroke="{WHISKER}"/>'
            f'<line x1="{LABEL + low:.1f}" x2="{LABEL + low:.1f}" y1="{mid - 5}" y2="{mid + 5}" stroke="{WHISKER}"/>'
            f'<line x1="{LABEL + high:.1f}" x2="{LABEL + high:.1f}" y1="{mid - 5}" y2="{mid + 5}" stroke="{WHISKER}"/>'
            f'<text x="{LABEL + PLOT + 6}" y="{y + 16}">{escape(rate_text(rate))}</text>'
        )
    axis_y = ROW * len(shown) + 6
    out.append(f'<line x1="{LABEL}" x2="{LABEL + PLOT}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>'
               f'<text x="{LABEL}" y="{axis_y + 14}">0</text>'
               f'<text x="{LABEL + PLOT}" y="{axis_y + 14}" text-anchor="end">{pct(top, 1)}</text></svg>')  # fmt: skip
    return "".join(out)


def render(report: Report) -> str:
    span = report.days[0] if len(report.days) == 1 else f"{report.days[0]} to {report.days[-1]}"
    out = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Outcomes {escape(span)}</title><style>{STYLE}{EXTRA_STYLE}</style></head><body>",
        f"<h1>What each offer achieved — {escape(span)}, {escape(report.version or 'all ruleset versions')}</h1>",
        body(report), "</body></html>",
    ]  # fmt: skip
    return "\n".join(out)


def body(report: Report) -> str:
    """The page's sections: the offers' rates, the experiments with their verdicts, the allocation."""
    out = [
        "<p>Click-through rate = clicks / impressions, with its 95 % Wilson interval (whiskers). Days in the "
        "ruleset's time zone.</p>",
    ]
    for placement in report.placements:
        lines = [o for o in report.offers if o.placement_id == placement]
        out.append(f"<h2>{escape(placement)}: click-through rate by offer</h2>")
        out.append(rates_chart(f"CTR in {placement}", [(o.offer_id, o.ctr, BAR) for o in lines]))
        out.append("<table><tr><th>offer</th><th>proposals</th><th>impressions</th><th>clicks</th><th>CTR [95%]</th>"
                   "<th>dismiss rate</th></tr>")  # fmt: skip
        out.extend(
            f"<tr><td>{escape(o.offer_id)}</td><td>{o.proposals}</td><td>{o.impressions}</td><td>{o.clicks}</td>"
            f"<td>{escape(rate_text(o.ctr))}</td><td>{pct(o.dismiss_rate.value)}</td></tr>"
            for o in lines
        )
        out.append("</table>")
    for e in report.experiments:
        out.append(f"<h2>Experiment {escape(e.experiment_id)}: {escape(e.metric)} per proposal</h2>")
        out.append(f"<p class=note>{escape(since_text(e))}. {escape(report.test)}. The control is the first "
                   "variant.</p>")  # fmt: skip
        rows = [(v.variant, v.conversion, HOLDOUT_BAR if v.variant == "holdout" else BAR) for v in e.variants]
        out.append(rates_chart(f"experiment {e.experiment_id}", rows))
        out.append("<table><tr><th>variant</th><th>exposures</th><th>conversions</th><th>rate [95%]</th>"
                   "<th>lift vs control [95%]</th><th>p</th><th>always-valid lift</th></tr>")  # fmt: skip
        out.extend(
            f"<tr><td>{escape(v.variant)}</td><td>{v.conversion.trials}</td><td>{v.conversion.successes}</td>"
            f"<td>{escape(rate_text(v.conversion))}</td><td>{escape(lift_text(v.against_control))}</td>"
            f"<td>{escape(p_text(v.against_control))}</td>"
            f"<td>{escape(always_valid_text(None if v.sequential is None else v.sequential.lift))}</td></tr>"
            for v in e.variants
        )
        out.append("</table>")
        css = "go" if e.stop in (Stop.BETTER, Stop.WORSE, Stop.SAME) else "flag" if e.stop is Stop.CHECK else "wait"
        out.append(f'<p class="stop {css}">{escape(stop_text(e, report.min_lift))}</p>')
        for v in e.variants:
            if v.sequential is not None and len(e.looks) > 1:
                out.append(f"<p class=note>{escape(v.variant)} against the control, day by day (cumulative): the lift "
                           "with its always-valid interval (wide, light) and its fixed-horizon interval (narrow, dark: "
                           "the table's 95 % Katz interval, valid for one planned look only).</p>")  # fmt: skip
                out.append(looks_chart(e, v.variant, report.min_lift))
        if e.holdout_lift is not None:
            out.append(f"<p>Holdout lift (variants pooled against the holdout): {escape(lift_text(e.holdout_lift))}, "
                       f"p = {escape(p_text(e.holdout_lift))}</p>")  # fmt: skip
        if e.srm is not None:
            verdict = (f'<span class="flag">sample ratio mismatch (p &lt; {SRM_ALPHA})</span>' if e.mismatch
                       else "no sample ratio mismatch")  # fmt: skip
            out.append(f"<p>Sample ratio ({escape(', '.join(e.srm_groups))} against their weights): chi-square "
                       f"{e.srm.statistic:.2f}, df {e.srm.df}, p = {e.srm.p_value:.3g}: {verdict}</p>")  # fmt: skip
        if e.note:
            out.append(f"<p class=note>{escape(e.note)}</p>")
    if report.experiments:
        out.append(f"<p class=note>Always-valid: {escape(report.sequential)}. Stop rule: {escape(report.stop_rule)}."
                   "</p>")  # fmt: skip
    if report.allocations:
        out.append(f"<h2>Thompson allocation now</h2><p class=note>{escape(report.allocations[0].method)}: the share "
                   "of decisions each arm gets now (all eligible, scores aside).</p>")  # fmt: skip
        out.extend(allocation_table(a) for a in report.allocations)
    return "\n".join(out)
