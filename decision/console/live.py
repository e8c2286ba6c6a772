"""The Live page: each replica's decisions/s, degraded share, p50/p99, Redis breakers and active ruleset, read from
the ``/metrics`` it exports (``--metrics-url``, scraped every ``--scrape-interval``: decision.observe.readings)."""

from __future__ import annotations

import time

from decision.console.backend import Backend, Scrapes
from decision.console.markup import Html, html, join, table
from decision.observe.readings import Figures, live, versions_of
from decision.present.outcomes import pct


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.2f} ms"


def _rate(figures: Figures | None) -> str:
    return "-" if figures is None or figures.per_second is None else f"{figures.per_second:.1f}"


def _breakers(scrapes: Scrapes) -> Html:
    reading = scrapes.latest
    if reading is None or not reading.breakers:
        return html('<span class="hint">none reported</span>')
    return join(
        (html('<span class="{}">{}: {}</span>', "open" if is_open else "closed", node, "OPEN" if is_open else "closed")
         for node, is_open in sorted(reading.breakers.items())),
        ", ",
    )  # fmt: skip


def _row(scrapes: Scrapes, now: float) -> tuple[object, ...]:
    reading = scrapes.latest
    state = (
        html('<span class="open">{}</span>', scrapes.error)
        if scrapes.error
        else html('<span class="closed">up</span>')
        if reading is not None
        else "not scraped yet"
    )
    age = f"{now - scrapes.at:.0f} s ago" if scrapes.at else "-"
    if reading is None:
        return (scrapes.url, state, age, *("-",) * 8)
    interval, total = live(reading, scrapes.before)
    return (
        scrapes.url,
        state,
        age,
        _rate(interval),
        pct(interval.degraded_share if interval else None, 1),
        _ms(interval.p50 if interval else None),
        _ms(interval.p99 if interval else None),
        f"{total.decisions:.0f}, {pct(total.degraded_share, 1)} degraded, p50 {_ms(total.p50)}, p99 {_ms(total.p99)}",
        _breakers(scrapes),
        ", ".join(reading.rulesets) or "-",
        ", ".join(f"{r} {n:.0f}" for r, n in sorted(reading.degraded_by_reason.items())) or "-",
    )


def live_page(backend: Backend) -> Html:
    scrapes = backend.readings()
    interval = backend.config.scrape_interval
    if not scrapes:
        return html(
            "<p>No replica to watch: start the console with <code>--metrics-url URL</code> for each replica's "
            "<code>/metrics</code> (a server started with <code>--metrics-port</code>), repeated.</p>"
        )
    now = time.time()
    rows = [_row(s, now) for s in scrapes]
    headers = (
        "replica /metrics", "scrape", "when", "decisions/s", "degraded", "p50", "p99", "since it started",
        "Redis breakers", "ruleset", "degraded by reason",
    )  # fmt: skip
    versions = versions_of([s.latest for s in scrapes if s.latest is not None])
    total = sum(
        f.per_second or 0.0 for s in scrapes if s.latest is not None and (f := live(s.latest, s.before)[0]) is not None
    )
    split = (
        html('<p class="error">The replicas decide with different rulesets: {}.</p>', ", ".join(versions))
        if len(versions) > 1
        else Html("")
    )
    return html(
        "<p>Over the last {:g} s (each replica's <code>/metrics</code> is read every {:g} s; this page reloads "
        "itself). All replicas: <strong>{:.1f} decisions/s</strong>, ruleset {}.</p>{}{}"
        '<p class="hint">decisions/s, degraded (the share answered with the fallbacks, without the profile) and '
        "the p50/p99 of Decide in the server, from decision_rpc_calls, decision_degraded and the buckets of "
        "decision_rpc_duration_seconds (quantiles as Prometheus's histogram_quantile); a breaker is OPEN while "
        "its Redis node's reads keep failing (its profiles get the fallbacks).</p>",
        interval,
        interval,
        total,
        ", ".join(versions) or "-",
        split,
        table(headers, rows, "data"),
    )
