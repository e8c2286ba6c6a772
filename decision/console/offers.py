"""The Offers and experiments page: ``decision report`` over some days (decision.service.reporting), the same
tables and charts as its HTML page (decision.present.outcomes_html), and the offers day by day."""

from __future__ import annotations

import time
from datetime import date, timedelta

from multidict import MultiMapping

from decision.console.backend import Backend
from decision.console.errors import PageError
from decision.console.markup import Html, html, join, table
from decision.core.outcomes import DayClock
from decision.core.report import Report, days_between, metric_of
from decision.present.outcomes import rate_text
from decision.present.outcomes_html import body
from decision.rules.types import CLICK
from decision.service.reporting import ReportRequest, read_report_by_day

DEFAULT_DAYS = 7


def _form(first: str, last: str, version: str, metric: str, versions: list[str]) -> Html:
    options = join(
        html('<option{} value="{}">{}</option>', " selected" if v == version else "", v, v or "all versions")
        for v in ["", *versions]
    )
    return html(
        '<form class="inline" method="get" action="/offers"><label>From<input type="date" name="from" value="{}">'
        '</label><label>To<input type="date" name="to" value="{}"></label><label>Ruleset version<select '
        'name="version">{}</select></label><label>Conversion<input name="metric" value="{}" size="14"></label>'
        '<button class="primary" type="submit">Show</button></form>'
        '<p class="hint">Days of the outcome counters, in the ruleset\'s time zone. Conversion: click, '
        "impression, dismiss or custom:&lt;type&gt;.</p>",
        first,
        last,
        options,
        metric,
    )


def by_day(days: tuple[Report, ...]) -> Html:
    """Each offer's click-through rate, day by day (each day's report, as ``decision report --from D --to D``)."""
    offers = sorted({(o.placement_id, o.offer_id) for day in days for o in day.offers})
    if not offers:
        return Html("")
    rows = []
    for placement, offer in offers:
        cells: list[object] = [placement, offer]
        for day in days:
            line = next((o for o in day.offers if (o.placement_id, o.offer_id) == (placement, offer)), None)
            cells.append("" if line is None else f"{rate_text(line.ctr)} · {line.clicks}/{line.impressions}")
        rows.append(cells)
    headers = ["placement", "offer", *(d.days[0][5:] for d in days)]
    return html(
        "<h2>Day by day: click-through rate [95%] · clicks/impressions</h2>{}",
        table(headers, rows, "data"),
    )


async def offers_page(backend: Backend, query: MultiMapping[str]) -> Html:
    active = await backend.active_ruleset()
    zone = active.time_zone if active is not None else "UTC"
    today = DayClock(zone).day(int(time.time() * 1000))[0]
    last = query.get("to", "").strip() or today
    try:
        first_default = (date.fromisoformat(last) - timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    except ValueError:
        first_default = last
    first = query.get("from", "").strip() or first_default
    version = query.get("version", "").strip()
    metric_text = query.get("metric", "").strip() or CLICK
    versions = [e.version for e in await backend.control.versions()]
    try:
        request = ReportRequest(days_between(first, last, ("from", "to")), version or None,
                                metric_of(metric_text, "metric"))  # fmt: skip
    except ValueError as exc:
        raise PageError(400, "Bad input", str(exc), hint=_form(first, last, version, metric_text, versions)) from None
    report, days = await read_report_by_day(backend.control, request)
    span = report.days[0] if len(report.days) == 1 else f"{report.days[0]} to {report.days[-1]}"
    nothing = html("<p>No outcome counted in these days.</p>") if not report.offers else Html("")
    return html(
        "{}<p>{}, {} (today is {} in {}).</p>{}{}{}",
        _form(first, last, version, metric_text, versions),
        span,
        version or "all ruleset versions",
        today,
        zone,
        nothing,
        Html(body(report)),  # escaped by decision.present.outcomes_html
        by_day(days),
    )
