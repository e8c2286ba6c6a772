"""The decision service on a real Redis Cluster (3 masters, 3 replicas on loopback).

One cluster for this module (it kills a master). The whole suites run against a cluster with
``TEST_REDIS=cluster ./dev test``; these tests run in every plain ``./dev test`` too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from decision.api.server import RunningServer
from decision.v1 import decision_pb2_grpc
from inbound_common.keys import KeySpace
from tests.conftest import StartServer
from tests.decision.helpers import add_membership, decide_request, offers
from tests.redis_cluster import LocalCluster
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

RULES = """
placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}
"""
PROFILES = [f"profile-{i}" for i in range(40)]
DEADLINE = 1.0  # seconds per call, reads get half of it: room for a busy machine (the callers share the server's loop)
KEYS = KeySpace()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as started:
        yield started


@pytest_asyncio.fixture
async def server(
    cluster: LocalCluster, start_server: StartServer, write_rules: Callable[[str], Path]
) -> AsyncIterator[RunningServer]:
    cluster.flushall()
    running = await start_server(
        write_rules(RULES), cluster.url, registry_poll_interval=60.0, redis_timeout=DEADLINE / 2
    )
    for profile in PROFILES:
        await add_membership(running, profile, "vip")
    cluster.wait_replicated()  # what WAIT does, for every connection the cluster client used
    yield running


async def test_a_decision_is_one_command_on_the_node_serving_the_profile(
    cluster: LocalCluster, server: RunningServer
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        request = decide_request(profile_id="profile-7", placements=["banner"])
        await stub.Decide(request, timeout=5)  # warm: connections, registry
        owner = cluster.owner(KEYS.membership("profile-7"))  # asks CLUSTER SLOTS: before the statistics reset
        for node in cluster.alive():
            cluster.client(node.port).config_resetstat()
        response = await stub.Decide(request, timeout=5)
    assert offers(response) == ["vip"] and not response.degraded
    spent = {node.port: cluster.data_commands(node.port) for node in cluster.alive()}
    assert spent.pop(owner.port) == {"cmdstat_hgetall": 1}
    assert all(not commands for commands in spent.values()), spent


@dataclass
class Load:
    """Callers deciding for every profile in turn; each answer kept with its profile and time."""

    port: int
    answers: list[tuple[str, float, bool]] = field(default_factory=list)  # profile, ended, normal
    failures: list[str] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def caller(self, stub: decision_pb2_grpc.DecisionServiceStub, offset: int) -> None:
        index = offset
        while not self.stopping.is_set():
            profile = PROFILES[index % len(PROFILES)]
            index += 1
            try:
                response = await stub.Decide(
                    decide_request(profile_id=profile, placements=["banner"]), timeout=DEADLINE
                )
            except grpc.aio.AioRpcError as exc:
                self.failures.append(f"{profile}: {exc.code().name}: {exc.details()}")
                continue
            assert offers(response) == (["fb"] if response.degraded else ["vip"])
            self.answers.append((profile, time.monotonic(), not response.degraded))
            await asyncio.sleep(0.005)

    async def run(self, callers: int = 10) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            await asyncio.gather(*(self.caller(stub, offset * 4) for offset in range(callers)))


async def test_a_master_dies_fallbacks_meanwhile_then_everything_is_back(
    cluster: LocalCluster, server: RunningServer
) -> None:
    victim = cluster.owner(KEYS.membership(PROFILES[0]))
    on_victim = {p for p in PROFILES if cluster.owner(KEYS.membership(p)).port == victim.port}
    load = Load(server.port)
    running = asyncio.create_task(load.run())
    await eventually(lambda: len(load.answers) >= 2 * len(PROFILES), "answers before the kill")
    killed_at = time.monotonic()
    cluster.kill(victim)  # SIGKILL: its replica must take over
    await asyncio.to_thread(cluster.wait_failover, victim, KEYS.membership(PROFILES[0]))
    promoted_at = time.monotonic()

    def normal_since(moment: float) -> set[str]:
        return {p for p, t, normal in load.answers if t > moment and normal}

    await eventually(lambda: normal_since(promoted_at) == set(PROFILES), "every profile answered normally again")
    recovered_at = time.monotonic()
    await eventually(lambda: sum(t > recovered_at for _, t, _ in load.answers) >= 10 * len(PROFILES), "answers after")
    load.stopping.set()
    await running

    assert load.failures == []  # every call answered within its deadline
    before = [normal for _, ended, normal in load.answers if ended < killed_at]
    assert before and all(before)
    # The dead master's profiles got fallbacks meanwhile (the replica serves only once promoted).
    fallbacks = [t for p, t, normal in load.answers if p in on_victim and not normal and t > killed_at]
    assert fallbacks
    others = [normal for p, t, normal in load.answers if p not in on_victim and killed_at < t < promoted_at]
    print(
        f"\nfailover: replica promoted {promoted_at - killed_at:.2f}s after the kill; the dead master's profiles got "
        f"fallbacks until {max(fallbacks) - killed_at:.2f}s; the other masters' profiles were answered normally in "
        f"{sum(others)}/{len(others)} calls meanwhile"
    )
    assert sum(others) >= 0.9 * len(others)  # the other masters kept serving
    settled = [normal for _, t, normal in load.answers if t > recovered_at]
    assert settled and sum(settled) >= 0.99 * len(settled)
    # Nothing written before the kill was lost: the promoted replica has every membership.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        for profile in PROFILES:
            response = await stub.Decide(decide_request(profile_id=profile, placements=["banner"]), timeout=5)
            assert offers(response) == ["vip"] and not response.degraded, profile
