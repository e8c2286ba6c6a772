"""Redis killed (SIGKILL) under load and started again from its append-only file.

``appendonly yes`` with ``appendfsync always`` (tests/reliability/conftest.py): every write Redis
acknowledged is on disk, so caps counters, recorded events (dedupe) and totals survive the kill. The
decision service keeps running: fallbacks (``degraded``) while Redis is away, normal answers once it is back.
``audience-sync receive`` answers 503 meanwhile, and what its senders retry is applied once Redis is back:
no pushed change lost, none applied out of order.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import redis.asyncio as aioredis

from audience_sync.store import SyncStore
from decision.store.embedded import EmbeddedRedis, free_port
from tests.audience_sync.helpers import seen_by_readers, spawn
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import decide, event, first, record, ruleset
from tests.decision.helpers import add_membership, decide_request
from tests.reliability.conftest import persistent_redis
from tests.waiting import DEADLINE as WAIT
from tests.waiting import eventually, freeze

# promo: twice per profile (impressions), and a total across profiles; next when promo is capped.
RULES = ruleset(
    """
  - id: promo
    placements: [banner]
    priority: 20
    eligibility: {audiences: {all: [vip]}}
    caps: [{max: 2, period: 30d, counts: impression}, {max: 1000, scope: total, counts: impression}]
  - {id: next, placements: [banner], priority: 5, eligibility: {audiences: {all: [vip]}}}
"""
)
PROFILES = [f"p{i}" for i in range(10)]
CALLERS = 10
OUTAGE = float(os.environ.get("FAULT_OUTAGE_SECONDS", "2"))
DEADLINE = 1.0  # seconds per call, Redis reads get half: room for a busy machine (callers share the server's loop)


async def everything(client: aioredis.Redis) -> dict[bytes, Any]:
    """Every key and its value (hashes as dicts)."""
    out: dict[bytes, Any] = {}
    async for key in client.scan_iter(count=1000):
        kind = await client.type(key)
        out[key] = await client.hgetall(key) if kind == b"hash" else await client.get(key)
    return out


async def test_redis_killed_and_restarted_from_its_append_only_file(
    fault_redis: list[EmbeddedRedis], start_server: StartServer, write_rules: Callable[[str], Path], tmp_path: Path
) -> None:
    port = free_port()
    fault_redis.append(persistent_redis(port, tmp_path).start())
    # No background flush of proposal counts during the test: it would write between the two snapshots
    # compared (seen: `before` taken just ahead of a flush). What a crash may lose of them is one interval.
    server = await start_server(
        write_rules(RULES), fault_redis[-1].url, redis_timeout=DEADLINE / 2, outcome_flush_interval=3600.0
    )
    admin = aioredis.Redis.from_url(fault_redis[-1].url)
    now = time.time()
    async with decision_stub(server.port) as stub:
        # Each profile: promo proposed twice, its two impressions recorded: capped, "next" from now on.
        events = []
        for profile in PROFILES:
            await add_membership(server, profile, "vip")
            for n in (1, 2):  # a token counts one impression: two decisions
                item = first(await decide(stub, profile))
                assert item.offer_id == "promo"
                events.append(event(item, f"{profile}-imp-{n}", at=now, profile=profile))
        assert await record(stub, *events) == [("recorded", "")] * len(events)
        assert {first(await decide(stub, p)).offer_id for p in PROFILES} == {"next"}
        before = await everything(admin)
        assert sum(key.startswith(b"ib:e:") for key in before) == len(events)

        answers: list[tuple[float, float, bool]] = []  # (call made, answered, normal)
        failures: list[str] = []
        stop = asyncio.Event()

        async def caller(profile: str) -> None:
            request = decide_request(profile_id=profile, placements=["banner"])
            while not stop.is_set():
                asked = time.monotonic()
                try:
                    response = await stub.Decide(request, timeout=DEADLINE)
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")
                    continue
                answers.append((asked, time.monotonic(), not response.degraded))
                await asyncio.sleep(0.01)

        def answered_since(moment: float) -> list[bool]:
            return [normal for asked, _, normal in answers if asked > moment]

        load = asyncio.gather(*(caller(p) for p in PROFILES[:CALLERS]))
        await eventually(lambda: len(answered_since(0)) >= 2 * CALLERS, "answers before the kill")
        process = fault_redis[-1].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = time.monotonic()
        await asyncio.sleep(OUTAGE)  # the scenario: Redis down for OUTAGE seconds
        restarting_at = time.monotonic()  # Redis may answer before start() returns: "down" ends here
        fault_redis.append(await asyncio.to_thread(persistent_redis(port, tmp_path).start))
        restarted_at = time.monotonic()
        reloaded = aioredis.Redis.from_url(fault_redis[-1].url)  # the old client's connection died with Redis
        after = await everything(reloaded)  # as reloaded, before decisions could write anything
        await reloaded.aclose()
        await eventually(lambda: any(answered_since(restarted_at)), "a normal answer once Redis is back")
        recovered_at = time.monotonic()
        await eventually(lambda: len(answered_since(recovered_at)) >= 20 * CALLERS, "answers after the recovery")
        stop.set()
        await load

        # Recorded events are still known (a retry is a duplicate) and caps still hold, in the same server.
        assert await record(stub, *events) == [("duplicate", "")] * len(events)
        assert {first(await decide(stub, p)).offer_id for p in PROFILES} == {"next"}
    await admin.aclose()

    assert after == before  # counters, event keys, totals, registry, memberships: all of it
    assert failures == []
    down = [normal for asked, answered, normal in answers if asked > killed_at and answered < restarting_at]
    assert down and not any(down)  # answered all along, with fallbacks
    recovered = min(answered for asked, answered, normal in answers if asked > restarted_at and normal) - restarted_at
    settled = answered_since(recovered_at)
    print(
        f"\nRedis SIGKILLed and restarted from its AOF after {OUTAGE:.0f} s: {len(before)} keys "
        f"({len(events)} recorded events) identical after the restart; {len(answers)} calls, {len(failures)} failed, "
        f"{len(down)} degraded while down; first normal answer {recovered:.2f} s after Redis answered again; "
        f"{sum(settled)}/{len(settled)} normal after that; server not restarted"
    )
    # Normal again; a rare degraded answer is a read that lost its budget to a busy, shared machine.
    assert settled and sum(settled) >= 0.99 * len(settled)


# Pushed changes (the fault run pushed 5,000: FAULT_RECEIVE_CHANGES=5000), senders, and how long Redis is
# frozen before it is killed.
RECEIVE_CHANGES = int(os.environ.get("FAULT_RECEIVE_CHANGES", "1000"))
SENDERS = 10
FROZEN = float(os.environ.get("FAULT_FROZEN_SECONDS", "3"))
AUDIENCES = ("vip", "gold")
Pushed = tuple[str, str, bool, int]  # profile, audience, member, event time (epoch seconds)


def pushed_changes(count: int, seed: int = 19) -> list[Pushed]:
    """``count`` changes of ``count // 4`` profiles in two audiences, each at its own time, in shuffled order:
    a profile's changes arrive out of order, from several senders."""
    rng = random.Random(seed)
    profiles = [f"c{i}" for i in range(count // 4)]
    start = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp())
    changes = [(rng.choice(profiles), rng.choice(AUDIENCES), rng.random() < 0.7, start + n) for n in range(count)]
    rng.shuffle(changes)
    return changes


def aep_profile(change: Pushed) -> bytes:
    """One change as the AEP HTTP API destination pushes it."""
    profile, audience, member, at = change
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"status": "realized" if member else "exited", "lastQualificationTime": when}
    return orjson.dumps({"identityMap": {"CRMID": [{"id": profile}]}, "segmentMembership": {"ups": {audience: status}}})


