"""The store: a decision costs one Redis command; the registry is followed as it changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audience_sync.store import SyncStore
from decision.store.profiles import ProfileStore
from inbound_common.codecs import AudienceEntry, membership_field
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import add_membership, decide_request, ensure_audience, offers, remove_membership
from tests.redis_cluster import command_calls, reset_command_stats
from tests.waiting import eventually

RULES = """
placements: [{id: banner, channels: [web], max_items: 5, fallback: fb}]
offers:
  - {id: fb, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: vip, placements: [banner], eligibility: {audiences: {all: [vip]}}}
  - {id: gold, placements: [banner], eligibility: {audiences: {all: [gold]}}}
"""


async def test_a_decision_is_one_redis_command(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: Any
) -> None:
    # Proposal counts are flushed once an hour here: no HINCRBY lands in the measurement.
    server = await start_server(write_rules(RULES), registry_poll_interval=60.0, outcome_flush_interval=3600.0)
    await add_membership(server, "p1", "vip")
    await add_membership(server, "p1", "gold")
    async with decision_stub(server.port) as stub:
        await stub.Decide(decide_request(), timeout=5)  # the server learns the new audience codes
        await directory_knows(server.store, {"vip", "gold"})  # re-read in the background
        await reset_command_stats(redis_client)  # every node, on a Cluster
        before = await command_calls(redis_client)
        response = await stub.Decide(decide_request(), timeout=5)
        after = await command_calls(redis_client)
    assert offers(response) == ["vip", "gold"]
    spent = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    assert {name: n for name, n in spent.items() if n} == {"cmdstat_hgetall": 1}


async def test_a_new_audience_is_seen_without_waiting_for_the_poll(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = await start_server(write_rules(RULES), registry_poll_interval=60.0)
    client, keys = server.store.client, server.store.keys
    async with decision_stub(server.port) as stub:
        assert offers(await stub.Decide(decide_request(), timeout=5)) == ["fb"]
        # A writer creates the audience and its publication is missed: the profile's hash names a code
        # the server has not seen. That decision does not wait for the registry (the code counts as no
        # membership); the server re-reads it in the background, long before its next poll.
        await client.hset(keys.audiences, "gold", AudienceEntry("gold", code=7, generation=1).encode())
        await client.incr(keys.registry_version)
        await client.hset(keys.membership("p1"), membership_field(7, 1), "")
        assert offers(await stub.Decide(decide_request(), timeout=5)) in (["fb"], ["gold"])
        await directory_knows(server.store, {"gold"})
        assert offers(await stub.Decide(decide_request(), timeout=5)) == ["gold"]


async def test_a_new_audience_being_loaded_is_known_by_its_pending_record(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    """A load announces a new audience's code by its pending record alone: the registry version stays (a load
    that is not applied then leaves the registry as it was), and servers learn the code all the same, so a
    profile holding a field of it is no unknown code (no re-read per decision)."""
    server = await start_server(write_rules(RULES), registry_poll_interval=60.0)
    await add_membership(server, "p1", "vip")
    assert server.ops is not None
    sync = SyncStore.from_url(server.ops.redis_url, server.store.keys)
    try:
        version = server.store.directory.version
        begun = sync.begin_snapshot("fresh", now=time.time(), stale_after=300, source="t", owner="h:1")
        field = membership_field(begun.code, begun.generation).encode()
        for _ in range(100):  # the server heard BEGIN_SNAPSHOT's message and re-read the pending codes
            if not server.store.directory.audiences({field: b""}, time.time())[1]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the server never learnt the code of the snapshot being loaded")
        assert server.store.directory.version == version == sync.registry_state().version
        reads = server.store.registry_reads_total
        await server.store.client.hset(server.store.keys.membership("p1"), field.decode(), "")
        async with decision_stub(server.port) as stub:
            for _ in range(5):
                assert offers(await stub.Decide(decide_request(), timeout=5)) == ["vip"]  # not active yet
        assert server.store.registry_reads_total == reads  # a known code: no re-read
    finally:
        sync.close()


async def directory_knows(store: ProfileStore, audiences: set[str]) -> None:
    await eventually(lambda: audiences <= set(store.directory.entries), f"the server's registry copy has {audiences}")


async def test_published_registry_changes_reach_the_server(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = await start_server(write_rules(RULES), registry_poll_interval=60.0)
    # Subscribed: the watcher reads the registry once it has subscribed (the start read it first).
    await eventually(lambda: server.store.registry_reads_total >= 2, "the registry watcher subscribed")
    entry = await ensure_audience(server, "vip")  # returns once the server's copy has it: no poll for an hour
    assert server.store.directory.entries["vip"].code == entry.code


async def test_removed_membership_stops_counting(start_server: StartServer, write_rules: Callable[[str], Path]) -> None:
    server = await start_server(write_rules(RULES))
    await add_membership(server, "p1", "vip")
    await add_membership(server, "p1", "gold")
    await remove_membership(server, "p1", "vip")
    await remove_membership(server, "p1", "never-registered")
    async with decision_stub(server.port) as stub:
        assert offers(await stub.Decide(decide_request(), timeout=5)) == ["gold"]
