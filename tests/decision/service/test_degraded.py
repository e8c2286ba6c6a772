"""A degraded answer says why: counted by reason in the metrics, its cause logged at most once per interval.

Against a real redis-server made to refuse writes (``maxmemory 1``, ``noeviction``: "OOM command not
allowed"), the way a full Redis does, and a real gRPC server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from decision.service.degraded import REASONS, DegradedAnswers
from decision.store.embedded import EmbeddedRedis
from tests.conftest import StartServer, decision_stub, limit_memory
from tests.decision.helpers import add_membership, decide_request
from tests.decision.observe.test_observe import scrape, value
from tests.waiting import eventually

RULES = """
version: v1
placements: [{id: banner, channels: [web], max_items: 1, fallback: fb}]
offers:
  - {id: fb, placements: [banner]}
  - {id: capped, placements: [banner], priority: 10, caps: [{max: 1000, period: day}],
     eligibility: {audiences: {all: [vip]}}}
"""
DECIDES = 500
LOGGER = "decision.service.degraded"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


async def test_answers_degraded_by_a_redis_refusing_writes_are_counted_and_logged_once(
    start_server: StartServer,
    write_rules: Callable[[str], Path],
    own_redis: EmbeddedRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # A generous Redis budget: on a busy box a read may still time out now and then (counted as read_timeout).
    running = await start_server(write_rules(RULES), own_redis.url, metrics_port=0, redis_timeout=2.0)
    running.service.degraded.every = 3600.0  # one line per cause during the test, the rest counted
    await add_membership(running, "p1", "vip")
    async with decision_stub(running.port) as stub:
        normal = await stub.Decide(decide_request("p1"), timeout=5)
        assert not normal.degraded and normal.propositions[0].items[0].offer_id == "capped"
        limit_memory(own_redis.url, 1)
        try:
            answers = [await stub.Decide(decide_request("p1"), timeout=10) for _ in range(DECIDES)]
        finally:
            limit_memory(own_redis.url, 0)
        assert all(answer.degraded for answer in answers)
        degraded = DECIDES
        while (await stub.Decide(decide_request("p1"), timeout=10)).degraded:  # until Redis takes writes again
            degraded += 1
            assert degraded < DECIDES + 1000, "decisions did not recover"
            await asyncio.sleep(0.01)

    samples = await scrape(running.metrics_port or 0)
    counted = {reason: value(samples, "decision_degraded_total", reason=reason) or 0 for reason in REASONS}
    assert counted["count_error"] >= DECIDES * 0.9, counted  # the cap's count is a write: refused
    assert sum(counted.values()) == degraded, counted  # every degraded answer, under one reason
    logged = lines(caplog)
    refused = [line for line in logged if "OOM command not allowed" in line]
    assert len(refused) == 1, logged  # one line for the cause, not one per answer
    assert "count_error" in refused[0] and "counting the decision" in refused[0]
    assert len(logged) == len(set(logged)), logged  # one line per cause

    running.service.degraded.stop()  # what was counted but not logged yet: one line per cause, with its count
    summaries = [line for line in lines(caplog) if line.startswith("answered ")]
    told = sum(int(line.split()[1]) for line in summaries) + len(logged)
    assert told == sum(counted.values()), (summaries, counted)


async def test_a_cause_logs_once_then_one_line_with_the_count_at_the_end_of_its_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    answers = DegradedAnswers(every=0.2)
    for _ in range(5):
        answers.record("read_timeout", "reading the profile: Redis did not answer in time")
    answers.record("breaker_open", "Redis reads keep failing: circuit breaker open")
    assert lines(caplog) == [
        "answering with fallbacks (degraded, read_timeout): reading the profile: Redis did not answer in time",
        "answering with fallbacks (degraded, breaker_open): Redis reads keep failing: circuit breaker open",
    ]
    await eventually(lambda: len(lines(caplog)) == 3, "the 4 others logged in one line")  # the interval ended
    assert lines(caplog)[2] == (
        "answered 4 more with fallbacks in the last 0.2 s (degraded, read_timeout): "
        "reading the profile: Redis did not answer in time"
    )
    assert answers.by_reason == {"read_timeout": 5, "breaker_open": 1}
