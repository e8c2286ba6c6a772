"""Experiments: deterministic, uniform assignment; variants and holdouts in responses."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.core.experiments import assign, point
from decision.core.stats import chi_square_sf as chi_square_p_value  # one implementation: the report's
from decision.rules.types import Experiment, HoldoutServes, Location, Variant
from decision.store.keys import KeySpace
from decision.v1 import decision_pb2, decision_pb2_grpc
from tests.conftest import StartServer, decision_stub
from tests.decision.core import plans
from tests.decision.delivery import PATIENT, Clock, decide, ruleset, with_clock
from tests.decision.helpers import add_membership, decide_request

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

HERE = Location("t.yaml", 1)


def test_the_p_value_matches_published_quantiles() -> None:
    # chi-square tables: the 95th percentile for 1 and 5 degrees of freedom, the 99th for 10.
    assert abs(chi_square_p_value(3.841459, 1) - 0.05) < 1e-6
    assert abs(chi_square_p_value(11.070498, 5) - 0.05) < 1e-6
    assert abs(chi_square_p_value(23.209251, 10) - 0.01) < 1e-6
    assert abs(chi_square_p_value(0.554300, 5) - 0.99) < 1e-6


EXPERIMENT = Experiment(
    "home-copy-2026",
    (Variant("control", 2), Variant("urgent", 1), Variant("playful", 1)),
    holdout_weight=1,
    holdout_serves=HoldoutServes.FALLBACK,
    location=HERE,
)


def test_assignment_is_uniform_over_100k_profiles() -> None:
    profiles = 100_000
    seen = Counter(
        (variant.id if (variant := assign(EXPERIMENT, f"profile-{n}")) else "holdout") for n in range(profiles)
    )
    weights = {"holdout": 1, "control": 2, "urgent": 1, "playful": 1}
    expected = {name: profiles * w / 5 for name, w in weights.items()}
    statistic = sum((seen[name] - expected[name]) ** 2 / expected[name] for name in weights)
    assert chi_square_p_value(statistic, len(weights) - 1) > 0.01, seen
    # Points themselves are uniform too, over 100 equal buckets.
    buckets = Counter(point("other-experiment", f"profile-{n}", 100) for n in range(profiles))
    statistic = sum((buckets[b] - profiles / 100) ** 2 / (profiles / 100) for b in range(100))
    assert chi_square_p_value(statistic, 99) > 0.01


POINT_1001 = 2417644365
POINT_1002 = 2940181429
HOME_POINTS = [244, 227, 195, 826, 160]


def test_assignment_is_stable_across_processes_and_releases() -> None:
    # Fixed vectors (the top 32 bits of BLAKE2b-64 of "exp\0<profile>"): a change here would
    # reshuffle every running experiment.
    assert point("exp", "p-1001", 2**32) == POINT_1001
    assert point("exp", "p-1002", 2**32) == POINT_1002
    assert [point("home-copy-2026", f"p-{n}", 1000) for n in range(5)] == HOME_POINTS


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_experiments_assign_independently(first_id: str, profile: str) -> None:
    # Same profile, another experiment id: an independent point (no shared prefix effect).
    assert 0 <= point(first_id, profile, 1000) < 1000
    assert assign(EXPERIMENT, profile) == assign(EXPERIMENT, profile)


RULES = ruleset(
    """
  - id: hero
    placements: [banner, side]
    priority: 20
    content: {title: Plain}
    experiment:
      id: hero-copy
      variants:
        - {id: plain, weight: 1}
        - {id: bold, weight: 1, content: {title: BOLD}}
      holdout: {weight: 1, serves: fallback}
  - id: quiet
    placements: [side]
    priority: 20
    experiment:
      id: quiet-test
      variants: [{id: shown, weight: 1}]
      holdout: {weight: 1, serves: nothing}
  - {id: other, placements: [side], priority: 10}
