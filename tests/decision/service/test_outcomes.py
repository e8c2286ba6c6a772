"""Outcome counters over real gRPC calls and a real Redis: proposals (flushed) and events (counted once)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.core.outcomes import OutcomeRow, event_digest, outcome_field, token_digest
from decision.core.periods import day_span
from decision.store.connect import connect
from decision.store.outcomes import scan_outcomes
from decision.store.profiles import OutcomeEvent, OutcomeEvents, ProfileStore
from decision.v1 import decision_pb2
from inbound_common.keys import KeySpace
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, event, record, ruleset, with_clock

RULES = ruleset(
    """
  - id: hero
    placements: [banner]
    priority: 20
    experiment:
      id: hero-copy
      variants:
        - {id: plain, weight: 1}
        - {id: bold, weight: 1}
      holdout: {weight: 1, serves: fallback}
""",
    settings="settings: {time_zone: Europe/Paris}\n",
)


def totals(rows: list[OutcomeRow]) -> Counter[tuple[str, str, str, str]]:
    """(offer, variant, counted, day) -> count."""
    result: Counter[tuple[str, str, str, str]] = Counter()
    for row in rows:
        result[(row.offer_id, row.variant, row.counted, row.day)] += row.count
    return result


async def test_proposals_and_events_are_counted_per_offer_variant_and_day(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    clock = Clock("2026-06-01T23:30:00+02:00")  # Paris: June 1st, half an hour before midnight
    server = with_clock(await start_server(write_rules(RULES), **PATIENT), clock)
    expected: Counter[tuple[str, str, str, str]] = Counter()
    async with decision_stub(server.port) as stub:
        for n in range(30):
            profile = f"u{n}"
            item = (await decide(stub, profile)).propositions[0].items[0]
            expected[(item.offer_id, item.variant, "decision", "2026-06-01")] += 1
            batch = [event(item, f"i-{n}", at=clock(), profile=profile)]
            if n % 3 == 0:  # a click after midnight counts on its decision's day, June 1st, with its impression
                batch.append(event(item, f"c-{n}", decision_pb2.EVENT_TYPE_CLICK, at=clock() + 3600, profile=profile))
                expected[(item.offer_id, item.variant, "click", "2026-06-01")] += 1
            expected[(item.offer_id, item.variant, "impression", "2026-06-01")] += 1
            clock.advance(3600)
            assert {o for o, _ in await record(stub, *batch)} == {"recorded"}
            assert {o for o, _ in await record(stub, *batch)} == {"duplicate"}  # a retry: counted once
            clock.advance(-3600)
    await server.service.proposals.flush()
    rows = await scan_outcomes(redis_client, KeySpace(), {"2026-06-01", "2026-06-02"})
    assert totals(rows) == expected
    assert {v for (_, v, _, _) in expected} == {"plain", "bold", "holdout"}
    assert {r.version for r in rows} == {server.service.active.current.version}
    assert {(r.placement_id, r.experiment_id) for r in rows} == {("banner", "hero-copy")}
    key = KeySpace().outcomes("hero", "2026-06-01")
    assert await redis_client.pttl(key) > 0  # bounded: every day expires


async def test_an_event_recorded_but_not_counted_is_counted_by_its_retry(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    # The outcome counters live in another slot than the profile: their script dedupes on its own, so a
    # failure between the two calls (simulated: the counted event's digest and count removed) heals on retry.
    clock = Clock("2026-06-01T10:00:00+00:00")
    server = with_clock(await start_server(write_rules(RULES), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        item = (await decide(stub, "u1")).propositions[0].items[0]
        click = event(item, "c-1", decision_pb2.EVENT_TYPE_CLICK, at=clock(), profile="u1")
        assert await record(stub, click) == [("recorded", "")]
        keys = KeySpace()
        day = "2026-06-01"
        await redis_client.delete(keys.outcomes(item.offer_id, day), keys.outcomes_seen(item.offer_id, day))
        assert await record(stub, click) == [("duplicate", "")]  # for the profile's counters
        assert await record(stub, click) == [("duplicate", "")]
    rows = await scan_outcomes(redis_client, keys, {"2026-06-01"})
    assert [(r.counted, r.count) for r in rows if r.counted == "click"] == [("click", 1)]


async def test_a_graceful_stop_flushes_the_last_proposals(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    server = await start_server(write_rules(RULES), outcome_flush_interval=3600.0, **PATIENT)
    async with decision_stub(server.port) as stub:
        for n in range(5):
            await decide(stub, f"u{n}")
    day = day_span("Europe/Paris", int(server.service.clock() * 1000))[0]
    assert await scan_outcomes(redis_client, KeySpace(), {day}) == []  # not flushed yet: an hour away
    await server.stop(grace=1.0)
    rows = await scan_outcomes(redis_client, KeySpace(), {day})
    assert sum(r.count for r in rows if r.counted == "decision") == 5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p1", "p2"]), st.integers(0, 5), st.integers(0, 2),
                          st.sampled_from(["click", "impression", "dismiss", "custom:buy"])),
                min_size=1, max_size=30))  # fmt: skip
async def test_count_outcomes_counts_each_event_and_each_tokens_type_once(
    redis_url: str, events: list[tuple[str, int, int, str]]
) -> None:
    # Any sequence of batches, each sent twice (a retry), repeated event ids and replayed tokens included: an event
    # counts when neither its (profile, event id) nor its (profile, token, type) was counted before; a click or a
    # dismissal counts its token's impression too when that was not. So clicks and dismissals never outnumber
    # impressions, and each token counts each type at most once.
    keys = KeySpace("prop")
    store = ProfileStore(connect(redis_url), keys)
    counters = keys.outcomes("o", "2026-06-01")
    implying = {"click", "dismiss"}

    def outcome(profile: str, n: int, token: int, kind: str) -> OutcomeEvent:
        implied = (token_digest(profile, f"d{token}", "banner", "impression"), outcome_field("v", "banner", "", "",
                   "impression")) if kind in implying else ("", "")  # fmt: skip
        return OutcomeEvent(event_digest(profile, f"e{n}"), token_digest(profile, f"d{token}", "banner", kind),
                            outcome_field("v", "banner", "", "", kind), *implied)  # fmt: skip

    try:
        await store.client.delete(counters)
        await store.client.delete(keys.outcomes_seen("o", "2026-06-01"))
        for start in range(0, len(events), 7):
            batch = [OutcomeEvents("o", "2026-06-01", 60_000, 60_000, [outcome(*e) for e in events[start : start + 7]])]
            for _ in range(2):
                await store.record_events([], batch)
        seen: set[tuple[str, ...]] = set()
        expected: Counter[str] = Counter()
        for p, n, token, kind in events:
            new_event, new_type = ("e", p, str(n)) not in seen, ("t", p, str(token), kind) not in seen
            seen |= {("e", p, str(n)), ("t", p, str(token), kind)}
            if new_event and new_type:
                expected[kind] += 1
                if kind in implying and ("t", p, str(token), "impression") not in seen:
                    seen.add(("t", p, str(token), "impression"))
                    expected["impression"] += 1
        raw = await store.client.hgetall(counters)
        counted = {k.decode().rsplit("|", 1)[1]: int(v) for k, v in raw.items()}
        assert counted == dict(expected)
        assert counted.get("click", 0) <= counted.get("impression", 0) >= counted.get("dismiss", 0)
        tokens = {(p, t) for p, _, t, _ in events}
        assert all(counted.get(kind, 0) <= len(tokens) for kind in ("impression", "click", "dismiss", "custom:buy"))
    finally:
        await store.close()
