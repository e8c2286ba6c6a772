"""Contact policies (messages per profile per period across offers) and dismissal suppression, end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import HEAD, PATIENT, Clock, decide, event, first, record, ruleset, with_clock

DAY = 86_400.0

OFFERS = """
  - {id: a, placements: [banner, side], priority: 30}
  - {id: b, placements: [banner, side], priority: 20}
  - {id: c, placements: [banner, side], priority: 10}
"""


def offers_of(response: decision_pb2.DecideResponse) -> list[list[str]]:
    return [[i.offer_id for i in p.items] for p in response.propositions]


async def test_at_most_n_messages_per_day_across_offers_on_a_channel(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+02:00")
    rules = ruleset(
        OFFERS,
        settings="settings: {allow_duplicate_propositions: true}\n",
        policies="""
contact_policies:
  - {id: web_daily, channels: [web], max: 3, period: day, time_zone: Europe/Paris}
""",
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        # Two placements, four items asked for: the policy allows three messages today.
        assert offers_of(await decide(stub, placements=["banner", "side"])) == [["a"], ["a", "b"]]
        assert offers_of(await decide(stub, placements=["side"])) == [["fb"]]  # the fallback is not limited
        # Another channel is outside the policy.
        assert offers_of(await decide(stub, placements=["banner"], channel="mobile")) == [["a"]]
        assert offers_of(await decide(stub, "p2", placements=["side"])) == [["a", "b", "c"]]  # per profile
        clock.set("2026-06-02T00:00:00+02:00")  # midnight in Paris
        assert offers_of(await decide(stub, placements=["side"])) == [["a", "b", "c"]]


async def test_policy_per_placement_counted_on_impressions(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+00:00")
    rules = ruleset(
        OFFERS,
        policies="""
contact_policies:
  - {id: banner_weekly, placements: [banner], max: 2, period: 7d, counts: impression}
""",
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        shown = [first(await decide(stub)) for _ in range(2)]
        assert [i.offer_id for i in shown] == ["a", "a"]  # decisions are not messages here, impressions are
        assert (
            await record(stub, event(shown[0], "i1", at=clock()), event(shown[1], "i2", at=clock()))
            == [("recorded", "")] * 2
        )
        assert first(await decide(stub)).offer_id == "fb"
        assert [i.offer_id for i in (await decide(stub, placements=["side"])).propositions[0].items] == ["a", "b", "c"]
        clock.advance(7 * DAY)
        assert first(await decide(stub)).offer_id == "a"


async def test_dismissals_suppress_an_offer_for_a_while(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+00:00")
    rules = ruleset(
        """
  - {id: app_promo, placements: [banner], priority: 30, suppress: {after_dismissals: 2, for: 7d, within: 30d}}
  - {id: other, placements: [banner], priority: 10}
"""
    )
    server = with_clock(await start_server(write_rules(rules), **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        assert item.offer_id == "app_promo"
        dismiss = decision_pb2.EVENT_TYPE_DISMISS
        assert await record(stub, event(item, "d1", dismiss, at=clock())) == [("recorded", "")]
        item = first(await decide(stub))
        assert item.offer_id == "app_promo"  # one dismissal is not enough
        clock.advance(DAY - 1)  # (a token is accepted for a day: docs/api.md)
        assert await record(stub, event(item, "d2", dismiss, at=clock())) == [("recorded", "")]
        assert first(await decide(stub)).offer_id == "other"
        assert first(await decide(stub, "p2")).offer_id == "app_promo"  # only for who dismissed it
        clock.advance(7 * DAY - 1)
        assert first(await decide(stub)).offer_id == "other"
        clock.advance(1)  # 7 days after the second dismissal
        item = first(await decide(stub))
        assert item.offer_id == "app_promo"
        # Dismissed again within 30 days of the previous one: suppressed again at once.
        assert await record(stub, event(item, "d3", dismiss, at=clock())) == [("recorded", "")]
        assert first(await decide(stub)).offer_id == "other"
        clock.advance(47 * DAY)  # the earlier dismissals are now more than 30 days before the next
        item = first(await decide(stub))
        assert await record(stub, event(item, "d4", dismiss, at=clock())) == [("recorded", "")]
        assert first(await decide(stub)).offer_id == "app_promo"


async def test_contact_policy_and_caps_under_a_placement_with_several_items(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    clock = Clock("2026-06-01T09:00:00+00:00")
    rules = ruleset(
        """
  - {id: a, placements: [side], priority: 30, caps: [{max: 1, period: day}]}
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
