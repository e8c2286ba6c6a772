"""Redis faults under load: hung, stopped and restarted, restarted empty, slow, full. Real redis-server processes.

The load is 20 concurrent callers with short deadlines. Every call must be answered OK within its
deadline (fallbacks with ``degraded`` while Redis is away), the circuit breaker must keep Redis
attempts few while it is away, and normal answers must come back once it returns (how soon is
printed with ``-s`` and reported in docs/operations.md, not asserted: the machines are shared).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from decision.api.server import RunningServer
from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2, decision_pb2_grpc
from tests.conftest import StartServer, decision_stub, limit_memory
from tests.decision.delivery import decide, event, first, record, ruleset
from tests.decision.helpers import add_membership, add_memberships, decide_request, offers
from tests.reliability.conftest import persistent_redis
from tests.waiting import eventually, freeze

RULES = """
placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}
"""
CALLERS = 20
# Seconds per call; Redis reads get half of it. Room for a busy machine: the callers share the server's
# event loop, which a loaded machine (both cores busy, other test runs beside) starved for over 0.5 s at 1 s.
# FAULT_DEADLINE_SECONDS=0.3 runs the 300 ms deadline (docs/operations.md).
DEADLINE = float(os.environ.get("FAULT_DEADLINE_SECONDS", "2.0"))
# The scenario is Redis stopped 10 s during a 60 s load; CI runs a 3 s outage in ~12 s.
# FAULT_OUTAGE_SECONDS=10 FAULT_LOAD_SECONDS=60 ./dev test -s -k hung_then_stopped runs it in full.
OUTAGE = float(os.environ.get("FAULT_OUTAGE_SECONDS", "3"))
LOAD_SECONDS = float(os.environ.get("FAULT_LOAD_SECONDS", "0"))
PROFILES = [f"p{i}" for i in range(CALLERS)]


@dataclass
class Answer:
    profile: str
    started: float
    ended: float
    normal: bool  # the profile's own answer (not degraded)


@dataclass
class Load:
    """CALLERS callers in a loop until stopped; every answer recorded, every failure kept."""

    port: int
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _caller(self, stub: decision_pb2_grpc.DecisionServiceStub, profile: str) -> None:
        request = decide_request(profile_id=profile, placements=["banner"])
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = await stub.Decide(request, timeout=DEADLINE)
            except grpc.aio.AioRpcError as exc:
                self.failures.append(f"{exc.code().name}: {exc.details()}")
                continue
            normal = not response.degraded
            assert offers(response) == (["vip"] if normal else ["fb"])
            self.answers.append(Answer(profile, started, time.monotonic(), normal))
            await asyncio.sleep(0.005)

    async def run(self) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            await asyncio.gather(*(self._caller(stub, profile) for profile in PROFILES))

    def stop(self) -> None:
        self._stop.set()

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if a.started >= start and a.ended <= end]

    def first_normal_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first normal answer to a call made after it (None: none yet)."""
        ended = [a.ended for a in self.answers if a.started >= moment and a.normal]
        return min(ended) - moment if ended else None

    async def recovered_after(self, moment: float, what: str) -> float:
        """Until a call made after ``moment`` is answered normally: the seconds it took (reported, not checked)."""
        return await eventually(lambda: self.first_normal_after(moment), what)


@pytest.fixture
def rules_path(write_rules: Callable[[str], Path]) -> Path:
    return write_rules(RULES)


async def vip_server(start_server: StartServer, rules_path: Path, url: str) -> RunningServer:
    # Reads get half the deadline: the load shares this process and a busy machine.
    server = await start_server(rules_path, url, redis_timeout=DEADLINE / 2)
    for profile in PROFILES:
        await add_membership(server, profile, "vip")
    return server


