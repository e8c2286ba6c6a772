"""Decide end to end (decision/service/decider.py): the retail example's holdout over the wire, and a profile
that cannot be read explained as such. What planning decides is tested without the network in
tests/decision/core/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, Clock, decide, no_offer_nor_token_twice, with_clock
from tests.decision.helpers import add_membership

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


async def test_the_retail_holdout_shows_its_fallback_once(start_server: StartServer) -> None:
    """examples/retail: p-1007 is in the holdout of vip_early_access, which serves app_tips on app_inbox."""
    server = with_clock(await start_server(EXAMPLES / "retail" / "rules.yaml", **PATIENT), Clock("2026-11-29T12:00"))
    await add_membership(server, "p-1007", "vip-customers")
    async with decision_stub(server.port) as stub:
        response = await decide(
            stub, "p-1007", ("app_inbox",), channel="mobile", context={"app_version": "5.3.1"}, explain=True
        )
    no_offer_nor_token_twice(response)
    items = response.propositions[0].items
    assert [(i.offer_id, i.variant) for i in items] == [("app_tips", "holdout"), ("app_exclusive_drop", "")]
    explained = {e.offer_id: e for e in response.explanations}
    assert explained["vip_early_access"].experiment_id == "vip-headline-2026-11"
    assert "in place of 'vip_early_access'" in explained["app_tips"].reason
    assert explained["app_exclusive_drop"].reason == "selected (rank 2 of 2)"


async def test_an_unread_profile_is_explained_as_unavailable(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    rules = """
placements: [{id: banner, channels: [web], max_items: 1, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -100}
  - {id: promo, placements: [banner]}
"""
    own_redis = EmbeddedRedis().start()
    server = await start_server(write_rules(rules), url=own_redis.url)
    own_redis.stop()
    async with decision_stub(server.port) as stub:
        response = await decide(stub, "p1", ("banner",), explain=True)
        plain = await decide(stub, "p1", ("banner",))
    assert response.degraded
    outcome = decision_pb2.ExplanationOutcome.Name
    assert {e.offer_id: outcome(e.outcome) for e in response.explanations} == {
        "fb": "EXPLANATION_OUTCOME_FALLBACK",
        "promo": "EXPLANATION_OUTCOME_PROFILE_UNAVAILABLE",
    }
    assert not plain.explanations  # only when asked
