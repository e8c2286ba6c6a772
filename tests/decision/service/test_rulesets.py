"""Published rulesets: publish, roll back, list, and every replica following them (real Redis, real gRPC)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from decision.api.server import RunningServer
from decision.rules.errors import RulesetInvalid
from decision.service.rulesets import NoPublishedRuleset, PublishError, listing, publish, rollback
from decision.store.connect import connect
from decision.store.control import ControlStore
from inbound_common.keys import KeySpace
from tests.conftest import ON_CLUSTER, StartServer, decision_stub
from tests.decision.helpers import decide_request, offers
from tests.waiting import eventually

RULES = """
version: {version}
placements: [{{id: banner, channels: [web], max_items: 1, fallback: fb}}]
offers:
  - {{id: fb, placements: [banner]}}
  - {{id: {offer}, placements: [banner], priority: 5}}
"""
ROUNDS = 30  # publications; every fifth is preceded by a bad one


def rules(version: str) -> bytes:
    """Each version serves its own offer: a response's offer proves which ruleset decided it."""
    return RULES.format(version=version, offer=f"offer_{version}").encode()


@pytest.fixture
async def control(redis_client: Any, redis_url: str) -> AsyncIterator[ControlStore]:
    store = ControlStore(connect(redis_url, timeout=5.0), KeySpace())
    yield store
    await store.close()


async def store_unchecked(store: ControlStore, version: str, text: str) -> None:
    """Store and activate a ruleset the way a publisher of another release might: without validating it."""
    from inbound_common.codecs import ActiveRulesetPointer

    digest = hashlib.sha256(text.encode()).hexdigest()
    await store.add_version(version, sha256=digest, source="other-release.yaml", text=text, now=time.time())
    await store.activate(ActiveRulesetPointer(version, time.time(), "publish"))


def test_ruleset_keys_share_one_slot_apart_from_profiles() -> None:
    keys = KeySpace("ops")
    slots = {key_slot(k.encode()) for k in (keys.ruleset_versions, keys.ruleset_active, keys.ruleset_seq)}
    assert slots == {key_slot(b"{rules}")}
    assert keys.rules_channel == "ops:rules"


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_profile_of_inverts_the_membership_key(profile_id: str) -> None:
    keys = KeySpace()
    assert keys.profile_of(keys.membership(profile_id).encode()) == profile_id
    assert keys.profile_of(f"other:m:{{{profile_id}}}") is None
    assert keys.profile_of(keys.audiences) is None


async def test_publish_stores_versions_and_refuses_what_it_must(control: ControlStore) -> None:
    first = await publish(control, rules("v1"), "rules.yaml")
    assert first.changed and first.entry.version == "v1" and first.entry.seq >= 1
    again = await publish(control, rules("v1"), "rules.yaml")
    assert not again.changed  # same content, already active
    with pytest.raises(PublishError, match="already published with other content"):
        await publish(control, rules("v1").replace(b"priority: 5", b"priority: 6"), "rules.yaml")
    with pytest.raises(RulesetInvalid, match=r"bad.yaml:\d+"):
        await publish(control, b"placements: []\noffers: [{id: x}]\n", "bad.yaml")
    await publish(control, rules("v2"), "rules.yaml")
    versions, pointer = await listing(control)
    assert [e.version for e in versions] == ["v1", "v2"]
    assert pointer is not None and pointer.version == "v2" and pointer.action == "publish"
    assert versions[0].text == rules("v1").decode()


async def test_rollback_goes_to_the_previous_or_the_named_version(control: ControlStore) -> None:
    with pytest.raises(NoPublishedRuleset):
        await rollback(control)
    for version in ("v1", "v2", "v3"):
        await publish(control, rules(version), "rules.yaml")
    assert (await rollback(control)).entry.version == "v2"
    assert (await rollback(control)).entry.version == "v1"
    with pytest.raises(PublishError, match="nothing to roll back to"):
        await rollback(control)
    assert (await rollback(control, "v3")).entry.version == "v3"
    with pytest.raises(PublishError, match="no published ruleset 'v9'"):
        await rollback(control, "v9")
    pointer = (await listing(control))[1]
    assert pointer is not None and (pointer.version, pointer.action) == ("v3", "rollback")


async def test_a_server_without_rules_needs_a_published_ruleset(start_server: StartServer) -> None:
    with pytest.raises(NoPublishedRuleset):
        await start_server(None)


async def served(server: RunningServer) -> tuple[str, str]:
    async with decision_stub(server.port) as stub:
        response = await stub.Decide(decide_request(), timeout=5)
    return response.ruleset_version, offers(response)[0]


