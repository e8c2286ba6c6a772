"""Profile attributes and personalized content end to end: written by audience_sync into a real Redis,
read by a real server in the decision's one round trip, tested by rules, ranked by formulas, rendered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from audience_sync.store import CutoverItem, SyncStore
from decision.api.server import RunningServer
from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import add_attributes, decide_request, offers, registry_heard

RULES = """
version: attrs-1
profile_attributes:
  tier: string
  ltv: number
  first_name: string
  stores: list
  last_order: timestamp
attributes: {city: string}
placements:
  - {id: banner, channels: [web], max_items: 3, fallback: fb, score: "profile.ltv / 10"}
offers:
  - id: gold
    placements: [banner]
    content: {title: 'Hi {{profile.first_name | default: "there"}}, 10 % off in {{context.city}} today'}
    eligibility:
      conditions:
        - profile.tier: {in: [gold, platinum]}
  - id: big-spender
    placements: [banner]
    on_missing: skip
    escape: html
    content: {title: "Dear {{profile.first_name}}", tags: ['{{profile.stores | default: "none"}}', 3]}
    eligibility:
      conditions: {profile.ltv: {ge: 1000}}
  - id: lyon
    placements: [banner]
    content: {title: Lyon}
    eligibility:
      conditions: {and: [{profile.stores: {contains: lyon}}, {profile.last_order: {gt: 1700000000}}]}
  - id: fb
    placements: [banner]
    priority: -100
    content: {title: 'Hello {{profile.first_name | default: "you"}}'}
    eligibility: {audiences: {all: [nobody]}}
