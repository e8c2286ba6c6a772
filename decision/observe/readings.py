"""What a replica's ``/metrics`` says, read back: the console's Live page (decision throughput, degraded share,
latency quantiles, breakers, the active ruleset), from the metrics ``decision.observe.metrics`` exports.

A ``Reading`` is one scrape; ``live`` compares two scrapes of one replica (rates and quantiles over the interval
between them) and gives the same figures since the replica started (its counters' totals). Quantiles are
estimated from the histogram's buckets as Prometheus's ``histogram_quantile`` does (linear within the bucket
holding the rank; the highest finite bound when it falls in the ``+Inf`` bucket). With ``--workers N`` the
gauges carry a ``pid`` label per worker: a breaker is open when a worker says so, every version a worker
decides with is listed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from decision.observe.metrics import BREAKER_OPEN, DECIDE_METHOD, DEGRADED, RPC_CALLS, RPC_SECONDS, RULESET_ACTIVE

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), by bound; the last is +Inf


class UnreadableMetrics(ValueError):
    """The text is not the Prometheus exposition format."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One scrape of one replica, at ``at`` (epoch seconds)."""

    at: float
    decisions: float  # Decide calls answered, every status
    degraded: float  # decisions answered with the fallbacks (every reason)
    buckets: Buckets  # Decide's latency histogram, every status
    breakers: Mapping[str, bool]  # Redis node -> open
    rulesets: tuple[str, ...]  # the versions its workers decide with
    degraded_by_reason: Mapping[str, float] = field(default_factory=dict)


def read_exposition(text: str, at: float) -> Reading:
    """A reading of a replica's ``/metrics`` text. Raises UnreadableMetrics."""
    decisions = degraded = 0.0
    buckets: dict[float, float] = defaultdict(float)
    reasons: dict[str, float] = defaultdict(float)
    breakers: dict[str, bool] = {}
    rulesets: dict[str, None] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise UnreadableMetrics(f"not Prometheus metrics: {exc}") from None
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{RPC_CALLS}_total" and labels.get("method") == DECIDE_METHOD:
                decisions += sample.value
            elif sample.name == f"{RPC_SECONDS}_bucket" and labels.get("method") == DECIDE_METHOD:
                buckets[_bound(labels)] += sample.value
            elif sample.name == f"{DEGRADED}_total":
                degraded += sample.value
                reasons[labels.get("reason", "")] += sample.value
            elif sample.name == BREAKER_OPEN:
                node = labels.get("node", "")
                breakers[node] = breakers.get(node, False) or sample.value > 0
            elif sample.name == RULESET_ACTIVE and sample.value > 0:
                rulesets[labels.get("version", "")] = None
    return Reading(at, decisions, degraded, tuple(sorted(buckets.items())), breakers, tuple(rulesets),
                   {r: n for r, n in reasons.items() if n})  # fmt: skip


def _bound(labels: Mapping[str, str]) -> float:
    """A histogram bucket's upper bound (its ``le`` label). Raises UnreadableMetrics."""
    text = labels.get("le")
    if text is None:
        raise UnreadableMetrics(f"a {RPC_SECONDS} bucket without its 'le' label")
    try:
        bound = float(text)
    except ValueError:
        raise UnreadableMetrics(f"a {RPC_SECONDS} bucket whose 'le' label is not a number: {text!r}") from None
    if math.isnan(bound):
        raise UnreadableMetrics(f"a {RPC_SECONDS} bucket whose 'le' label is not a number: {text!r}")
    return bound


def quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile (0 to 1) of a cumulative histogram, as Prometheus's ``histogram_quantile``; None
    without observations."""
    if not buckets or buckets[-1][0] != math.inf:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:  # beyond the last finite bound: that bound is all one can say
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def _difference(now: Buckets, before: Buckets) -> Buckets:
    earlier = dict(before)
    return tuple((bound, max(0.0, count - earlier.get(bound, 0.0))) for bound, count in now)


@dataclass(frozen=True, slots=True)
class Figures:
    """Decisions and their latency over a span: the last interval, or since the replica started."""

    seconds: float | None  # the span (None: since the replica started, unknown)
    decisions: float
    degraded: float
    p50: float | None  # seconds
    p99: float | None

    @property
    def per_second(self) -> float | None:
        return self.decisions / self.seconds if self.seconds else None

    @property
    def degraded_share(self) -> float | None:
        return self.degraded / self.decisions if self.decisions else None


def figures(buckets: Buckets, decisions: float, degraded: float, seconds: float | None) -> Figures:
    return Figures(seconds, decisions, degraded, quantile(0.5, buckets), quantile(0.99, buckets))


def live(now: Reading, before: Reading | None) -> tuple[Figures | None, Figures]:
    """The figures of the interval since ``before`` (None without an earlier reading, or after a restart:
    counters went down), and since the replica started."""
    total = figures(now.buckets, now.decisions, now.degraded, None)
    if before is None or now.at <= before.at or now.decisions < before.decisions:
        return None, total
    interval = figures(
        _difference(now.buckets, before.buckets),
        now.decisions - before.decisions,
        max(0.0, now.degraded - before.degraded),
        now.at - before.at,
    )
    return interval, total


def versions_of(readings: Sequence[Reading]) -> tuple[str, ...]:
    """Every ruleset version the replicas decide with (more than one: a publication reaching them, or a
    replica that refused it)."""
    return tuple(dict.fromkeys(v for reading in readings for v in reading.rulesets))
