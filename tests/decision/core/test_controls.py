"""Frequency caps end to end: real gRPC, real Redis, an injected clock (period boundaries without sleeping)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, event, first, record, ruleset, with_clock

HOUR = 3600.0
DAY = 86_400.0


async def offered(stub: object, profile: str = "p1", **kw: object) -> str:
    return first(await decide(stub, profile, **kw)).offer_id  # type: ignore[arg-type]


async def test_rolling_window_per_profile_counted_on_decision(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-05-04T10:00:00+00:00")
    rules = ruleset(
        """
  - {id: capped, placements: [banner], priority: 10, caps: [{max: 2, period: 24h}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        assert await offered(stub) == "capped"
        clock.advance(HOUR)
        assert await offered(stub) == "capped"
        assert await offered(stub) == "next"  # capped: gives way to the next eligible offer
        assert await offered(stub, "p2") == "capped"  # per profile
        clock.set("2026-05-05T09:59:59.999+00:00")  # 1 ms before the first proposal leaves the window
        assert await offered(stub) == "next"
        clock.set("2026-05-05T10:00:00+00:00")
        assert await offered(stub) == "capped"
        assert await offered(stub) == "next"  # the 11:00 proposal is still in the window


async def test_calendar_day_week_and_month_in_a_time_zone(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-03-28T23:30:00+01:00")  # a Saturday in Paris, the night clocks go forward
    rules = ruleset(
        """
  - {id: daily, placements: [side], priority: 30, caps: [{max: 1, period: day, time_zone: Europe/Paris}]}
  - {id: weekly, placements: [side], priority: 20, caps: [{max: 1, period: week}]}
  - {id: monthly, placements: [side], priority: 10, caps: [{max: 1, period: month, time_zone: UTC}]}
""",
        settings="settings: {time_zone: Europe/Paris}\n",
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)

    async def side() -> list[str]:
        response = await decide(stub, placements=["side"])
        return [i.offer_id for i in response.propositions[0].items]

    async with decision_stub(server.port) as stub:
        assert await side() == ["daily", "weekly", "monthly"]
        clock.set("2026-03-28T23:59:59+01:00")
        assert await side() == ["fb"]
        clock.set("2026-03-29T00:00:00+01:00")  # Sunday: a new day, the same week (Mondays), the same month
        assert await side() == ["daily"]
        clock.set("2026-03-30T00:00:00+02:00")  # Monday, after a 23-hour Sunday: new day and new week
        assert await side() == ["daily", "weekly"]
        clock.set("2026-03-31T23:59:59+00:00")
        assert await side() == ["daily"]
        clock.set("2026-04-01T00:00:00+00:00")  # the month turns in UTC (its own time zone), not in Paris
        assert await side() == ["monthly"]


async def test_lifetime_cap_never_resets(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    clock = Clock("2026-01-01T00:00:00+00:00")
    rules = ruleset(
        """
  - {id: once, placements: [banner], priority: 10, caps: [{max: 1}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        assert await offered(stub) == "once"
        for days in (1, 30, 300):
            clock.advance(days * DAY)
            assert await offered(stub) == "next"


async def test_caps_counted_on_impressions_clicks_and_custom_events(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T12:00:00+00:00")
    rules = ruleset(
        """
  - {id: seen, placements: [side], priority: 30, caps: [{max: 2, period: 7d, counts: impression}]}
  - {id: clicked, placements: [side], priority: 20, caps: [{max: 1, counts: interact}]}
  - {id: bought, placements: [side], priority: 10, caps: [{max: 1, period: day, counts: "custom:purchase"}]}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        responses = [await decide(stub, placements=["side"]) for _ in range(3)]  # decisions alone count nothing here
        items = {i.offer_id: i for i in responses[-1].propositions[0].items}
        assert list(items) == ["seen", "clicked", "bought"]
        now = clock()
        assert (
            await record(
                stub,
                event(items["seen"], "e1", at=now),
                # 1 is EVENT_TYPE_IMPRESSION, and what clients built with the former alias EVENT_TYPE_DISPLAY send.
                event(first(responses[0]), "e2", decision_pb2.EventType.ValueType(1), at=now),
                event(items["clicked"], "e3", decision_pb2.EVENT_TYPE_CLICK, at=now),
                event(items["bought"], "e4", decision_pb2.EVENT_TYPE_CUSTOM, at=now, custom_type="purchase"),
                event(items["bought"], "e5", decision_pb2.EVENT_TYPE_CUSTOM, at=now, custom_type="wishlist"),
            )
            == [("recorded", "")] * 5
        )
        assert [i.offer_id for i in (await decide(stub, placements=["side"])).propositions[0].items] == ["fb"]
        clock.set("2026-06-02T00:00:00+00:00")  # a new day (purchase cap) ...
        assert [i.offer_id for i in (await decide(stub, placements=["side"])).propositions[0].items] == ["bought"]
        clock.set("2026-06-08T12:00:00+00:00")  # ... and the impressions left the 7-day window
        offers = [i.offer_id for i in (await decide(stub, placements=["side"])).propositions[0].items]
        assert offers == ["seen", "bought"]  # a click cap (lifetime) stays


async def test_several_caps_on_one_offer_all_hold(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T08:00:00+00:00")
    rules = ruleset(
        """
  - id: promo
    placements: [banner]
    priority: 10
    caps: [{max: 1, period: 1h}, {max: 2, period: day, time_zone: UTC}, {max: 3, period: 30d}]
  - {id: next, placements: [banner], priority: 5}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        seen = []
        for _ in range(12):  # every 4 hours for two days
            seen.append(await offered(stub))
            clock.advance(4 * HOUR)
        # 08:00 and 12:00 on day 1 (day cap 2), 00:00 on day 2 (30-day cap 3), then never
        assert [i for i, offer in enumerate(seen) if offer == "promo"] == [0, 1, 4]


async def test_total_cap_across_profiles_lifetime_and_per_day(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T08:00:00+00:00")
    rules = ruleset(
        """
  - {id: coupon, placements: [banner], priority: 20, caps: [{max: 3, scope: total}]}
  - {id: daily_deal, placements: [banner], priority: 10, caps: [{max: 2, scope: total, period: day, time_zone: UTC}]}
  - {id: next, placements: [banner], priority: 5}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        got = [await offered(stub, f"p{i}") for i in range(7)]
        assert got == ["coupon"] * 3 + ["daily_deal"] * 2 + ["next"] * 2
        clock.set("2026-06-02T00:00:00+00:00")
        got = [await offered(stub, f"q{i}") for i in range(3)]
        assert got == ["daily_deal", "daily_deal", "next"]  # a new day's budget; the lifetime total stays spent


async def test_total_cap_counted_on_impressions_stops_proposals_once_the_server_sees_it(
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
        assert await offered(stub, "p9") == "next"
    other = with_clock(await start_server(write_rules(rules), **PATIENT, totals_refresh_interval=0.0), clock)
    async with decision_stub(other.port) as stub:
        answers = [await offered(stub, "p9") for _ in range(50)]
        assert answers[-1] == "next"
        assert answers.index("next") < 50 and set(answers[answers.index("next") :]) == {"next"}
