"""The decision service end to end: a real gRPC channel to a real server backed by a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from decision.store.embedded import EmbeddedRedis
from inbound_common.keys import KeySpace
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import add_membership, decide_request, offers
from tests.redis_cluster import pause_node

PAUSE = 3.0  # seconds a node is paused: longer than any call made meanwhile
FALLBACK = """
  - id: fb
    placements: [banner, side]
    priority: -100
    content: {title: Fallback}
    eligibility: {audiences: {all: [nobody-is-in-this]}}
"""

HEAD = """
placements:
  - {id: banner, channels: [web, mobile], max_items: 20, fallback: fb}
  - {id: side, channels: [web], max_items: 3, fallback: fb}
offers:
"""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@pytest.fixture
def rules(write_rules: Callable[[str], Path]) -> Callable[[str], Path]:
    def _rules(offers_yaml: str, settings: str = "") -> Path:
        return write_rules(settings + HEAD + FALLBACK + offers_yaml)

    return _rules


async def decide(port: int, **kwargs: Any) -> Any:
    async with decision_stub(port) as stub:
        return await stub.Decide(decide_request(**kwargs), timeout=5)


async def test_audiences_all_any_none(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(
        rules(
            """
  - {id: all_ab, placements: [banner], eligibility: {audiences: {all: [a, b]}}}
  - {id: any_ab, placements: [banner], eligibility: {audiences: {any: [a, b]}}}
  - {id: none_ab, placements: [banner], eligibility: {audiences: {none: [a, b]}}}
  - {id: a_not_c, placements: [banner], eligibility: {audiences: {all: [a], none: [c]}}}
"""
        )
    )
    for audience in ("a", "b"):
        await add_membership(server, "both", audience)
    await add_membership(server, "only-a", "a")
    await add_membership(server, "a-and-c", "a")
    await add_membership(server, "a-and-c", "c")
    expected = {
        "both": {"all_ab", "any_ab", "a_not_c"},
        "only-a": {"any_ab", "a_not_c"},
        "a-and-c": {"any_ab"},
        "nobody": {"none_ab"},
    }
    for profile, wanted in expected.items():
        response = await decide(server.port, profile_id=profile)
        assert set(offers(response)) == wanted, profile
        assert not response.degraded


OPERATOR_OFFERS = """
  - {id: eq, placements: [banner], eligibility: {conditions: {context.device: {eq: ios}}}}
  - {id: ne, placements: [banner], eligibility: {conditions: {context.device: {ne: ios}}}}
  - {id: in, placements: [banner], eligibility: {conditions: {context.device: {in: [ios, android]}}}}
  - {id: not_in, placements: [banner], eligibility: {conditions: {context.device: {not_in: [ios, android]}}}}
  - {id: lt, placements: [banner], eligibility: {conditions: {context.cart: {lt: 100}}}}
  - {id: le, placements: [banner], eligibility: {conditions: {context.cart: {le: 100}}}}
  - {id: gt, placements: [banner], eligibility: {conditions: {context.cart: {gt: 100}}}}
  - {id: ge, placements: [banner], eligibility: {conditions: {context.cart: {ge: 100}}}}
  - {id: exists, placements: [banner], eligibility: {conditions: {context.coupon: {exists: true}}}}
  - {id: absent, placements: [banner], eligibility: {conditions: {context.coupon: {exists: false}}}}
  - {id: contains, placements: [banner], eligibility: {conditions: {context.tags: {contains: vip}}}}
  - {id: starts_with, placements: [banner], eligibility: {conditions: {context.path: {starts_with: /sale}}}}
  - id: nested
    placements: [banner]
    eligibility:
      conditions:
        or:
          - and: [{context.cart: {ge: 50}}, {not: {context.device: {eq: tv}}}]
          - context.tags: {contains: staff}
"""


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"device": "ios"}, {"eq", "in", "absent"}),
        ({"device": "web"}, {"ne", "not_in", "absent"}),
        ({"device": 1}, {"not_in", "absent"}),  # a number is neither "ios" nor another string
        ({"cart": 99.5}, {"lt", "le", "absent", "nested"}),
        ({"cart": 100}, {"le", "ge", "absent", "nested"}),
        ({"cart": 100.01, "device": "tv"}, {"gt", "ge", "ne", "not_in", "absent"}),
        ({"cart": "100"}, {"absent"}),  # a string never compares as a number
        ({"coupon": ""}, {"exists"}),
        ({"tags": ["new", "vip"]}, {"contains", "absent"}),
        ({"tags": "not-a-vip-list"}, {"contains", "absent"}),  # substring of a string
        ({"tags": ["staff"]}, {"absent", "nested"}),
        ({"path": "/sale/shoes"}, {"starts_with", "absent"}),
        ({"path": "/home/sale"}, {"absent"}),
    ],
)
async def test_each_operator(
    start_server: StartServer, rules: Callable[[str], Path], context: dict[str, Any], expected: set[str]
) -> None:
    server = await start_server(rules(OPERATOR_OFFERS))
    response = await decide(server.port, context=context)
    assert set(offers(response)) == expected


async def test_schedules_before_within_after(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    now = time.time()
    server = await start_server(
        rules(
            f"""
  - {{id: future, placements: [banner], eligibility: {{schedule: {{start: "{iso(now + 3600)}"}}}}}}
  - {{id: current, placements: [banner],
      eligibility: {{schedule: {{start: "{iso(now - 3600)}", end: "{iso(now + 3600)}"}}}}}}
  - {{id: past, placements: [banner], eligibility: {{schedule: {{end: "{iso(now - 1)}"}}}}}}
