"""Caps, contact policies and suppression through Redis and gRPC (decision/service/reservations.py): the counters
a decision reads, what select.lua and RecordEvents add to them, total caps across servers, the counts an
explanation shows. An injected clock: period boundaries without sleeping.

What the controls decide is tested without the network in tests/decision/core/test_controls.py and
test_explain.py; these check that the counters in Redis feed the same rules.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.api.server import RunningServer
from decision.core.counters import sticky_variant_field
from decision.core.types import DecisionRequest, PlacementRequest
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.keys import KeySpace
from tests.conftest import StartServer, decision_stub
from tests.decision.core import plans
from tests.decision.delivery import (
    HEAD,
    PATIENT,
    Clock,
    Stored,
    decide,
    event,
    first,
    no_offer_nor_token_twice,
    nothing_written,
    record,
    ruleset,
    stored,
    with_clock,
)
from tests.decision.helpers import add_membership, decide_request

HOUR = 3600.0
DAY = 86_400.0


def offers_of(response: decision_pb2.DecideResponse) -> list[list[str]]:
    return [[i.offer_id for i in p.items] for p in response.propositions]


async def test_caps_and_a_policy_counted_on_decision_in_redis(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+00:00")
    rules = ruleset(
        """
  - {id: a, placements: [side], priority: 30, caps: [{max: 1, period: 24h}]}
  - {id: b, placements: [side], priority: 20}
  - {id: c, placements: [side], priority: 10}
""",
        head=HEAD,
        policies="""
contact_policies:
  - {id: side_daily, placements: [side], max: 4, period: day}
""",
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        assert offers_of(await decide(stub, placements=["side"])) == [["a", "b", "c"]]
        assert offers_of(await decide(stub, placements=["side"])) == [["b"]]  # a capped; one message left
        assert offers_of(await decide(stub, placements=["side"])) == [["fb"]]
        assert offers_of(await decide(stub, "p2", placements=["side"])) == [["a", "b", "c"]]  # per profile
        clock.set("2026-06-02T09:00:00+00:00")  # a new day (the policy), 24 h after `a` (its rolling cap)
        assert offers_of(await decide(stub, placements=["side"])) == [["a", "b", "c"]]


async def test_events_counted_in_redis_cap_and_suppress(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T12:00:00+00:00")
    rules = ruleset(
        """
  - {id: seen, placements: [side], priority: 30, caps: [{max: 2, period: 7d, counts: impression}]}
  - {id: clicked, placements: [side], priority: 20, caps: [{max: 1, counts: interact}]}
  - {id: bought, placements: [side], priority: 10, caps: [{max: 1, period: day, counts: "custom:purchase"}]}
  - {id: app_promo, placements: [banner], priority: 30, suppress: {after_dismissals: 1, for: 7d}}
  - {id: other, placements: [banner], priority: 10}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        earlier = await decide(stub, placements=["side", "banner"])  # decisions alone count nothing here
        response = await decide(stub, placements=["side", "banner"])
        items = {i.offer_id: i for p in response.propositions for i in p.items}
        assert offers_of(response) == [["seen", "clicked", "bought"], ["app_promo"]]
        now = clock()
        assert (
            await record(
                stub,
                event(items["seen"], "e1", at=now),
                # Another proposal's impression (a token counts once). 1 is EVENT_TYPE_IMPRESSION, and what clients
                # built with the former alias EVENT_TYPE_DISPLAY send.
                event(first(earlier), "e2", decision_pb2.EventType.ValueType(1), at=now),
                event(items["clicked"], "e3", decision_pb2.EVENT_TYPE_CLICK, at=now),
                event(items["bought"], "e4", decision_pb2.EVENT_TYPE_CUSTOM, at=now, custom_type="purchase"),
                event(items["app_promo"], "e5", decision_pb2.EVENT_TYPE_DISMISS, at=now),
            )
            == [("recorded", "")] * 5
        )
        assert offers_of(await decide(stub, placements=["side", "banner"])) == [["fb"], ["other"]]
        clock.set("2026-06-08T12:00:00+00:00")  # the impressions left the window, the suppression ended
        assert offers_of(await decide(stub, placements=["side", "banner"])) == [["seen", "bought"], ["app_promo"]]


