"""``decision simulate``: a generated 10k-profile sample whose answer is known, Redis samples, the chart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.cli import main as cli
from decision.cli.simulate import read_ndjson
from decision.core.simulation import Profile, SampleError, simulate
from decision.rules.engine import compile_and_load
from decision.rules.loader import parse
from decision.rules.reference import eligible as reference_eligible
from tests.decision.helpers import add_attributes, add_membership
from tests.decision.rules.strategies import requests, ruleset_documents

RULES = """
version: sim-1
attributes: {cart: number}
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb}
  - {id: cart, channels: [web, mobile], max_items: 1, fallback: fb_cart}
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: fb_cart, placements: [cart], eligibility: {audiences: {all: [nobody]}}}
  - {id: hi, placements: [banner], priority: 90, eligibility: {audiences: {all: [b]}}}
  - {id: mid, placements: [banner], priority: 50, eligibility: {audiences: {all: [a]}}}
  - {id: shadowed, placements: [banner], priority: 10, eligibility: {audiences: {all: [a, b]}}}
  - {id: dead, placements: [banner], priority: 99, eligibility: {audiences: {all: [nobody]}}}
  - {id: big_cart, placements: [cart], priority: 5, eligibility: {conditions: [{context.cart: {ge: 75}}]}}
"""
PROFILES = 10_000


def sample_line(i: int) -> dict[str, Any]:
    """Profile i is in audience a when i is even, b when i is a multiple of 5; its cart is i mod 100."""
    audiences = [name for name, every in (("a", 2), ("b", 5)) if i % every == 0]
    return {"profile": f"p{i}", "audiences": audiences, "context": {"cart": i % 100}}


def write_sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(sample_line(i)) for i in range(PROFILES)) + b"\n")
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path)


@pytest.fixture
def rules_file(write_rules: Callable[[str], Path]) -> Path:
    return write_rules(RULES)


def test_simulate_a_generated_sample_with_a_known_answer(
    rules_file: Path, sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "winners.html"
    status = cli.main(["simulate", str(rules_file), "--profiles", str(sample), "--chart", str(chart), "--json"])
    assert status == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["profiles"] == PROFILES and result["skipped"] == []
    offers = result["offers"]
    # a: 5000, b: 2000, a and b: 1000; carts of 75..99: a quarter.
    assert {o: (offers[o]["eligible"], offers[o]["wins"]) for o in offers} == {
        "fb": (0, 0),
        "fb_cart": (0, 0),
        "hi": (2000, 2000),
        "mid": (5000, 4000),  # beaten by hi where b holds too
        "shadowed": (1000, 0),
        "dead": (0, 0),
        "big_cart": (2500, 2500),
    }
    assert offers["mid"]["beaten_by"] == {"hi": 1000}
    assert offers["fb"]["served_as_fallback"] == 4000
    placements = result["placements"]
    assert placements["banner"]["fallback_share"] == pytest.approx(0.40)
    assert placements["cart"]["fallback_share"] == pytest.approx(0.75)
    assert placements["banner"]["winners"] == {"hi": 2000, "mid": 4000}
    assert result["never_win"] == [
        {"offer": "shadowed", "reason": "always beaten", "beaten_by": {"hi": 1000}},
        {"offer": "dead", "reason": "never eligible", "beaten_by": {}},
    ]
    page = chart.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "hi: 2000 of 10000" in page and "fb (fallback): 4000 of 10000" in page


def test_text_report_and_rejected_rows(rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "few.ndjson"
    path.write_text(
        '{"profile": "p1", "audiences": ["b"], "context": {"cart": 80}}\n\n{"id": "p2", "context": {"cart": "lots"}}\n'
    )
    assert cli.main(["simulate", str(rules_file), "--profiles", str(path), "--chart", ""]) == 0
    shown = capsys.readouterr().out
    assert "ruleset sim-1: 2 profiles (1 skipped: context rejected)" in shown
    assert "shadowed: never eligible" in shown
    assert "skipped p2: context.cart: the ruleset declares a number" in shown
    path.write_text('{"profile": "p1"}\n{"profile": 7}\n')
    with pytest.raises(SampleError, match=r"few.ndjson:2: profile: a non-empty string is required"):
        list(read_ndjson(path))
    assert cli.main(["simulate", str(rules_file), "--profiles", str(path), "--chart", ""]) == 1


async def test_simulate_a_sample_read_from_redis(
    rules_file: Path, redis_client: Any, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(40):
        for audience in sample_line(i)["audiences"]:
            await add_membership(redis_url, f"p{i}", audience)
        if i % 4 == 0:
            await add_membership(redis_url, f"p{i}", "expired", expires_at=1.0, written_at=0.0)  # no longer counts
    await add_membership(redis_url, "p-only-expired", "a", expires_at=1.0, written_at=0.0)
    argv = ["simulate", str(rules_file), "--from-redis", "1000", "--redis-url", redis_url, "--json"]
    status = await asyncio.to_thread(cli.main, [*argv, "--context", "cart=90", "--chart", str(tmp_path / "c.html")])
    assert status == 0
    result = orjson.loads(capsys.readouterr().out)
    # Profiles 0..39 with an audience (a or b: 24) plus the one whose only membership expired.
    assert result["profiles"] == 25
    assert result["offers"]["hi"]["eligible"] == 8
    assert result["offers"]["mid"]["eligible"] == 20
    assert result["offers"]["big_cart"]["wins"] == 25  # the --context cart applies to every profile


def _split(context: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request context as the rules see it -> the request's own context and the profile's attributes."""
    own = {k: v for k, v in context.items() if not k.startswith("profile.")}
    return own, {k.removeprefix("profile."): v for k, v in context.items() if k.startswith("profile.")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ruleset_documents(max_offers=5), st.lists(requests(), min_size=1, max_size=20))