"""
)


async def test_offer_experiments_in_responses(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    server = await start_server(write_rules(RULES), **PATIENT)
    seen: Counter[str] = Counter()
    async with decision_stub(server.port) as stub:
        for n in range(60):
            profile = f"user-{n}"
            response = await decide(stub, profile, placements=["banner", "side"])
            banner = response.propositions[0].items[0]
            variant = assign(offer_experiment(server, "hero"), profile)
            assert (banner.experiment_id, banner.variant) == ("hero-copy", variant.id if variant else "holdout")
            if variant is None:  # the holdout sees the placement's fallback in the offer's place
                assert banner.offer_id == "fb" and banner.fallback
            else:
                assert banner.offer_id == "hero"
                assert banner.content_json == ('{"title":"BOLD"}' if variant.id == "bold" else '{"title":"Plain"}')
            side = [(i.offer_id, i.variant) for i in response.propositions[1].items]
            quiet = assign(offer_experiment(server, "quiet"), profile)
            if quiet is not None:
                assert ("quiet", "shown") in side
            else:  # "nothing": the held-out offer is left out and the next one takes its place
                assert side == [("other", "")]
            # Stable: asked again, the same answer.
            again = await decide(stub, profile, placements=["banner", "side"])
            assert [(i.offer_id, i.variant) for p in again.propositions for i in p.items] == [
                (i.offer_id, i.variant) for p in response.propositions for i in p.items
            ]
            seen[banner.variant] += 1
    assert set(seen) == {"plain", "bold", "holdout"}


def offer_experiment(server: object, offer_id: str) -> Experiment:
    experiment = server.service.active.current.ruleset.offers[offer_id].experiment  # type: ignore[attr-defined]
    assert experiment is not None
    return experiment


async def test_placement_experiment_varies_the_ranking_and_holds_out(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    rules = """
attributes: {cart_value: number}
placements:
  - id: banner
    channels: [web]
    max_items: 2
    fallback: fb
    score: "offer.margin"
    experiment:
      id: ranking-test
      variants:
        - {id: by_margin, weight: 1}
        - {id: by_fit, weight: 1, score: "0 - max(offer.price - context.cart_value, context.cart_value - offer.price)"}
      holdout: {weight: 1, serves: nothing}
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: cheap, placements: [banner], attributes: {margin: 5, price: 20}}
  - {id: pricey, placements: [banner], attributes: {margin: 40, price: 200}}
"""
    server = await start_server(write_rules(rules), **PATIENT)
    experiment = server.service.active.current.ruleset.placements["banner"].experiment
    assert experiment is not None
    found = set()
    async with decision_stub(server.port) as stub:
        for n in range(40):
            profile = f"visitor-{n}"
            response = await decide(stub, profile, context={"cart_value": 25})
            proposition = response.propositions[0]
            variant = assign(experiment, profile)
            assert proposition.experiment_id == "ranking-test"
            assert proposition.variant == (variant.id if variant else "holdout")
            got = [(i.offer_id, i.score) for i in proposition.items]
            if variant is None:
                assert got == [] and not proposition.fallback  # holdout: nothing at all
            elif variant.id == "by_margin":
                assert got == [("pricey", 40.0), ("cheap", 5.0)]
            else:
                assert got == [("cheap", -5.0), ("pricey", -175.0)]
            assert all(i.experiment_id == "ranking-test" for i in proposition.items)
            found.add(proposition.variant)
    assert found == {"by_margin", "by_fit", "holdout"}


def _no_offer_nor_token_twice(response: decision_pb2.DecideResponse) -> None:
    for proposition in response.propositions:
        shown = [item.offer_id for item in proposition.items]
        tokens = [item.tracking_token for item in proposition.items]
        assert len(shown) == len(set(shown)), shown
        assert len(tokens) == len(set(tokens)), shown


async def test_holdout_stand_ins_never_repeat_an_offer_over_grpc(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: aioredis.Redis
) -> None:
    """Random rulesets with holdouts serving the fallback on multi-item placements: no offer, no token twice."""
    path = write_rules(RULES)
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
                _no_offer_nor_token_twice(response)

    await asyncio.to_thread(check)


async def test_the_retail_holdout_shows_its_fallback_once(start_server: StartServer) -> None:
    """examples/retail: p-1007 is in the holdout of vip_early_access, which serves app_tips on app_inbox."""
    server = with_clock(await start_server(EXAMPLES / "retail" / "rules.yaml", **PATIENT), Clock("2026-11-29T12:00"))
    await add_membership(server, "p-1007", "vip-customers")
    async with decision_stub(server.port) as stub:
        response = await decide(
            stub, "p-1007", ("app_inbox",), channel="mobile", context={"app_version": "5.3.1"}, explain=True
        )
    _no_offer_nor_token_twice(response)
    items = response.propositions[0].items
    assert [(i.offer_id, i.variant) for i in items] == [("app_tips", "holdout"), ("app_exclusive_drop", "")]
    explained = {e.offer_id: e for e in response.explanations}
    assert explained["vip_early_access"].experiment_id == "vip-headline-2026-11"
    assert "in place of 'vip_early_access'" in explained["app_tips"].reason
    assert explained["app_exclusive_drop"].reason == "selected (rank 2 of 2)"
