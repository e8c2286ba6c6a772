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

import grpc
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.keys import KeySpace
from tests.conftest import StartServer, decision_stub
from tests.decision.core import plans
from tests.decision.delivery import (
    HEAD,
    PATIENT,
    Clock,
    decide,
    event,
    first,
    no_offer_nor_token_twice,
    record,
    ruleset,
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