async def wait_all_serve(servers: list[RunningServer], version: str, started: float) -> list[float]:
    """Seconds from ``started`` until each server answers with ``version`` (polled over gRPC; reported, not checked)."""

    async def one(server: RunningServer) -> float:
        async with decision_stub(server.port) as stub:

            async def serves() -> bool:
                return bool((await stub.Decide(decide_request(), timeout=5)).ruleset_version == version)

            await eventually(serves, f"{version} served", interval=0.002)
            return time.perf_counter() - started

    return list(await asyncio.gather(*(one(s) for s in servers)))


def refused(server: RunningServer) -> str | None:
    """The published version the server's follower last refused (None: it serves the active one)."""
    return server.ops.follower.refused if server.ops and server.ops.follower else None


async def decide_continuously(servers: list[RunningServer], seen: list[tuple[str, str]], stop: asyncio.Event) -> None:
    """Traffic during the swaps: every answer's offer must be the one of the version it names."""
    async with contextlib.AsyncExitStack() as stack:
        stubs = [await stack.enter_async_context(decision_stub(s.port)) for s in servers]
        while not stop.is_set():
            for stub in stubs:
                response = await stub.Decide(decide_request(), timeout=5)
                seen.append((response.ruleset_version, offers(response)[0]))
            await asyncio.sleep(0.001)


async def test_every_replica_serves_each_published_ruleset(
    start_server: StartServer, control: ControlStore, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(control, rules("g0"), "rules.yaml")
    servers = [await start_server(None, rules_poll_interval=0.5, metrics_port=0) for _ in range(3)]
    assert [await served(s) for s in servers] == [("g0", "offer_g0")] * 3
    seen: list[tuple[str, str]] = []
    stop = asyncio.Event()
    traffic = asyncio.create_task(decide_continuously(servers, seen, stop))
    propagation: list[float] = []
    current = "g0"
    with caplog.at_level(logging.INFO, logger="decision.service.rulesets"):
        for round_ in range(1, ROUNDS + 1):
            if round_ % 5 == 0:  # a bad ruleset between two good ones: refused everywhere, the old one serves
                bad = f"bad{round_}"
                await store_unchecked(control, bad, f"version: {bad}\noffers: [\n")
                await eventually(lambda bad=bad: all(refused(s) == bad for s in servers), f"{bad} refused everywhere")
                assert [(await served(s))[0] for s in servers] == [current] * 3
            version = f"g{round_}"
            activation = await publish(control, rules(version), "rules.yaml")
            started = time.perf_counter()  # publish has returned
            if not ON_CLUSTER:  # on a Cluster, PUBLISH counts only the subscribers of the node it reached
                assert activation.receivers >= 3
            propagation += await wait_all_serve(servers, version, started)
            current = version
        rolled = await rollback(control)
        started = time.perf_counter()
        assert rolled.entry.version == f"g{ROUNDS - 1}"  # the refused bad one before the active is skipped
        propagation += await wait_all_serve(servers, rolled.entry.version, started)
    stop.set()
    await traffic
    ordered = sorted(propagation)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(
        f"\npropagation over {len(ordered)} replica swaps: p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    # Exactly one ruleset decided each answer, and it is the one named.
    assert seen
    assert [(version, offer) for version, offer in seen if offer != f"offer_{version}"] == []
    assert not any(version.startswith("bad") for version, _ in seen)
    assert caplog.text.count("published ruleset bad5 refused") == 3
    for server in servers:
        assert server.ops is not None and server.ops.metrics is not None
        failures = server.ops.metrics.registry.get_sample_value(
            "decision_ruleset_reload_failures_total", {"source": "redis"}
        )
        assert failures == ROUNDS // 5


async def test_sighup_without_a_file_rereads_redis_and_a_file_server_ignores_publishes(
    start_server: StartServer, control: ControlStore, write_rules: Any
) -> None:
    await publish(control, rules("r1"), "rules.yaml")
    follower = await start_server(None, rules_poll_interval=30.0)  # no polling: only announcements and SIGHUP
    pinned = await start_server(write_rules(rules("file1").decode()))
    assert follower.ops is not None and follower.ops.control is not None
    # Announcement missed (written without PUBLISH): SIGHUP (reload) catches up.
    from inbound_common.codecs import ActiveRulesetPointer

    await control.add_version("r2", sha256="x", source="s", text=rules("r2").decode(), now=time.time())
    await control.client.set(control.keys.ruleset_active, ActiveRulesetPointer("r2", time.time(), "publish").encode())
    assert (await served(follower))[0] == "r1"
    follower.reload()
    started = time.perf_counter()
    await wait_all_serve([follower], "r2", started)
    await publish(control, rules("r3"), "rules.yaml")
    await wait_all_serve([follower], "r3", time.perf_counter())
    assert await served(pinned) == ("file1", "offer_file1")
