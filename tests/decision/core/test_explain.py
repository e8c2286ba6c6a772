"""Decide with explain=true: every offer of the requested placements, selected or the first reason it was not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from decision.core.types import Outcome
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, event, first, record, with_clock
from tests.decision.helpers import add_membership
from tests.waiting import eventually

RULES = """
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
  - {id: side, channels: [web], max_items: 2, fallback: fb_side}
offers:
  - {id: fb, placements: [banner], priority: -100, eligibility: {audiences: {all: [nobody]}}}
  - {id: fb_side, placements: [side], priority: -100, eligibility: {audiences: {all: [nobody]}}}
  - id: ended
    placements: [banner]
    priority: 99
    eligibility: {schedule: {start: "2020-01-01T00:00:00Z", end: "2021-01-01T00:00:00Z"}}
  - {id: needs_a, placements: [banner], priority: 98, eligibility: {audiences: {all: [a]}}}
  - {id: any_cd, placements: [banner], priority: 97, eligibility: {audiences: {any: [c, d]}}}
  - {id: not_b, placements: [banner], priority: 96, eligibility: {audiences: {none: [b]}}}
  - id: big_cart
    placements: [banner]
    priority: 95
    eligibility: {conditions: [{context.device: {eq: desktop}}, {context.cart_value: {gt: 100}}]}
  - id: held_out
    placements: [banner]
    priority: 94
    experiment: {id: exp1, variants: [{id: v, weight: 1}], holdout: {weight: 1000000, serves: nothing}}
  - {id: once, placements: [banner], priority: 92, caps: [{max: 1, period: lifetime}]}
  - {id: dismissable, placements: [banner], priority: 91, suppress: {after_dismissals: 1, for: 1d}}
  - {id: coupon, placements: [banner], priority: 93, caps: [{max: 1, scope: total, period: lifetime}]}
  - {id: both, placements: [banner, side], priority: 90}
  - {id: top_side, placements: [side], priority: 50}
  - {id: second_side, placements: [side], priority: 40}
  - {id: third_side, placements: [side], priority: 30}
contact_policies:
  - {id: side_daily, placements: [side], max: 3, period: day}
"""


def outcomes(response: decision_pb2.DecideResponse) -> dict[tuple[str, str], decision_pb2.OfferExplanation]:
    return {(e.placement_id, e.offer_id): e for e in response.explanations}


def name(explanation: decision_pb2.OfferExplanation) -> str:
    return decision_pb2.ExplanationOutcome.Name(explanation.outcome).removeprefix("EXPLANATION_OUTCOME_").lower()


def test_every_domain_outcome_has_a_wire_value() -> None:
    for outcome in Outcome:
        assert decision_pb2.ExplanationOutcome.Value(f"EXPLANATION_OUTCOME_{outcome.name}") > 0


async def test_every_reason(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    server = await start_server(write_rules(RULES), **PATIENT, totals_refresh_interval=0.05)
    clock = Clock("2026-11-29T12:00:00+00:00")
    with_clock(server, clock)
    for profile in ("p1", "other"):
        await add_membership(server, profile, "b")
    context: dict[str, Any] = {"device": "desktop", "cart_value": 35}
    async with decision_stub(server.port) as stub:
        # Someone else takes the only coupon; p1 sees `once`, then dismisses `dismissable`.
        assert first(await decide(stub, "other", ("banner",))).offer_id == "coupon"
        first_view = await decide(stub, "p1", ("banner",), context=context)
        assert first(first_view).offer_id == "once"
        clock.advance(60)
        second_view = await decide(stub, "p1", ("banner",), context=context)
        assert first(second_view).offer_id == "dismissable"
        assert await record(stub, event(first(second_view), "e1", decision_pb2.EVENT_TYPE_DISMISS, at=clock.now)) == [
            ("recorded", "")
        ]
        clock.advance(60)
        # The server's view of total caps has the coupon taken, and no refresh that read it earlier is running.
        totals = server.service.totals
        await eventually(lambda: list(totals.counts.values()) == [1] and not totals.refreshing, "coupon's total seen")
        response = await decide(stub, "p1", ("banner", "side"), context=context, explain=True)

    assert [p.items[0].offer_id for p in response.propositions] == ["both", "top_side"]
    explained = outcomes(response)
    # placements in request order, offers by rank
    assert [(e.placement_id, e.offer_id) for e in response.explanations][:3] == [
        ("banner", "ended"),
        ("banner", "needs_a"),
        ("banner", "any_cd"),
    ]
    expected = {
        ("banner", "ended"): "outside_schedule",
        ("banner", "needs_a"): "not_in_audience",
        ("banner", "any_cd"): "not_in_audience",
        ("banner", "not_b"): "in_excluded_audience",
        ("banner", "big_cart"): "condition_false",
        ("banner", "held_out"): "holdout",
        ("banner", "once"): "capped",
        ("banner", "dismissable"): "suppressed",
        ("banner", "coupon"): "total_cap_reached",
        ("banner", "both"): "selected",
        ("banner", "fb"): "not_in_audience",
        ("side", "top_side"): "selected",
        ("side", "second_side"): "selected",
        ("side", "both"): "proposed_elsewhere",
        ("side", "third_side"): "lost_ranking",
        ("side", "fb_side"): "not_in_audience",
    }
    assert {key: name(e) for key, e in explained.items()} == expected
    assert explained["banner", "needs_a"].audience == "a"
    assert explained["banner", "any_cd"].audience == "c, d"
    assert explained["banner", "not_b"].audience == "b"
    condition = explained["banner", "big_cart"]
    assert condition.condition == "context.cart_value > 100"
    assert condition.attribute == "cart_value"
    assert json_format.MessageToDict(condition.actual) == 35
    assert "context.cart_value is 35" in condition.reason
    assert explained["banner", "held_out"].experiment_id == "exp1"
    assert (explained["banner", "once"].count, explained["banner", "once"].limit) == (1, 1)
    assert (explained["banner", "coupon"].count, explained["banner", "coupon"].limit) == (1, 1)
    assert explained["side", "third_side"].beaten_by == "second_side"
    assert "2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z" in explained["banner", "ended"].reason


async def test_contact_policy_and_fallback(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    server = await start_server(write_rules(RULES), **PATIENT)
    with_clock(server, Clock("2026-11-29T12:00:00+00:00"))
    async with decision_stub(server.port) as stub:
        for _ in range(2):  # 2 items, then the 1 the policy still allows: its 3 a day are used up
            await decide(stub, "p2", ("side",))
        response = await decide(stub, "p2", ("side",), explain=True)
    explained = outcomes(response)
    assert response.propositions[0].fallback
    assert name(explained["side", "fb_side"]) == "fallback"
    blocked = explained["side", "top_side"]
    assert name(blocked) == "contact_policy"
    assert (blocked.count, blocked.limit) == (3, 3)
    assert "side_daily" in blocked.reason


async def test_degraded_answers_say_the_profile_was_unavailable(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    own_redis = EmbeddedRedis().start()
    server = await start_server(write_rules(RULES), url=own_redis.url)
    own_redis.stop()
    async with decision_stub(server.port) as stub:
        response = await decide(stub, "p1", ("banner",), explain=True)
    assert response.degraded
    explained = outcomes(response)
    assert name(explained["banner", "fb"]) == "fallback"
    assert {name(e) for key, e in explained.items() if key[1] != "fb"} == {"profile_unavailable"}


async def test_no_explanations_unless_asked(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    server = await start_server(write_rules(RULES), **PATIENT)
    async with decision_stub(server.port) as stub:
        response = await decide(stub, "p3", ("banner",))
    assert not response.explanations
