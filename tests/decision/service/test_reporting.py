"""decision.service.reporting against a real Redis: what it reads for the report."""

from __future__ import annotations

import redis.asyncio as aioredis

from decision.core.outcomes import outcome_field
from decision.rules.loader import parse
from decision.service.reporting import ReportRequest, read_report
from decision.store.control import ControlStore
from inbound_common.keys import KeySpace

RULES = """
version: v1
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
offers:
  - {id: fb, placements: [banner], priority: -1}
  - id: x
    placements: [banner]
    experiment: {id: exp, variants: [{id: a, weight: 1}, {id: b, weight: 1}]}
"""


async def test_an_experiment_is_read_from_its_first_counted_day_the_offers_from_the_first_asked(
    redis_client: aioredis.Redis,
) -> None:
    """The counters of every day kept are read: the experiment counted since 2026-06-01 is reported from then
    when the report starts on 2026-06-02 (its always-valid sequence must not start where someone chose)."""
    keys = KeySpace()
    for day in ("2026-06-01", "2026-06-02", "2026-06-03"):
        await redis_client.hset(keys.outcomes("x", day), mapping={  # type: ignore[misc]
            outcome_field("v1", "banner", "exp", variant, counted): count
            for variant in ("a", "b")
            for counted, count in (("decision", 1_000), ("click", 100))
        })  # fmt: skip
    ruleset, problems = parse(RULES.encode(), "r.yaml")
    assert ruleset is not None, problems
    report = await read_report(ControlStore(redis_client, keys), ReportRequest(("2026-06-02",)), [ruleset])
    [experiment] = report.experiments
    assert experiment.since == "2026-06-01"
    assert [look.day for look in experiment.looks] == ["2026-06-01", "2026-06-02"]  # not the day after
    assert [v.conversion.trials for v in experiment.variants] == [2_000, 2_000]
    assert [o.proposals for o in report.offers] == [2_000]  # the offers: the day asked only
