"""Reading a replica's /metrics back: the exposition of a real ``Metrics`` registry, and the quantiles of its
histogram as Prometheus's ``histogram_quantile`` computes them (worked by hand below, and by brute force)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from decision.observe.metrics import DECIDE_METHOD, RPC_BUCKETS, Metrics
from decision.observe.readings import UnreadableMetrics, live, quantile, read_exposition

INF = math.inf


def test_a_quantile_is_interpolated_within_its_bucket_as_prometheus_does() -> None:
    # 10 observations: 2 up to 1 ms, 6 more up to 2 ms, 2 more up to 5 ms. Rank of the median: 5, in the
    # (1 ms, 2 ms] bucket, 3 of its 6 observations in: 1 + (2 - 1) * 3/6 ms.
    buckets = ((0.001, 2.0), (0.002, 8.0), (0.005, 10.0), (INF, 10.0))
    assert quantile(0.5, buckets) == 0.0015
    assert quantile(0.1, buckets) == 0.0005  # in the first bucket, from 0
    assert quantile(0.99, buckets) == 0.002 + 0.003 * (9.9 - 8.0) / 2.0
    assert quantile(0.99, ((0.001, 1.0), (INF, 10.0))) == 0.001  # in +Inf: the highest finite bound
    assert quantile(0.5, ((0.001, 0.0), (INF, 0.0))) is None


@given(st.lists(st.sampled_from(RPC_BUCKETS), min_size=1, max_size=200), st.floats(0.01, 0.99))
def test_the_quantile_lies_in_the_bucket_that_holds_its_rank(observed: list[float], q: float) -> None:
    bounds = (*RPC_BUCKETS, INF)
    buckets = tuple((b, float(sum(1 for o in observed if o <= b))) for b in bounds)
    found = quantile(q, buckets)
    assert found is not None
    rank = q * len(observed)
    holding = next(i for i, (_, count) in enumerate(buckets) if count >= rank)  # brute force: the first bucket
    low = 0.0 if holding == 0 else bounds[holding - 1]
    assert low <= found <= bounds[holding]


def test_a_metrics_registry_read_back() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.0015, 0.0015, 0.003):
        metrics.rpc(DECIDE_METHOD, "OK", seconds)
    metrics.rpc("/decision.v1.DecisionService/RecordEvents", "OK", 0.5)  # not a decision
    metrics.degraded("read_timeout")
    metrics.ruleset_active("v7")
    metrics.security_sampled({}, {"": (False, 0), "10.0.0.2:6379": (True, 3)}, 0)
    before = read_exposition(generate_latest(metrics.registry).decode(), at=100.0)
    assert before.decisions == 4 and before.degraded == 1 and before.rulesets == ("v7",)
    assert before.breakers == {"single": False, "10.0.0.2:6379": True}
    assert before.degraded_by_reason == {"read_timeout": 1.0}
    for _ in range(10):
        metrics.rpc(DECIDE_METHOD, "OK", 0.0009)
    now = read_exposition(generate_latest(metrics.registry).decode(), at=102.0)
    interval, total = live(now, before)
    assert interval is not None and interval.per_second == 5.0 and interval.degraded_share == 0.0
    assert interval.p50 is not None and 0.0005 < interval.p50 <= 0.001  # the last 10, all in (0.5, 1] ms
    assert total.decisions == 14 and total.degraded_share == 1 / 14
    assert live(now, None)[0] is None
    assert live(before, now)[0] is None  # counters went down: a restart, no rate


def test_a_bucket_without_a_numeric_bound_is_unreadable_not_a_crash() -> None:
    bucket = f'decision_rpc_duration_seconds_bucket{{method="{DECIDE_METHOD}"{{}}}} 3\n'
    for labels, said in [("", "without its 'le' label"), (',le="fast"', "'fast'"), (',le="NaN"', "'NaN'")]:
        with pytest.raises(UnreadableMetrics, match=said):
            read_exposition(bucket.replace("{}", labels), at=1.0)