def test_counts_agree_with_the_reference_evaluation(document: str, sampled: list[Any]) -> None:
    ruleset, problems = parse(document.encode(), "r.yaml")
    assert ruleset is not None, problems
    compiled = compile_and_load(ruleset)
    now = sampled[0][2]
    profiles = [Profile(f"p{i}", audiences, *_split(context)) for i, (audiences, context, _) in enumerate(sampled)]
    result = simulate(compiled, profiles, now)
    expected = [
        reference_eligible(ruleset, p.audiences, context, now)
        for p, (_, context, _) in zip(profiles, sampled, strict=True)
    ]
    for offer_id, stats in result.offers.items():
        assert stats.eligible == sum(offer_id in e for e in expected)
    placement = result.placements["p"]  # max 3 items
    on_p = [[o for o in e if "p" in ruleset.offers[o].placements] for e in expected]
    assert placement.fallbacks == sum(not e for e in on_p)
    assert sum(placement.winners.values()) == sum(min(3, len(e)) for e in on_p)


PROFILE_RULES = """
version: sim-attrs
profile_attributes: {tier: string, ltv: number}
placements:
  - {id: banner, channels: [web], max_items: 1, fallback: fb, score: "profile.ltv"}
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: gold, placements: [banner], eligibility: {conditions: {profile.tier: {eq: gold}}}}
  - {id: rich, placements: [banner], eligibility: {conditions: {profile.ltv: {ge: 100}}}}
"""


def test_simulate_reads_profile_attributes_from_the_sample(
    write_rules: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "attrs.ndjson"
    lines = [
        {"profile": "p1", "profile_attributes": {"tier": "gold", "ltv": 50}},
        {"profile": "p2", "profile_attributes": {"tier": "silver", "ltv": 500}},
        {"profile": "p3", "profile_attributes": {"tier": "gold", "ltv": 500}},
        {"profile": "p4", "context": {"profile.tier": "gold"}},  # the context may not pass for the profile
    ]
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    argv = ["simulate", str(write_rules(PROFILE_RULES)), "--profiles", str(path), "--json", "--chart", ""]
    assert cli.main(argv) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert {o: result["offers"][o]["eligible"] for o in ("gold", "rich")} == {"gold": 2, "rich": 2}
    assert result["skipped"] == ["p4: context.profile.tier: names starting with 'profile.' are reserved"]
    path.write_text('{"profile": "p1", "profile_attributes": {"tier": {"nested": 1}}}\n')
    with pytest.raises(SampleError, match=r"attrs.ndjson:1: profile_attributes.tier: nested objects|expected a string"):
        list(read_ndjson(path))


async def test_simulate_reads_profile_attributes_from_redis(
    write_rules: Callable[[str], Path], redis_client: Any, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await add_membership(redis_url, "p1", "a")
    await add_attributes(redis_url, "p1", {"tier": ("string", "gold"), "ltv": ("number", 10)})
    await add_attributes(redis_url, "p2", {"tier": ("string", "silver"), "ltv": ("number", 1000)})
    rules = str(write_rules(PROFILE_RULES))
    argv = ["simulate", rules, "--from-redis", "100", "--redis-url", redis_url, "--json", "--chart", ""]
    assert await asyncio.to_thread(cli.main, argv) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["profiles"] == 2
    assert result["placements"]["banner"]["winners"] == {"gold": 1, "rich": 1}
