"""``decision profile``: a profile counted by a real server, looked at as a user does (a real process)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from inbound_common.cli import Exit
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import PATIENT, decide
from tests.decision.helpers import add_attributes, add_membership

RULES = """
version: profile-test
placements: [{id: banner, channels: [web], max_items: 1, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1}
  - id: welcome
    placements: [banner]
    caps: [{max: 1, period: day, time_zone: Europe/Paris}, {max: 3, period: 7d}]
    eligibility: {audiences: {any: [newcomers]}}
contact_policies:
  - {id: banner_weekly, placements: [banner], max: 5, period: week}
"""


def decision(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECISION_")}
    return subprocess.run(
        [sys.executable, "-m", "decision.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


async def profile(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``decision profile`` as a user runs it (a process; the test's server keeps serving meanwhile)."""
    return await asyncio.to_thread(decision, "profile", *args, "--redis-url", redis_url)


async def test_a_profile_with_its_audiences_attributes_and_counters(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str
) -> None:
    rules = write_rules(RULES)
    server = await start_server(rules, **PATIENT)
    await add_membership(server, "p1", "newcomers")
    await add_attributes(server, "p1", {"first_name": ("string", "Ann"), "tier": ("string", "gold")})
    async with decision_stub(server.port) as stub:
        for _ in range(2):  # the second is capped: fb instead (eligible: counted by the policy too)
            await decide(stub, "p1")

    result = await profile(redis_url, "p1", "--rules", str(rules))
    assert result.returncode == Exit.OK, result.stderr
    text = result.stdout
    assert "profile p1" in text and "ib:m:{p1}" in text and "ib:c:{p1}" in text
    assert "newcomers" in text and "member" in text
    assert "first_name  Ann" in text and "change" in text and "counts" in text
    assert "caps and contact policies (ruleset profile-test" in text
    cap_line = next(line for line in text.splitlines() if "cap: 1 decision per day in Europe/Paris" in line)
    assert "1 of 1" in cap_line and "REACHED until" in cap_line
    assert any("cap: 3 decision per rolling 168h" in line and "1 of 3" in line for line in text.splitlines())
    assert any("banner_weekly" in line and "2 of 5" in line for line in text.splitlines()), text

    body = orjson.loads((await profile(redis_url, "p1", "--rules", str(rules), "--json")).stdout)
    assert body["profile"] == "p1" and body["found"] is True
    assert [(a["audience"], a["state"]) for a in body["audiences"]] == [("newcomers", "member")]
    assert {a["name"]: (a["value"], a["state"]) for a in body["attributes"]} == {
        "first_name": ("Ann", "counts"),
        "tier": ("gold", "counts"),
    }
    controls = {(c["kind"], c["offer"] or c["policy"], c["period"]): c for c in body["counters"]["controls"]}
    day = controls[("cap", "welcome", "day in Europe/Paris")]
    assert (day["count"], day["max"], day["reached"]) == (1, 1, True)
    assert day["until"] > time.time() and day["since"] <= time.time()
    assert controls[("policy", "banner_weekly", "week in UTC")]["count"] == 2
    assert body["counters"]["ruleset"] == "profile-test"
    assert 0 < body["counters"]["expires_in"] <= 8 * 86_400  # the ruleset's longest period, plus a margin


async def test_the_published_ruleset_counts_and_without_one_the_counters_are_shown_as_stored(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str
) -> None:
    rules = write_rules(RULES)
    server = await start_server(rules, **PATIENT)
    await add_membership(server, "p2", "newcomers")
    async with decision_stub(server.port) as stub:
        await decide(stub, "p2")
    bare = await profile(redis_url, "p2")
    assert bare.returncode == Exit.OK, bare.stderr
    assert "no ruleset given or published: shown as stored" in bare.stdout
    assert "o|welcome|decision: 1 time(s), last" in bare.stdout
    published = await asyncio.to_thread(decision, "rules", "publish", str(rules), "--redis-url", redis_url)
    assert published.returncode == Exit.OK, published.stderr
    counted = await profile(redis_url, "p2")
    assert "caps and contact policies (ruleset profile-test" in counted.stdout, counted.stdout


async def test_an_unknown_profile_is_one_line_and_its_own_status(redis_client: object, redis_url: str) -> None:
    result = await profile(redis_url, "nobody")
    assert result.returncode == Exit.NOT_FOUND == 6
    assert result.stdout == ""
    assert (
        result.stderr
        == "decision profile: no profile 'nobody' in Redis (nothing under ib:m:{nobody} nor its counters)\n"
    )
    as_json = await profile(redis_url, "nobody", "--json")
    assert as_json.returncode == Exit.NOT_FOUND
    assert orjson.loads(as_json.stdout)["found"] is False