"""


@pytest.fixture
async def server(start_server: StartServer, write_rules: Callable[[str], Path]) -> RunningServer:
    return await start_server(write_rules(RULES))


async def decide(server: RunningServer, profile_id: str, **fields: Any) -> decision_pb2.DecideResponse:
    async with decision_stub(server.port) as stub:
        return await stub.Decide(decide_request(profile_id=profile_id, **fields), timeout=5)


def contents(response: decision_pb2.DecideResponse) -> dict[str, Any]:
    return {item.offer_id: orjson.loads(item.content_json) for item in response.propositions[0].items}


def explained(response: decision_pb2.DecideResponse, offer_id: str) -> decision_pb2.OfferExplanation:
    return next(e for e in response.explanations if e.offer_id == offer_id)


async def test_rules_formulas_and_content_read_the_profile(server: RunningServer) -> None:
    await add_attributes(
        server,
        "ana",
        {
            "tier": ("string", "gold"),
            "ltv": ("number", 1500),
            "first_name": ("string", "Ana"),
            "stores": ("list", ["lyon", "paris"]),
            "last_order": ("timestamp", 1_750_000_000),
        },
    )
    response = await decide(server, "ana", context={"city": "Lyon"})
    assert set(offers(response)) == {"gold", "big-spender", "lyon"}
    assert contents(response)["gold"] == {"title": "Hi Ana, 10 % off in Lyon today"}
    assert contents(response)["big-spender"] == {"title": "Dear Ana", "tags": ["lyon, paris", 3]}
    assert {item.score for item in response.propositions[0].items} == {150.0}  # profile.ltv / 10
    # Nothing known of this profile: the fallback, its placeholder defaulted; the context still renders.
    unknown = await decide(server, "nobody-known", context={"city": "Lyon"})
    assert offers(unknown) == ["fb"]
    assert contents(unknown)["fb"] == {"title": "Hello you"}


async def test_a_later_event_wins_and_explain_shows_the_profiles_value(server: RunningServer) -> None:
    await add_attributes(server, "bo", {"tier": ("string", "gold")}, event_time=2000)
    stale = await add_attributes(server, "bo", {"tier": ("string", "silver")}, event_time=1000)
    assert (stale.written, stale.stale) == (0, 1)
    assert offers(await decide(server, "bo", context={"city": "Nice"})) == ["gold"]
    assert (
        contents(await decide(server, "bo", context={"city": "Nice"}))["gold"]["title"]
        == "Hi there, 10 % off in Nice today"
    )

    await add_attributes(server, "bo", {"tier": ("string", "silver")}, event_time=3000)
    response = await decide(server, "bo", explain=True)
    why = explained(response, "gold")
    assert why.outcome == decision_pb2.EXPLANATION_OUTCOME_CONDITION_FALSE
    assert why.attribute == "profile.tier"
    assert why.actual.string_value == "silver"
    assert 'profile.tier is "silver"' in why.reason

    await add_attributes(server, "bo", {"tier": ("string", None)}, event_time=4000)  # removed
    await add_attributes(server, "bo", {"tier": ("string", "gold")}, event_time=3500)  # older than the removal
    why = explained(await decide(server, "bo", explain=True), "gold")
    assert why.attribute == "profile.tier" and not why.HasField("actual")
    assert "profile.tier is absent" in why.reason


async def test_html_escape_and_on_missing_skip(server: RunningServer) -> None:
    await add_attributes(server, "cy", {"ltv": ("number", 5000), "first_name": ("string", '<b>"Cy"</b>')})
    assert contents(await decide(server, "cy"))["big-spender"]["title"] == "Dear &lt;b&gt;&quot;Cy&quot;&lt;/b&gt;"

    await add_attributes(server, "dee", {"ltv": ("number", 5000), "tier": ("string", "gold")})  # no first name
    response = await decide(server, "dee", explain=True)
    assert offers(response) == ["gold"]  # big-spender says skip when a value is missing
    why = explained(response, "big-spender")
    assert why.outcome == decision_pb2.EXPLANATION_OUTCOME_CONTENT_MISSING
    assert why.attribute == "profile.first_name"
    # gold has no escape option: the value is inserted as it is (the client escapes), and blank when missing.
    assert contents(response)["gold"]["title"] == "Hi there, 10 % off in  today"


async def test_a_request_cannot_pass_for_the_profile(server: RunningServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await decide(server, "eve", context={"profile.tier": "gold"})
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context.profile.tier" in str(error.value.details())


async def test_snapshot_attributes_switch_with_its_memberships(server: RunningServer, redis_url: str) -> None:
    """A snapshot's attributes count from its cutover on; those of the snapshot it replaced stop counting."""
    store = SyncStore.from_url(redis_url, server.store.keys)

    def begin() -> tuple[int, int]:
        begun = store.begin_snapshot("loyalty", now=time.time(), stale_after=300, source="t", owner="tests:1")
        return begun.code, begun.generation

    def cutover(code: int, generation: int) -> None:
        item = CutoverItem("loyalty", code, generation, 1, "t")
        assert not store.cutover([item], now=time.time(), extra={}).refused

    try:
        code, first = await asyncio.to_thread(begin)
        await add_attributes(server, "fay", {"tier": ("string", "platinum")}, snapshot=(code, first))
        await registry_heard(server)
        assert offers(await decide(server, "fay")) == ["fb"]  # loading: not counted yet
        await asyncio.to_thread(cutover, code, first)
        await registry_heard(server)
        assert offers(await decide(server, "fay")) == ["gold"]

        _, second = await asyncio.to_thread(begin)  # the next snapshot does not carry fay's tier
        await asyncio.to_thread(cutover, code, second)
        await registry_heard(server)
        assert offers(await decide(server, "fay")) == ["fb"]
    finally:
        store.close()


async def test_with_caps_the_one_script_read_brings_the_attributes_too(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    """A ruleset that counts reads the profile with read_profile.lua: attributes come in the same call."""
    capped = RULES.replace(
        "  - id: gold\n    placements: [banner]\n",
        "  - id: gold\n    placements: [banner]\n    caps: [{max: 1, period: day}]\n",
    )
    assert capped != RULES
    server = await start_server(write_rules(capped))
    await add_attributes(server, "gus", {"tier": ("string", "gold"), "first_name": ("string", "Gus")})
    first = await decide(server, "gus", context={"city": "Metz"})
    assert contents(first) == {"gold": {"title": "Hi Gus, 10 % off in Metz today"}}
    second = await decide(server, "gus")
    assert contents(second) == {"fb": {"title": "Hello Gus"}}  # capped (counted on the first); fallback personalized