"""
        )
    )
    assert offers(await decide(server.port)) == ["current"]


async def test_ranking_by_priority_then_file_order(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(
        rules(
            """
  - {id: low, placements: [side], priority: 1}
  - {id: tie_first, placements: [side], priority: 5}
  - {id: high, placements: [side], priority: 9}
  - {id: tie_second, placements: [side], priority: 5}
"""
        )
    )
    for _ in range(3):  # deterministic
        response = await decide(server.port, placements=["side"])
        assert offers(response) == ["high", "tie_first", "tie_second"]
        assert [i.priority for i in response.propositions[0].items] == [9, 5, 5]


async def test_max_items(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(
        rules("".join(f"  - {{id: o{i}, placements: [side], priority: {i}}}\n" for i in range(5)))
    )
    assert offers(await decide(server.port, placements=[("side", 2)])) == ["o4", "o3"]
    assert offers(await decide(server.port, placements=[("side", 0)])) == ["o4", "o3", "o2"]  # placement's max
    assert offers(await decide(server.port, placements=[("side", 50)])) == ["o4", "o3", "o2"]  # capped at it


async def test_no_duplicates_across_placements(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    offers_yaml = """
  - {id: shared, placements: [banner, side], priority: 10}
  - {id: side_only, placements: [side], priority: 1}
"""
    server = await start_server(rules(offers_yaml))
    response = await decide(server.port, placements=["banner", "side"])
    assert offers(response, "banner") == ["shared"]
    assert offers(response, "side") == ["side_only"]
    # Request order decides who gets first pick.
    response = await decide(server.port, placements=["side", "banner"])
    assert offers(response, "side") == ["shared", "side_only"]
    assert offers(response, "banner") == ["fb"]

    allowing = await start_server(rules(offers_yaml, "settings: {allow_duplicate_propositions: true}\n"))
    response = await decide(allowing.port, placements=["banner", "side"])
    assert offers(response, "banner") == ["shared"]
    assert offers(response, "side") == ["shared", "side_only"]


async def test_fallback_when_nothing_qualifies(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(rules("  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}\n"))
    response = await decide(server.port, placements=["banner", "side"])
    for proposition in response.propositions:
        assert proposition.fallback
        assert [(i.offer_id, i.rule, i.fallback) for i in proposition.items] == [("fb", "fallback", True)]
    assert not response.degraded


async def test_response_fields(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(
        rules(
            """
  - id: vip
    placements: [banner]
    priority: 7
    content: {title: Hello, nested: {n: 1}}
    eligibility:
      - {name: by_audience, audiences: {all: [vip]}}
      - {name: by_context, conditions: {context.device: {eq: ios}}}