def latest_state(changes: list[Pushed]) -> dict[str, set[str]]:
    """profile -> audiences: of each profile's changes to an audience, the one of the latest time decides."""
    latest: dict[tuple[str, str], tuple[int, bool]] = {}
    for profile, audience, member, at in changes:
        if (profile, audience) not in latest or at > latest[profile, audience][0]:
            latest[profile, audience] = (at, member)
    members: dict[str, set[str]] = {}
    for (profile, audience), (_, member) in latest.items():
        if member:
            members.setdefault(profile, set()).add(audience)
    return members


async def test_receive_loses_no_push_when_redis_freezes_then_is_killed_and_restarted(
    fault_redis: list[EmbeddedRedis], tmp_path: Path
) -> None:
    """Senders push (each change until answered 200, as the orchestrator retries) while Redis freezes for a few
    seconds, is SIGKILLed and restarts from its AOF: every change is applied, by its time, none lost."""
    port = free_port()
    fault_redis.append(persistent_redis(port, tmp_path).start())
    url = fault_redis[-1].url
    receiver = spawn(
        "receive", "--host", "127.0.0.1", "--port", "0", "--no-auth", "--identity-namespace", "CRMID",
        "--redis-timeout", "0.5", redis_url=url,
    )  # fmt: skip
    changes = pushed_changes(RECEIVE_CHANGES)
    answered: list[int] = []  # the HTTP status of every push, retries included (0: no answer)
    acknowledged = 0
    try:
        assert receiver.stdout is not None
        line = await asyncio.to_thread(receiver.stdout.readline)
        assert b"listening on http://127.0.0.1:" in line, line
        endpoint = line.decode().split("listening on ")[1].strip() + "/v1/profiles"

        async def sender(http: aiohttp.ClientSession, mine: list[Pushed]) -> None:
            nonlocal acknowledged
            for change in mine:
                for attempt in itertools.count():
                    try:
                        async with http.post(endpoint, data=aep_profile(change)) as response:
                            await response.read()
                            answered.append(response.status)
                            if response.status == 200:
                                acknowledged += 1
                                break
                    except aiohttp.ClientError:
                        answered.append(0)
                    await asyncio.sleep(min(0.5, 0.01 * 2**attempt))  # the sender's back-off before a retry

        async with aiohttp.ClientSession() as http:
            sending = asyncio.gather(*(sender(http, changes[n::SENDERS]) for n in range(SENDERS)))
            await eventually(lambda: acknowledged >= RECEIVE_CHANGES // 4, "a quarter of the changes applied")
            process = fault_redis[-1].process
            assert process is not None
            await freeze(process)
            at_freeze = acknowledged
            await asyncio.sleep(FROZEN)  # the scenario: Redis frozen for FROZEN seconds, then killed
            process.send_signal(signal.SIGKILL)
            process.wait()
            fault_redis.append(await asyncio.to_thread(persistent_redis(port, tmp_path).start))
            await asyncio.wait_for(sending, WAIT)
    finally:
        receiver.kill()
        receiver.wait()
    assert at_freeze < RECEIVE_CHANGES  # the faults came while changes were still being pushed
    assert set(answered) <= {200, 503, 0}, sorted(set(answered))
    store = SyncStore.from_url(url)
    try:
        assert seen_by_readers(store) == latest_state(changes)  # none lost, none applied out of order
    finally:
        store.close()
    print(
        f"\n{RECEIVE_CHANGES} changes pushed by {SENDERS} senders, {at_freeze} applied when Redis froze for "
        f"{FROZEN:.0f} s before its SIGKILL and restart: {len(answered)} pushes, {answered.count(503)} answered 503, "
        f"{answered.count(0)} without an answer; Redis as the latest change of each profile and audience says"
    )