async def test_a_total_cap_counted_on_impressions_reaches_every_server(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T08:00:00+00:00")
    rules = ruleset(
        """
  - {id: launch, placements: [banner], priority: 20, caps: [{max: 2, scope: total, counts: impression}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT, totals_refresh_interval=0.0), clock)
    async with decision_stub(server.port) as stub:
        items = [first(await decide(stub, f"p{i}")) for i in range(3)]
        assert [i.offer_id for i in items] == ["launch"] * 3  # decisions do not count
        results = await record(
            stub, *(event(item, f"e{i}", at=clock(), profile=f"p{i}") for i, item in enumerate(items[:2]))
        )
        assert results == [("recorded", "")] * 2
        # The recording server learns the new total at once; others on their next refresh.
        assert first(await decide(stub, "p9")).offer_id == "next"
    other = with_clock(await start_server(write_rules(rules), **PATIENT, totals_refresh_interval=0.0), clock)
    async with decision_stub(other.port) as stub:
        answers = [first(await decide(stub, "p9")).offer_id for _ in range(50)]
        assert answers[-1] == "next"
        assert set(answers[answers.index("next") :]) == {"next"}


EXPLAINED = """
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
  - {id: side, channels: [web], max_items: 2, fallback: fb_side}
offers:
  - {id: fb, placements: [banner], priority: -100}
  - {id: fb_side, placements: [side], priority: -100}
  - {id: coupon, placements: [banner], priority: 93, caps: [{max: 1, scope: total, period: lifetime}]}
  - {id: once, placements: [banner], priority: 92, caps: [{max: 1, period: lifetime}]}
  - {id: dismissable, placements: [banner], priority: 91, suppress: {after_dismissals: 1, for: 1d}}
  - {id: both, placements: [banner, side], priority: 90}
  - {id: top_side, placements: [side], priority: 50}
contact_policies:
  - {id: side_daily, placements: [side], max: 1, period: day}
"""


async def test_explanations_show_the_counts_read_from_redis(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = with_clock(await start_server(write_rules(EXPLAINED), **PATIENT), Clock("2026-11-29T12:00:00+00:00"))
    async with decision_stub(server.port) as stub:
        assert first(await decide(stub, "other")).offer_id == "coupon"  # the only coupon, to someone else
        assert first(await decide(stub, "p1")).offer_id == "once"
        shown = first(await decide(stub, "p1"))
        assert shown.offer_id == "dismissable"
        dismissed = event(shown, "e1", decision_pb2.EVENT_TYPE_DISMISS, at=server.service.clock())
        assert await record(stub, dismissed) == [("recorded", "")]
        assert first(await decide(stub, "p1", ("side",))).offer_id == "both"  # the policy's one a day
        response = await decide(stub, "p1", ("banner", "side"), explain=True)
    why = {(e.placement_id, e.offer_id): e for e in response.explanations}
    outcome = decision_pb2.ExplanationOutcome.Name
    assert {key: (outcome(e.outcome), e.count, e.limit) for key, e in why.items()} == {
        ("banner", "coupon"): ("EXPLANATION_OUTCOME_TOTAL_CAP_REACHED", 1, 1),
        ("banner", "once"): ("EXPLANATION_OUTCOME_CAPPED", 1, 1),
        ("banner", "dismissable"): ("EXPLANATION_OUTCOME_SUPPRESSED", 1, 1),
        ("banner", "both"): ("EXPLANATION_OUTCOME_SELECTED", 0, 0),
        ("banner", "fb"): ("EXPLANATION_OUTCOME_LOST_RANKING", 0, 0),
        ("side", "top_side"): ("EXPLANATION_OUTCOME_CONTACT_POLICY", 1, 1),
        ("side", "both"): ("EXPLANATION_OUTCOME_CONTACT_POLICY", 1, 1),
        ("side", "fb_side"): ("EXPLANATION_OUTCOME_FALLBACK", 0, 0),
    }


async def test_holdout_stand_ins_never_repeat_an_offer_over_grpc(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    """Random rulesets with holdouts serving the fallback on multi-item placements: no offer, no token twice."""
    path = write_rules(ruleset("  - {id: o, placements: [banner]}\n"))
    server = await start_server(path, **PATIENT)
    loop = asyncio.get_running_loop()
    keys = KeySpace()

    async def prepare(document: str, profile: str, audiences: list[str]) -> None:
        path.write_text(document, encoding="utf-8")
        assert server.reload()
        await redis_client.delete(keys.membership(profile), keys.counters(profile))
        for audience in audiences:
            await add_membership(server, profile, audience)

    @settings(
        max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")) // 6,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(document=plans.documents(controls=True), data=st.data())
    def check(document: str, data: st.DataObject) -> None:
        # Runs in a worker thread: the server keeps serving on the test's event loop.
        profile = data.draw(st.sampled_from(plans.PROFILES))
        audiences = data.draw(st.lists(st.sampled_from(plans.audiences_of(document)), unique=True))
        asyncio.run_coroutine_threadsafe(prepare(document, profile, audiences), loop).result(30)
        placements = [(p, data.draw(st.integers(0, 3))) for p in data.draw(st.permutations(plans.PLACEMENTS))]
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            for explain in (False, True, False):  # counted twice: caps and policies come into play
                request = decide_request(profile_id=profile, placements=placements, explain=explain)
                response = stub.Decide(request, timeout=10)
                assert not response.degraded
                no_offer_nor_token_twice(response)

    await asyncio.to_thread(check)


# -- dry runs: the real call's answer, nothing counted ----------------------------------------------------------

LEARNING = "{strategy: thompson, metric: click, per: decision, min_exposure: 1}"
DRY_RUN_RULES = f"""
placements:
  - {{id: banner, channels: [web], max_items: 1, fallback: fb}}
  - {{id: side, channels: [web], max_items: 3, fallback: fb, ranking: {LEARNING}}}
offers:
  - {{id: fb, placements: [banner, side], priority: -100}}
  - {{id: capped, placements: [banner], priority: 30, caps: [{{max: 2, period: day}}]}}
  - {{id: budget, placements: [side], priority: 20, caps: [{{max: 3, scope: total}}]}}
  - id: tested
    placements: [side]
    priority: 15
    experiment:
      id: copy
      allocation: {LEARNING}
      variants: [{{id: plain, weight: 1}}, {{id: bold, weight: 1}}]
  - {{id: ranked, placements: [side], priority: 10}}
  - {{id: drawn, placements: [side], priority: 10}}
contact_policies:
  - {{id: side_daily, placements: [side], max: 10, period: day}}
"""
# Servers of the dry-run tests: totals, proposal counts and learned counts refreshed only when the test says so,
# so that no background work writes (or changes what a decision reads) between the snapshots a test compares.
QUIET = {**PATIENT, "totals_refresh_interval": 3600.0, "outcome_flush_interval": 3600.0,
         "learning_refresh_interval": 3600.0}  # fmt: skip


def answer_of(response: decision_pb2.DecideResponse) -> decision_pb2.DecideResponse:
    """What a decision answered, without what is its own (its id, tokens) and the dry-run flag."""
    answer = decision_pb2.DecideResponse()
    answer.CopyFrom(response)
    answer.decision_id, answer.dry_run = "", False
    for proposition in answer.propositions:
        for item in proposition.items:
            item.tracking_token = ""
    return answer


async def settle(server: RunningServer) -> None:
    """The server's background work done: give-backs, totals refresh, the proposal tally flushed to Redis."""
    await server.service.proposer.settled()
    await server.service.proposals.flush()


async def test_a_dry_run_writes_nothing_and_answers_as_the_real_call(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    """Caps, a contact policy, a total cap, a sticky auto experiment and a learned ranking in play."""
    clock = Clock("2026-06-01T09:00:00+00:00")
    server = with_clock(await start_server(write_rules(DRY_RUN_RULES), **QUIET), clock)
    learned = server.service.learning
    async with decision_stub(server.port) as stub:
        for _ in range(2):  # counted: the cap is used up, the policy and the total counted, proposals tallied
            response = await decide(stub, placements=["banner", "side"])
        tested = next(i for i in response.propositions[1].items if i.offer_id == "tested")
        assert await record(stub, event(tested, "seen", at=clock())) == [("recorded", "")]  # its variant: sticky
        await settle(server)
        await learned.refresh(server.service.active.current.ruleset)  # the learned ranking draws from the tallies
        assert learned.learner.rates.offers, "the side placement draws: nothing to compare"
        before = await stored(redis_client)
        request = decide_request(placements=["banner", "side"], explain=True, why_not=["capped"], request_id="r")
        request.dry_run = True
        learned.learner.rng.seed(7)
        dry = await stub.Decide(request, timeout=10)
        await settle(server)
        nothing_written(before, await stored(redis_client))
        assert dry.dry_run and not dry.degraded
        assert all(not i.tracking_token for p in dry.propositions for i in p.items)  # nothing to record events about
        assert offers_of(dry)[0] == ["fb"]  # capped: the two real decisions used its cap up
        assert "tested" in offers_of(dry)[1] and any(i.variant == tested.variant for i in dry.propositions[1].items)
        request.dry_run = False
        learned.learner.rng.seed(7)  # the same Thompson draws
        real = await stub.Decide(request, timeout=10)
        assert not real.dry_run and all(i.tracking_token for p in real.propositions for i in p.items)
        assert answer_of(dry) == answer_of(real)
        await settle(server)
        assert await stored(redis_client) != before  # what the dry run did not do: the real call counted


@st.composite
def learning_documents(draw: st.DrawFn) -> str:
    """plans.documents, some placements ranked by Thompson draws and some experiments allocated by them."""
    parsed = yaml.safe_load(draw(plans.documents(controls=True)))
    learning = {"strategy": "thompson", "metric": "click", "per": "decision", "min_exposure": 1}
    for placement in parsed["placements"]:
        if draw(st.booleans()):
            placement["ranking"] = learning
    for offer in parsed["offers"]:
        if "experiment" in offer and draw(st.booleans()):
            offer["experiment"].update(
                allocation=learning, variants=[{"id": "v", "weight": 1}, {"id": "w", "weight": 1}]
            )
    return yaml.safe_dump(parsed, sort_keys=False)


async def test_dry_runs_answer_as_real_calls_and_write_nothing_on_random_rulesets(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    """Random rulesets, counters, totals, sticky variants and learned counts: each dry run leaves Redis byte for byte
    as it was, and answers what the real call made right after it answers (the same Thompson draws)."""
    path = write_rules(ruleset("  - {id: o, placements: [banner]}\n"))
    clock = Clock(plans.NOW_MS / 1000)
    server = with_clock(await start_server(path, **QUIET), clock)
    service, loop, keys = server.service, asyncio.get_running_loop(), KeySpace()

    async def prepare(document: str, profile: str, audiences: list[str], state: dict[str, Any]) -> None:
        path.write_text(document, encoding="utf-8")
        assert server.reload()
        await settle(server)
        old = [key async for key in redis_client.scan_iter(match=f"{keys.prefix}:total:*")]
        await redis_client.delete(keys.membership(profile), keys.counters(profile), *old)
        for audience in audiences:
            await add_membership(server, profile, audience)
        if state["counters"]:
            await redis_client.hset(keys.counters(profile), mapping=state["counters"])
        prepared = service.active.current
        for offer, count in state["totals"].items():
            for check in prepared.controls.total_checks(offer, None, plans.NOW_MS):
                await redis_client.set(keys.total_count(offer, check.counted, check.bucket), min(count, check.limit))
        service.totals.replace({}, float("-inf"))  # stale: the next decision re-reads every total, in the background
        await service.decide(
            DecisionRequest(profile, "web", (PlacementRequest(plans.PLACEMENTS[0]),), {}, dry_run=True)
        )
        await service.proposer.settled()  # the server's view of the totals as they are now
        await service.learning.refresh(prepared.ruleset)

    async def snapshot() -> Stored:
        await settle(server)
        return await stored(redis_client)

    def on_loop(work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, loop).result(30)

    @settings(
        max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")) // 6,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(document=learning_documents(), data=st.data())
    def check(document: str, data: st.DataObject) -> None:
        # Runs in a worker thread: the server keeps serving on the test's event loop.
        parsed = yaml.safe_load(document)
        profile = data.draw(st.sampled_from(plans.PROFILES))
        audiences = data.draw(st.lists(st.sampled_from(plans.audiences_of(document)), unique=True))
        counters = {
            k: ",".join(map(str, v)) for k, v in data.draw(plans.counters(plans.counter_fields(document))).items()
        }
        for offer in parsed["offers"]:  # the variant an auto experiment's impression made sticky
            experiment = offer.get("experiment", {})
            if "allocation" in experiment and data.draw(st.booleans()):
                counters[sticky_variant_field(experiment["id"])] = data.draw(st.sampled_from(["v", "w"]))
        totals = {o["id"]: data.draw(st.integers(0, 3)) for o in parsed["offers"]}
        on_loop(prepare(document, profile, audiences, {"counters": counters, "totals": totals}))
        offer_ids = [o["id"] for o in parsed["offers"]]
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            for _ in range(3):  # the real calls count: caps, policies and totals come into play
                placements = [(p, data.draw(st.integers(0, 3))) for p in data.draw(st.permutations(plans.PLACEMENTS))]
                asked = data.draw(st.lists(st.sampled_from(offer_ids), unique=True, max_size=2))  # every placement
                request = decide_request(profile_id=profile, placements=placements, explain=data.draw(st.booleans()),
                                         why_not=asked, request_id="r")  # fmt: skip
                seed = data.draw(st.integers(0, 2**32))
                before = on_loop(snapshot())
                request.dry_run = True
                service.learning.learner.rng.seed(seed)
                dry = stub.Decide(request, timeout=10)
                nothing_written(before, on_loop(snapshot()))
                request.dry_run = False
                service.learning.learner.rng.seed(seed)
                real = stub.Decide(request, timeout=10)
                assert not dry.degraded and not real.degraded
                assert dry.dry_run and not any(i.tracking_token for p in dry.propositions for i in p.items)
                assert answer_of(dry) == answer_of(real)

    await asyncio.to_thread(check)