"""
        )
    )
    await add_membership(server, "p1", "vip")
    response = await decide(server.port, request_id="req-123", context={"device": "ios"})
    item = response.propositions[0].items[0]
    assert (item.offer_id, item.rule, item.priority) == ("vip", "by_audience", 7)  # first matching rule
    assert item.content_json == '{"title":"Hello","nested":{"n":1}}'
    assert response.request_id == "req-123"
    assert response.ruleset_version.startswith("sha256:")
    token = server.settings.token_keys.open(item.tracking_token, "p1")
    assert (token.decision_id, token.placement_id, token.offer_id) == (response.decision_id, "banner", "vip")
    generated = await decide(server.port, profile_id="p2", context={"device": "ios"})
    assert generated.request_id and generated.propositions[0].items[0].rule == "by_context"


async def test_expired_membership_stops_counting(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(rules("  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}\n"))
    await add_membership(server, "soon", "vip", expires_at=time.time() + 3600)
    await add_membership(server, "gone", "vip", expires_at=time.time() - 1, written_at=time.time() - 60)
    assert offers(await decide(server.port, profile_id="soon")) == ["vip"]
    assert offers(await decide(server.port, profile_id="gone")) == ["fb"]


async def test_degraded_answer_while_redis_is_stopped(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    own_redis = EmbeddedRedis().start()
    try:
        server = await start_server(
            rules("  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}\n"), url=own_redis.url
        )
        await add_membership(server, "p1", "vip")
        assert offers(await decide(server.port)) == ["vip"]
    finally:
        own_redis.stop()
    async with decision_stub(server.port) as stub:
        response = await stub.Decide(decide_request(placements=["banner", "side"]), timeout=5)
    assert response.degraded
    assert [(p.placement_id, offers(response, p.placement_id)) for p in response.propositions] == [
        ("banner", ["fb"]),
        ("side", ["fb"]),
    ]


async def test_slow_redis_answers_within_the_deadline(
    start_server: StartServer, rules: Callable[[str], Path], redis_client: Any
) -> None:
    # The Redis read gets the caller's deadline minus a margin, however long the Redis timeout. The margin
    # here leaves room for a busy machine (the service's default is a few milliseconds): the answer is
    # checked, not its speed.
    margin = {"deadline_margin": 0.5, "deadline_margin_max": 0.5}
    server = await start_server(rules(""), redis_timeout=30.0, **margin)
    async with decision_stub(server.port) as stub:
        assert not (await stub.Decide(decide_request(), timeout=5)).degraded
        await pause_node(redis_client, KeySpace().membership("p1"), PAUSE)  # p1's node answers nothing meanwhile
        # Had the server waited for Redis, the client would see DEADLINE_EXCEEDED instead of an answer.
        response = await stub.Decide(decide_request(), timeout=1.0)
    assert response.degraded
    await redis_client.exists(KeySpace().membership("p1"))  # answered once the pause is over: for the next test


INVALID_CASES: list[tuple[dict[str, Any], str]] = [
    ({"profile_id": ""}, "profile_id: required"),
    ({"profile_id": "x" * 300}, "profile_id: longer than 256 bytes"),
    ({"profile_id": "p\n1"}, "profile_id: contains control characters"),
    ({"channel": ""}, "channel: required"),
    ({"placements": []}, "placements: at least one placement is required"),
    ({"placements": ["nope"]}, "placements[0].placement_id: unknown placement 'nope'"),
    ({"placements": ["baner"]}, "placements[0].placement_id: unknown placement 'baner' (did you mean 'banner'?)"),
    ({"placements": ["banner", "banner"]}, "placements[1].placement_id: placement 'banner' is requested twice"),
    ({"placements": [""]}, "placements[0].placement_id: required"),
    ({"placements": [("banner", 1000)]}, "placements[0].max_items: at most 100"),
    ({"placements": ["side"], "channel": "mobile"}, "placements[0].placement_id: placement 'side' is not served"),
    ({"placements": ["banner"] * 17}, "placements: at most 16 placements per request"),
    ({"context": {f"k{i}": i for i in range(65)}}, "context: at most 64 attributes"),
    ({"context": {"x": None}}, "context.x: null is not allowed"),
    ({"context": {"x": {"nested": 1}}}, "context.x: nested objects are not allowed"),
    ({"context": {"x": [[1]]}}, "context.x[0]: nested lists are not allowed"),
    ({"context": {"x": "y" * 5000}}, "context.x: string longer than 4096 bytes"),
    ({"context": {"x": list(range(101))}}, "context.x: list longer than 100 items"),
    ({"context": {"k" * 200: 1}}, "context: invalid attribute name"),
]


@pytest.mark.parametrize(("fields", "message"), INVALID_CASES)
async def test_invalid_argument_names_the_field(
    start_server: StartServer, rules: Callable[[str], Path], fields: dict[str, Any], message: str
) -> None:
    server = await start_server(rules(""))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await decide(server.port, **fields)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(message), caught.value.details()


async def test_non_finite_numbers_are_invalid(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(rules(""))
    request = decide_request()
    request.context["x"].number_value = float("nan")
    async with decision_stub(server.port) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Decide(request, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "context.x: numbers must be finite, got nan"


async def test_declared_attribute_types_are_enforced(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = await start_server(write_rules("attributes: {cart: number}\n" + HEAD + FALLBACK))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await decide(server.port, context={"cart": "12"})
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "context.cart: the ruleset declares a number, the request sent a string"


async def test_health_and_reflection(start_server: StartServer, rules: Callable[[str], Path]) -> None:
    server = await start_server(rules(""))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "decision.v1.DecisionService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = [s.name async for r in responses for s in r.list_services_response.service]
    assert "decision.v1.DecisionService" in services
    assert "grpc.health.v1.Health" in services


async def test_reload_swaps_atomically_and_refuses_invalid(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    path = write_rules("version: v1\n" + HEAD + FALLBACK)
    server = await start_server(path)
    assert (await decide(server.port)).ruleset_version == "v1"
    path.write_text("version: v2\n" + HEAD + FALLBACK + "  - {id: new, placements: [banner]}\n")
    assert server.reload()
    response = await decide(server.port)
    assert (response.ruleset_version, offers(response)) == ("v2", ["new"])
    path.write_text("version: v3\n" + HEAD + "  - {id: broken, placements: [nowhere]}\n")
    assert not server.reload()
    assert (await decide(server.port)).ruleset_version == "v2"
