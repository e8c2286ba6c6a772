"""Redis faults under load: hung, stopped and restarted, restarted empty, slow. Real redis-server processes.

The load is 20 concurrent callers with short deadlines. Every call must be answered OK within its
deadline (fallbacks with ``degraded`` while Redis is away), the circuit breaker must keep Redis
attempts few while it is away, and normal answers must come back soon after it returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from decision.api.server import RunningServer
from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2_grpc
from tests.conftest import StartServer
from tests.decision.helpers import add_membership, decide_request, offers
from tests.reliability.conftest import persistent_redis, wait_for

RULES = """
placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}
"""
CALLERS = 20
DEADLINE = 0.3  # seconds, per call
# The scenario is Redis stopped 10 s during a 60 s load; CI runs a 3 s outage in ~12 s.
# FAULT_OUTAGE_SECONDS=10 FAULT_LOAD_SECONDS=60 ./dev test -s -k hung_then_stopped runs it in full.
OUTAGE = float(os.environ.get("FAULT_OUTAGE_SECONDS", "3"))
LOAD_SECONDS = float(os.environ.get("FAULT_LOAD_SECONDS", "0"))
PROFILES = [f"p{i}" for i in range(CALLERS)]


@dataclass
class Answer:
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
            self.answers.append(Answer(started, time.monotonic(), normal))
            await asyncio.sleep(0.005)

    async def run(self) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            await asyncio.gather(*(self._caller(stub, profile) for profile in PROFILES))

    def stop(self) -> None:
        self._stop.set()

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if a.started >= start and a.ended <= end]

    def first_normal_after(self, moment: float) -> float:
        return min(a.ended for a in self.answers if a.started >= moment and a.normal) - moment


@pytest.fixture
def rules_path(write_rules: Callable[[str], Path]) -> Path:
    return write_rules(RULES)


async def vip_server(start_server: StartServer, rules_path: Path, url: str) -> RunningServer:
    # Reads get 150 ms (of the 300 ms deadline): the load shares this process and a busy machine.
    server = await start_server(rules_path, url, redis_timeout=0.15)
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
    # Phases: 1 s normal, 2 s hung, 1.5 s back, OUTAGE stopped, 2 s back; a longer LOAD_SECONDS pads both ends.
    padding = max(0.0, LOAD_SECONDS - (1.0 + 2.0 + 1.5 + OUTAGE + 2.0)) / 2
    await asyncio.sleep(1.0 + padding)

    # Hung (SIGSTOP): reads time out; the breaker opens instead of letting every call wait.
    process = fault_redis[-1].process
    assert process is not None
    hung_at = time.monotonic()
    os.kill(process.pid, signal.SIGSTOP)
    await asyncio.sleep(2.0)
    resumed_at = time.monotonic()
    os.kill(process.pid, signal.SIGCONT)
    await asyncio.sleep(1.5)

    # Stopped, then started again on the same port with its data.
    stopped_at = time.monotonic()
    attempts_at_stop = breaker.attempts_total
    fault_redis[-1].stop()
    await asyncio.sleep(OUTAGE)
    attempts_while_down = breaker.attempts_total - attempts_at_stop
    fault_redis.append(persistent_redis(port, tmp_path).start())
    restarted_at = time.monotonic()
    await asyncio.sleep(2.0 + padding)
    load.stop()
    await running

    assert load.failures == []  # every call answered OK, none past its deadline
    assert all(a.ended - a.started < DEADLINE for a in load.answers)
    assert all(a.normal for a in load.between(0, hung_at))
    assert not any(a.normal for a in load.between(hung_at + 0.1, resumed_at))
    assert not any(a.normal for a in load.between(stopped_at + 0.1, restarted_at))
    assert len(load.between(stopped_at + 0.1, restarted_at)) > CALLERS * 10  # answered all along, not stuck
    # No pile-up: while Redis is away, reads are tried a few times plus about one probe per interval,
    # not once per call (thousands of calls are answered meanwhile).
    probes = OUTAGE / breaker.probe_interval
    assert attempts_while_down <= breaker.failure_threshold + CALLERS + probes + 5, attempts_while_down
    assert breaker.opened_total >= 2
    recovered = {"hung": load.first_normal_after(resumed_at), "stopped": load.first_normal_after(restarted_at)}
    slowest_ms = max(a.ended - a.started for a in load.answers) * 1000
    print(
        f"\n{len(load.answers)} calls in {load.answers[-1].ended - load.answers[0].started:.0f} s, Redis down "
        f"{OUTAGE:.0f} s: first normal answer after Redis returned (s): {recovered}; "
        f"reads tried while down: {attempts_while_down}; slowest answer {slowest_ms:.0f} ms"
    )
    assert all(seconds < 1.0 for seconds in recovered.values()), recovered
    settled = load.between(restarted_at + 1.0, time.monotonic())
    # Normal again; a rare degraded answer is a read that lost its 150 ms to a busy, shared machine.
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
        assert offers(await stub.Decide(request, timeout=1)) == ["vip"]
        fault_redis[-1].stop()
        fault_redis.append(EmbeddedRedis(port=port).start())  # same address, nothing in it
        with caplog.at_level(logging.ERROR, logger="decision.store.profiles"):
            await wait_for(lambda: server.store.registry_lost, within=5)
        response = await stub.Decide(request, timeout=1)
        assert response.degraded and offers(response) == ["fb"]
        assert server.store.registry_lost_total == 1
        assert "AUDIENCE REGISTRY LOST" in caplog.text

        # audience_sync loads the audiences again: normal answers resume.
        await add_membership(server, "p1", "vip")
        await wait_for(lambda: not server.store.registry_lost, within=5)
        response = await stub.Decide(request, timeout=1)
        assert not response.degraded and offers(response) == ["vip"]


async def test_a_slow_redis_does_not_break_deadlines(
    fault_redis: list[EmbeddedRedis], start_server: StartServer, rules_path: Path
) -> None:
    fault_redis.append(EmbeddedRedis().start())
    server = await vip_server(start_server, rules_path, fault_redis[-1].url)
    admin = aioredis.Redis.from_url(fault_redis[-1].url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decide_request(profile_id="p1", placements=["banner"])
        sleeping = asyncio.create_task(admin.execute_command("DEBUG", "SLEEP", "1"))
        await asyncio.sleep(0.1)
        for deadline in (0.02, 0.1, 0.3):
            response = await stub.Decide(request, timeout=deadline)  # DEADLINE_EXCEEDED would raise
            assert response.degraded and offers(response) == ["fb"]
        await sleeping
        await admin.aclose()


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
        assert offers(await stub.Decide(request, timeout=2)) == ["vip"]
        link = server.store.fast._seeds[0]  # type: ignore[attr-defined]
        first_connection = link.protocol
        redis_process.send_signal(signal.SIGSTOP)
        frozen = 0
        try:
            for _ in range(8):  # 2.4 s frozen, past the 1 s after which the connection counts as stalled
                response = await stub.Decide(request, timeout=0.3)
                assert response.degraded and offers(response) == ["fb"]
                frozen += 1
                await asyncio.sleep(0.1)
        finally:
            redis_process.send_signal(signal.SIGCONT)
            resumed_at = time.monotonic()
        for _ in range(100):
            response = await stub.Decide(request, timeout=1)
            if not response.degraded:
                break
            await asyncio.sleep(0.05)
        recovered = time.monotonic() - resumed_at
        assert offers(response) == ["vip"]
        assert link.protocol is not first_connection
    print(
        f"\nRedis frozen (SIGSTOP): {frozen} calls answered degraded in time; first normal answer {recovered:.2f} s "
        "after SIGCONT, on a new decision connection"
    )