async def test_redis_hung_then_stopped_under_load(
    fault_redis: list[EmbeddedRedis], start_server: StartServer, rules_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    fault_redis.append(persistent_redis(port, tmp_path).start())
    server = await vip_server(start_server, rules_path, fault_redis[-1].url)
    breaker = server.service.breakers  # one shard: the single Redis
    load = Load(server.port)
    running = asyncio.create_task(load.run())
    # Phases: normal, hung, back, OUTAGE stopped, back; a longer LOAD_SECONDS pads both ends.
    padding = max(0.0, LOAD_SECONDS - (2 * DEADLINE + OUTAGE)) / 2
    await eventually(lambda: len(load.between(0, time.monotonic())) >= 2 * CALLERS, "answers before the faults")
    await asyncio.sleep(padding)

    # Hung (SIGSTOP): reads time out; the breaker opens instead of letting every call wait.
    process = fault_redis[-1].process
    assert process is not None
    await freeze(process)
    hung_at = time.monotonic()
    # The scenario: Redis hung longer than a deadline, and past the 1 s after which a connection is replaced.
    await asyncio.sleep(2 * DEADLINE)
    await eventually(lambda: breaker.opened_total >= 1, "the breaker opened while Redis hung")
    resumed_at = time.monotonic()
    os.kill(process.pid, signal.SIGCONT)
    recovered = {"hung": await load.recovered_after(resumed_at, "normal answers once Redis resumed")}

    # Stopped, then started again on the same port with its data.
    stopped_at = time.monotonic()
    attempts_at_stop = breaker.attempts_total
    fault_redis[-1].stop()
    await asyncio.sleep(OUTAGE)  # the scenario: an outage of OUTAGE seconds
    down_for = time.monotonic() - stopped_at
    attempts_while_down = breaker.attempts_total - attempts_at_stop
    fault_redis.append(persistent_redis(port, tmp_path).start())
    restarted_at = time.monotonic()
    recovered["stopped"] = await load.recovered_after(restarted_at, "normal answers once Redis restarted")
    settled_from = time.monotonic()
    await asyncio.sleep(padding)
    await eventually(lambda: len(load.between(settled_from, time.monotonic())) >= 20 * CALLERS, "answers after")
    load.stop()
    await running

    assert load.failures == []  # every call answered OK, none past its deadline (gRPC's DEADLINE_EXCEEDED)
    assert all(a.normal for a in load.between(0, hung_at))
    assert not any(a.normal for a in load.between(hung_at, resumed_at))
    assert not any(a.normal for a in load.between(stopped_at, restarted_at))
    # Answered all along, not stuck: every caller got its fallbacks while Redis was down.
    assert {a.profile for a in load.between(stopped_at, restarted_at)} == set(PROFILES)
    # No pile-up: while Redis is away, reads are tried a few times plus about one probe per interval,
    # not once per call (thousands of calls are answered meanwhile).
    probes = down_for / breaker.probe_interval
    assert attempts_while_down <= breaker.failure_threshold + CALLERS + probes + 5, attempts_while_down
    assert breaker.opened_total >= 2
    slowest_ms = max(a.ended - a.started for a in load.answers) * 1000
    print(
        f"\n{len(load.answers)} calls in {load.answers[-1].ended - load.answers[0].started:.0f} s, Redis down "
        f"{down_for:.0f} s: first normal answer after Redis returned (s): {recovered}; "
        f"reads tried while down: {attempts_while_down}; slowest answer {slowest_ms:.0f} ms"
    )
    settled = load.between(settled_from, time.monotonic())
    # Normal again; a rare degraded answer is a read that lost its budget to a busy, shared machine.
    assert sum(a.normal for a in settled) >= 0.99 * len(settled)


async def test_redis_restarted_empty_is_reported_and_answered_with_fallbacks(
    fault_redis: list[EmbeddedRedis],
    start_server: StartServer,
    rules_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    fault_redis.append(EmbeddedRedis(port=port).start())
    server = await vip_server(start_server, rules_path, fault_redis[-1].url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decide_request(profile_id="p1", placements=["banner"])
        assert offers(await eventually(normal(stub, request))) == ["vip"]
        fault_redis[-1].stop()
        fault_redis.append(EmbeddedRedis(port=port).start())  # same address, nothing in it
        with caplog.at_level(logging.ERROR, logger="decision.store.profiles"):
            await eventually(lambda: server.store.registry_lost, "the registry lost")
        response = await stub.Decide(request, timeout=DEADLINE)
        assert response.degraded and offers(response) == ["fb"]
        assert server.store.registry_lost_total == 1
        assert "AUDIENCE REGISTRY LOST" in caplog.text

        # audience_sync loads the audiences again: normal answers resume.
        await add_membership(server, "p1", "vip")
        await eventually(lambda: not server.store.registry_lost, "the registry back")
        response = await eventually(normal(stub, request), "normal answers again")
        assert offers(response) == ["vip"]


def normal(
    stub: decision_pb2_grpc.DecisionServiceStub, request: decision_pb2.DecideRequest
) -> Callable[[], Awaitable[decision_pb2.DecideResponse | None]]:
    """A check for ``eventually``: the answer to ``request`` if it is a normal one (not degraded)."""

    async def check() -> decision_pb2.DecideResponse | None:
        response = await stub.Decide(request, timeout=DEADLINE)
        return None if response.degraded else response

    return check


async def test_a_slow_redis_does_not_break_deadlines(
    fault_redis: list[EmbeddedRedis], start_server: StartServer, rules_path: Path
) -> None:
    # The Redis read gets the caller's deadline minus a margin, whatever the Redis timeout. The margin here
    # leaves room for a busy machine (the service's default is a few milliseconds): the answer, not its speed.
    fault_redis.append(EmbeddedRedis().start())
    process = fault_redis[-1].process
    assert process is not None
    margin = {"deadline_margin": 0.5, "deadline_margin_max": 0.5}
    server = await start_server(rules_path, fault_redis[-1].url, redis_timeout=30.0, **margin)
    await add_membership(server, "p1", "vip")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decide_request(profile_id="p1", placements=["banner"])
        assert offers(await eventually(normal(stub, request))) == ["vip"]
        await freeze(process)  # Redis answers nothing, for as long as the test needs
        try:
            for deadline in (1.0, 2.0):
                response = await stub.Decide(request, timeout=deadline)  # DEADLINE_EXCEEDED would raise
                assert response.degraded and offers(response) == ["fb"]
        finally:
            process.send_signal(signal.SIGCONT)


async def test_a_frozen_redis_connection_is_replaced(
    fault_redis: list[EmbeddedRedis], start_server: StartServer, rules_path: Path
) -> None:
    # SIGSTOP: the connection stays open but nothing answers (a partition looks the same). Decisions
    # answer fallbacks in time; the decision connection is replaced; answers are normal once Redis runs.
    fault_redis.append(EmbeddedRedis().start())
    redis_process = fault_redis[-1].process
    assert redis_process is not None
    server = await vip_server(start_server, rules_path, fault_redis[-1].url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decide_request(profile_id="p1", placements=["banner"])
        assert offers(await eventually(normal(stub, request))) == ["vip"]
        link = server.store.fast._seeds[0]  # type: ignore[attr-defined]
        first_connection = link.protocol
        await freeze(redis_process)
        answered = 0

        async def fallback_until_replaced() -> bool:
            nonlocal answered
            response = await stub.Decide(request, timeout=DEADLINE)
            assert response.degraded and offers(response) == ["fb"]
            answered += 1
            return bool(first_connection.closed)  # no reply for 1 s: the connection is given up

        try:
            await eventually(fallback_until_replaced, "the frozen connection closed", interval=0.1)
        finally:
            redis_process.send_signal(signal.SIGCONT)
            resumed_at = time.monotonic()
        response = await eventually(normal(stub, request), "normal answers once Redis runs again")
        recovered = time.monotonic() - resumed_at
        assert offers(response) == ["vip"]
        assert link.protocol is not first_connection
    print(
        f"\nRedis frozen (SIGSTOP): {answered} calls answered degraded in time; first normal answer {recovered:.2f} s "
        "after SIGCONT, on a new decision connection"
    )


CAPPED_RULES = ruleset(
    """
  - id: capped
    placements: [banner]
    priority: 20
    eligibility: {audiences: {all: [vip]}}
    caps: [{max: 2, period: 30d, counts: COUNTS}]
  - {id: next, placements: [banner], priority: 5, eligibility: {audiences: {all: [vip]}}}
"""
)
FULL_DECIDES = 50  # per profile, while Redis refuses writes


@pytest.mark.parametrize("counts", ["decision", "impression"])
async def test_caps_hold_while_redis_refuses_writes(
    own_redis: EmbeddedRedis, start_server: StartServer, write_rules: Callable[[str], Path], counts: str
) -> None:
    """Redis full (``maxmemory``, ``noeviction``: every write refused): a profile at its cap is never shown the
    capped offer, and one below it is not shown it uncounted; degraded answers are the fallback. Once Redis takes
    writes again the cap holds: at the cap nothing more, below it only what is left."""
    server = await start_server(write_rules(CAPPED_RULES.replace("COUNTS", counts)), own_redis.url)
    await add_memberships(server, [("at_cap", "vip"), ("below", "vip")])
    now, events = time.time(), itertools.count()
    async with decision_stub(server.port) as stub:

        async def show(profile: str, times: int) -> None:
            """``times`` decisions proposing ``capped``; their impressions recorded when impressions count."""
            for _ in range(times):
                item = first(await decide(stub, profile))
                assert item.offer_id == "capped"
                if counts == "impression":
                    impression = event(item, f"e{next(events)}", at=now, profile=profile)
                    assert await record(stub, impression) == [("recorded", "")]

        await show("at_cap", 2)
        await show("below", 1)
        assert first(await decide(stub, "at_cap")).offer_id == "next"  # 2 of 2

        limit_memory(own_redis.url, 1)
        try:
            full = [await decide(stub, p) for p in ("at_cap", "below") for _ in range(FULL_DECIDES)]
            shown = [first(r) for r in full if offers(r) == ["capped"]]
            if shown:  # its impression cannot be counted: refused (the sender retries), not recorded uncounted
                refused = event(shown[0], f"e{next(events)}", at=now, profile="below")
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await record(stub, refused)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            limit_memory(own_redis.url, 0)
        at_cap, below = full[:FULL_DECIDES], full[FULL_DECIDES:]
        assert all(offers(r) == (["fb"] if r.degraded else ["next"]) for r in at_cap)
        if counts == "decision":  # a proposal counts: not proposed without its count written
            assert all(offers(r) == ["fb"] and r.degraded for r in below)
        else:  # an impression counts: a proposal writes nothing, the offer may be proposed below the cap
            assert all(offers(r) == (["fb"] if r.degraded else ["capped"]) for r in below)
        degraded = sum(r.degraded for r in full)

        async def normal_answer(profile: str) -> decision_pb2.DecideResponse | None:
            response = await decide(stub, profile)
            return None if response.degraded else response

        # Redis takes writes again: at the cap, still nothing; below it, the one left, then no more.
        assert offers(await eventually(lambda: normal_answer("at_cap"), "a normal answer")) == ["next"]
        if shown:  # the sender's retry is recorded: the refusal counted nothing
            assert await record(stub, refused) == [("recorded", "")]
        else:
            await show("below", 1)
        for profile in ("at_cap", "below"):
            assert [first(await decide(stub, profile)).offer_id for _ in range(5)] == ["next"] * 5
    print(f"\nRedis refusing writes, caps counted on {counts}: {degraded} of {len(full)} decisions degraded")
