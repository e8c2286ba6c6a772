"""Caps counted on decision hold under concurrency: 1,000 simultaneous Decide calls, real gRPC and Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc

from decision.v1 import decision_pb2, decision_pb2_grpc
from tests.conftest import StartServer
from tests.decision.delivery import ruleset
from tests.decision.helpers import decide_request

CALLS = 1000


async def storm(port: int, profiles: list[str]) -> Counter[str]:
    """Send one Decide per profile in the list, all at once; count the offers proposed (degraded apart)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)

        async def one(profile: str) -> decision_pb2.DecideResponse:
            response: decision_pb2.DecideResponse = await stub.Decide(decide_request(profile_id=profile), timeout=60)
            return response

        responses = await asyncio.gather(*(one(p) for p in profiles))
    return Counter("degraded" if r.degraded else r.propositions[0].items[0].offer_id for r in responses)


async def test_a_profile_cap_of_3_gives_exactly_3_proposals(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    rules = ruleset(
        """
  - {id: capped, placements: [banner], priority: 10, caps: [{max: 3, period: day}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    # A generous Redis budget: a reservation whose answer came too late would be counted, not proposed.
    server = await start_server(write_rules(rules), redis_timeout=30.0)
    seen = await storm(server.port, ["p1"] * CALLS)
    print("profile cap 3:", dict(seen))
    assert seen["capped"] == 3, seen
    assert seen["capped"] + seen["next"] + seen["degraded"] == CALLS
    assert seen["next"] > 0  # the others were decided, and the capped offer gave way


async def test_a_total_cap_across_200_profiles_is_never_exceeded(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    rules = ruleset(
        """
  - {id: coupon, placements: [banner], priority: 10, caps: [{max: 37, scope: total}, {max: 1}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    server = await start_server(write_rules(rules), redis_timeout=30.0)
    profiles = [f"p{i % 200}" for i in range(CALLS)]
    seen = await storm(server.port, profiles)
    print("total cap 37:", dict(seen))
    assert seen["coupon"] == 37, seen
    assert seen["coupon"] + seen["next"] + seen["degraded"] == CALLS
