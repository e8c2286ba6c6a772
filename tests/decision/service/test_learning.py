"""Learned ranking (Thompson sampling) over real gRPC calls, RecordEvents and a real Redis."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from decision.core.learning import Rates
from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, event, record, with_clock

# True click rates per impression; "best" is the best, the others at most half as good.
CTR = {"low": 0.03, "mid": 0.07, "high": 0.10, "best": 0.25}
RULES = """
placements:
  - id: banner
    channels: [web]
    max_items: 1
    fallback: fb
    ranking: {strategy: thompson, metric: click, per: impression, min_exposure: 20}
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
""" + "".join(f"  - {{id: {offer}, placements: [banner]}}\n" for offer in CTR)
ROUNDS, PER_ROUND = 12, 100


async def test_traffic_concentrates_on_the_best_offer_with_less_regret_than_uniform(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T08:00:00+00:00")
    server = with_clock(await start_server(write_rules(RULES), learning_refresh_interval=3600.0, **PATIENT), clock)
    server.service.learning.learner.rng = random.Random(7)  # reproducible draws
    clicks = random.Random(11)  # reproducible visitors
    ruleset = server.service.active.current.ruleset
    shown: list[Counter[str]] = []
    regret = 0.0
    async with decision_stub(server.port) as stub:
        for round_ in range(ROUNDS):
            counts: Counter[str] = Counter()
            for n in range(PER_ROUND):
                profile = f"r{round_}-{n}"
                item = (await decide(stub, profile)).propositions[0].items[0]
                counts[item.offer_id] += 1
                regret += CTR["best"] - CTR[item.offer_id]
                batch = [event(item, f"i-{profile}", at=clock(), profile=profile)]
                if clicks.random() < CTR[item.offer_id]:
                    batch.append(
                        event(item, f"c-{profile}", decision_pb2.EVENT_TYPE_CLICK, at=clock(), profile=profile)
                    )
                assert {o for o, _ in await record(stub, *batch)} == {"recorded"}
                clock.advance(1)
            shown.append(counts)
            await server.service.proposals.flush()
            await server.service.learning.refresh(ruleset)  # as the background refresh does every few seconds
    # Exploration first: every offer reached the minimum exposure.
    assert all(sum(c[o] for c in shown) >= 20 for o in CTR)
    late = sum(shown[-3:], Counter())
    assert late["best"] / sum(late.values()) >= 0.8, shown
    uniform = ROUNDS * PER_ROUND * (CTR["best"] - sum(CTR.values()) / len(CTR))
    assert regret < uniform / 2, (regret, uniform)


async def test_explain_shows_the_draw_and_the_counts(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = await start_server(write_rules(RULES), **PATIENT)
    await server.service.learning.stop()  # counts set here, not read from Redis
    learner = server.service.learning.learner
    learner.rates = Rates({("banner", o): {"impression": 1000, "click": int(1000 * r)} for o, r in CTR.items()})
    learner.rng = random.Random(3)
    async with decision_stub(server.port) as stub:
        response = await decide(stub, "p1", explain=True)
    reasons = {e.offer_id: e.reason for e in response.explanations}
    assert "Thompson draw" in reasons[response.propositions[0].items[0].offer_id]
    assert "250 click in 1000 impression" in reasons["best"]
    assert "Beta(30 + 1, 970 + 1)" in reasons["low"]


# Click rates per proposal of each variant of an auto-allocated offer experiment.
VARIANT_CTR = {"a": 0.05, "b": 0.10, "c": 0.30}
AUTO_RULES = """
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - id: hero
    placements: [banner]
    experiment:
      id: hero-copy
      allocation: {strategy: thompson, metric: click, per: decision, min_exposure: 20}
      variants: [{id: a, weight: 1}, {id: b, weight: 1}, {id: c, weight: 1}]
"""


async def test_auto_allocation_concentrates_on_the_best_variant(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T08:00:00+00:00")
    server = with_clock(await start_server(write_rules(AUTO_RULES), learning_refresh_interval=3600.0, **PATIENT), clock)
    server.service.learning.learner.rng = random.Random(5)
    visitors = random.Random(13)
    ruleset = server.service.active.current.ruleset
    shown: list[Counter[str]] = []
    async with decision_stub(server.port) as stub:
        for round_ in range(10):
            counts: Counter[str] = Counter()
            for n in range(60):
                profile = f"r{round_}-{n}"
                item = (await decide(stub, profile)).propositions[0].items[0]
                counts[item.variant] += 1
                batch = [event(item, f"i-{profile}", at=clock(), profile=profile)]
                if visitors.random() < VARIANT_CTR[item.variant]:
                    batch.append(
                        event(item, f"c-{profile}", decision_pb2.EVENT_TYPE_CLICK, at=clock(), profile=profile)
                    )
                await record(stub, *batch)
                clock.advance(1)
            shown.append(counts)
            await server.service.proposals.flush()
            await server.service.learning.refresh(ruleset)
    late = sum(shown[-3:], Counter())
    assert late["c"] / sum(late.values()) >= 0.8, shown


async def test_a_profile_keeps_the_variant_it_saw(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T08:00:00+00:00")
    server = with_clock(await start_server(write_rules(AUTO_RULES), **PATIENT), clock)
    await server.service.learning.stop()  # counts set here
    learner = server.service.learning.learner
    async with decision_stub(server.port) as stub:
        seen = (await decide(stub, "saw")).propositions[0].items[0]  # by weight: no variant has exposures yet
        assert await record(stub, event(seen, "i-1", at=clock(), profile="saw")) == [("recorded", "")]
        unseen = (await decide(stub, "never-saw")).propositions[0].items[0]  # proposed, no impression recorded
        # Now every variant has exposures, and the one "saw" did not see wins every draw.
        best = next(v for v in VARIANT_CTR if v != seen.variant)
        learner.rates = Rates(variants={("hero-copy", v): {"decision": 1000, "click": 900 if v == best else 1}
                                        for v in VARIANT_CTR})  # fmt: skip
        again = (await decide(stub, "saw")).propositions[0].items[0]
        assert again.variant == seen.variant  # sticky, from the profile's hash (same round trip)
        assert (await decide(stub, "never-saw")).propositions[0].items[0].variant == best
        assert (await decide(stub, "new")).propositions[0].items[0].variant == best
    assert unseen.variant in VARIANT_CTR
