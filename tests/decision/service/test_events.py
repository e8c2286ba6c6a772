"""RecordEvents: idempotent by event id within the dedupe window and by token and type for the token's lifetime,
per-event results, partial batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from decision.core.tokens import TrackingToken
from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, event, first, record, ruleset, with_clock

RULES = ruleset(
    """
  - {id: promo, placements: [banner], priority: 10, caps: [{max: 3, period: 30d, counts: impression}]}
  - {id: next, placements: [banner], priority: 5}
""",
    settings="custom_events: [add_to_cart, purchase, wishlist]\n",
)


def custom(item: decision_pb2.Item, event_id: str, custom_type: str, at: float) -> decision_pb2.Event:
    return event(item, event_id, decision_pb2.EVENT_TYPE_CUSTOM, at=at, custom_type=custom_type)


@pytest.fixture
async def served(start_server: StartServer, write_rules: Callable[[str], Path]) -> tuple[object, Clock]:
    clock = Clock("2026-06-01T09:00:00+00:00")
    server = with_clock(await start_server(write_rules(RULES), **PATIENT), clock)
    return server, clock


async def test_a_retried_batch_counts_once(served: tuple[object, Clock]) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        items = [first(await decide(stub)) for _ in range(2)]
        batch = [event(items[0], "imp-1", at=clock()), event(items[1], "imp-2", at=clock())]
        assert await record(stub, *batch) == [("recorded", "")] * 2
        clock.advance(3600)
        assert await record(stub, *batch) == [("duplicate", "")] * 2  # a retry an hour later
        assert first(await decide(stub)).offer_id == "promo"  # 2 impressions of 3
        # The same id twice in one batch counts once too.
        third = event(first(await decide(stub)), "imp-3", at=clock())
        assert await record(stub, third, third) == [("recorded", ""), ("duplicate", "")]
        assert first(await decide(stub)).offer_id == "next"


async def test_a_bad_event_is_rejected_alone(served: tuple[object, Clock]) -> None:
    server, clock = served
    now = clock()
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        item = first(await decide(stub))
        good = event(item, "good-1", at=now)
        no_type = event(item, "bad-type", decision_pb2.EVENT_TYPE_UNSPECIFIED, at=now)
        no_stamp = event(item, "bad-stamp", at=now)
        no_stamp.ClearField("timestamp")
        forged = event(item, "bad-token", at=now)
        forged.tracking_token = "not-a-token"
        future = event(item, "bad-future", at=now + 3600)
        stale = event(item, "bad-stale", at=now - 2 * 86_400)
        custom = event(item, "bad-custom", decision_pb2.EVENT_TYPE_CUSTOM, at=now)
        stray = event(item, "bad-stray", decision_pb2.EVENT_TYPE_CLICK, at=now, custom_type="x")
        no_id = event(item, "", at=now)
        no_profile = event(item, "bad-profile", at=now, profile="")
        early = event(item, "bad-early", at=now - 3600)
        also_good = event(item, "good-2", decision_pb2.EVENT_TYPE_CUSTOM, at=now, custom_type="add_to_cart")
        results = await record(
            stub, good, no_type, no_stamp, forged, future, stale, custom, stray, no_id, no_profile, early, also_good
        )
    assert results == [
        ("recorded", ""),
        ("rejected", "events[1].type: required"),
        ("rejected", "events[2].timestamp: required"),
        ("rejected", "events[3].tracking_token: not a tracking token"),
        ("rejected", "events[4].timestamp: in the future (more than 300 s ahead of the server's clock)"),
        ("rejected", "events[5].timestamp: older than the dedupe window (24 h): it could be counted twice"),
        ("rejected", "events[6].custom_type: invalid custom event type '' (letters, digits, _ . : -)"),
        ("rejected", "events[7].custom_type: only for EVENT_TYPE_CUSTOM"),
        ("rejected", "events[8].event_id: required"),
        ("rejected", "events[9].profile_id: required"),
        ("rejected", "events[10].timestamp: before the decision it is about"),
        ("recorded", ""),
    ]


@pytest.mark.parametrize("nanos", [-1, 1_000_000_000, 2_000_000_000, -(2**31)])
async def test_a_timestamp_with_nanos_out_of_range_is_rejected(served: tuple[object, Clock], nanos: int) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        item = first(await decide(stub))
        bad = event(item, "bad-nanos", at=clock())
        bad.timestamp.nanos = nanos
        edge = event(item, "good-edge", decision_pb2.EVENT_TYPE_CLICK, at=clock() - 1)
        edge.timestamp.nanos = 999_999_999
        results = await record(stub, event(item, "good", at=clock()), bad, edge)
    assert results == [
        ("recorded", ""),
        ("rejected", f"events[1].timestamp.nanos: {nanos} is outside 0 to 999,999,999 (not a valid timestamp)"),
        ("recorded", ""),
    ]


async def test_after_the_window_a_retry_is_refused_not_counted_again(served: tuple[object, Clock]) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        item = first(await decide(stub))
        late = event(item, "imp-late", at=clock())
        assert await record(stub, late) == [("recorded", "")]
        clock.advance(86_400 + 1)
        [(outcome, reason)] = await record(stub, late)
        assert outcome == "rejected" and "older than the dedupe window" in reason


async def test_events_of_several_profiles_and_tokens_of_other_rulesets(served: tuple[object, Clock]) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        items = [first(await decide(stub, f"p{i}")) for i in range(3)]
        old = server.settings.token_keys.sign(  # type: ignore[attr-defined]
            TrackingToken("d", "banner", "gone_offer", "v0", int(clock() * 1000)).encode(), "p0"
        )
        unknown = decision_pb2.Event(
            event_id="x", profile_id="p0", type=decision_pb2.EVENT_TYPE_CLICK, tracking_token=old
        )
        unknown.timestamp.FromSeconds(int(clock()))
        batch = [event(item, "same-id", at=clock(), profile=f"p{i}") for i, item in enumerate(items)]
        # Event ids are per profile; an offer the ruleset no longer has is recorded (and counts nothing).
        assert await record(stub, *batch, unknown) == [("recorded", "")] * 4


async def test_malformed_batches(served: tuple[object, Clock]) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.RecordEvents(decision_pb2.RecordEventsRequest(), timeout=5)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert empty.value.details() == "events: at least one event is required"
        item = first(await decide(stub))
        many = [event(item, f"e{i}", at=clock()) for i in range(501)]
        with pytest.raises(grpc.aio.AioRpcError) as large:
            await stub.RecordEvents(decision_pb2.RecordEventsRequest(events=many), timeout=5)
        assert large.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_redis_down_is_unavailable_for_the_whole_batch(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    from decision.store.embedded import EmbeddedRedis

    own = EmbeddedRedis().start()
    try:
        clock = Clock("2026-06-01T09:00:00+00:00")
        server = with_clock(await start_server(write_rules(RULES), own.url, **PATIENT), clock)
        async with decision_stub(server.port) as stub:
            item = first(await decide(stub))
            batch = [event(item, "r1", at=clock())]
            own.stop()
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await stub.RecordEvents(decision_pb2.RecordEventsRequest(events=batch), timeout=5)
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        own.stop()


async def test_a_token_is_accepted_for_its_lifetime_after_its_decision(served: tuple[object, Clock]) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        item = first(await decide(stub))
        clock.advance(86_400)  # a day: still accepted
        assert await record(stub, event(item, "click", decision_pb2.EVENT_TYPE_CLICK, at=clock())) == [("recorded", "")]
        clock.advance(1)
        assert await record(stub, event(item, "late", decision_pb2.EVENT_TYPE_DISMISS, at=clock())) == [
            ("rejected", "events[0].tracking_token: expired: its decision is older than the token lifetime (24 h)")
        ]


async def test_a_click_counts_its_tokens_impression_when_that_was_not(served: tuple[object, Clock]) -> None:
    # The cap counts 3 impressions: a click or a dismissal without its impression says the item was shown.
    server, clock = served
    click, dismiss = decision_pb2.EVENT_TYPE_CLICK, decision_pb2.EVENT_TYPE_DISMISS
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        shown = [first(await decide(stub)) for _ in range(3)]
        assert await record(
            stub, event(shown[0], "c0", click, at=clock()), event(shown[0], "i0", at=clock()),
            event(shown[1], "d1", dismiss, at=clock()), event(shown[1], "c1", click, at=clock()),
        ) == [("recorded", ""), ("duplicate", ""), ("recorded", ""), ("recorded", "")]  # fmt: skip
        assert first(await decide(stub)).offer_id == "promo"  # 2 impressions of 3
        assert await record(stub, event(shown[2], "i2", at=clock()), event(shown[2], "c2", click, at=clock())) == [
            ("recorded", ""), ("recorded", ""),
        ]  # fmt: skip
        assert first(await decide(stub)).offer_id == "next"


async def test_custom_events_count_once_per_token_and_type(served: tuple[object, Clock]) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        item = first(await decide(stub))
        assert await record(
            stub,
            custom(item, "buy-1", "purchase", clock()),
            custom(item, "buy-2", "purchase", clock()),
            custom(item, "wish", "wishlist", clock()),
        ) == [("recorded", ""), ("duplicate", ""), ("recorded", "")]


async def dumped(redis: aioredis.Redis) -> dict[bytes, bytes | None]:
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


async def test_a_custom_type_the_ruleset_does_not_name_is_rejected_and_writes_nothing(
    served: tuple[object, Clock], redis_client: aioredis.Redis
) -> None:
    server, clock = served
    async with decision_stub(server.port) as stub:  # type: ignore[attr-defined]
        item = first(await decide(stub))
        before = await dumped(redis_client)
        invented = [custom(item, f"a{n}", f"a{n}", clock()) for n in range(1, 201)]
        results = await record(stub, *invented, custom(item, "typo", "purchse", clock()))
        assert all(outcome == "rejected" for outcome, _ in results)
        assert results[0][1] == (
            "events[0].custom_type: custom event type 'a1' is not one the active ruleset names "
            "(it names add_to_cart, purchase, wishlist; list it under custom_events: to count it)"
        )
        assert results[-1][1].startswith(
            "events[200].custom_type: custom event type 'purchse' is not one the active ruleset names "
            "(did you mean 'purchase'?)"
        )
        assert await dumped(redis_client) == before  # no outcome field, digest, token count or seen key
        assert await record(stub, custom(item, "buy", "purchase", clock())) == [("recorded", "")]


async def test_a_custom_type_a_cap_or_a_contact_policy_counts_is_accepted_unlisted(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    rules = ruleset(
        """
  - {id: promo, placements: [banner], priority: 10, caps: [{max: 3, period: 30d, counts: "custom:add_to_cart"}]}
  - {id: next, placements: [banner], priority: 5}
""",
        policies="contact_policies:\n  - {id: weekly, placements: [banner], max: 9, period: week, "
        "counts: 'custom:signup'}\n",
    )
    clock = Clock("2026-06-01T09:00:00+00:00")
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        assert await record(
            stub,
            custom(item, "cart", "add_to_cart", clock()),
            custom(item, "signup", "signup", clock()),
            custom(item, "wish", "wishlist", clock()),
        ) == [("recorded", ""), ("recorded", ""), ("rejected", (
            "events[2].custom_type: custom event type 'wishlist' is not one the active ruleset names "
            "(it names add_to_cart, signup; list it under custom_events: to count it)"
        ))]  # fmt: skip
