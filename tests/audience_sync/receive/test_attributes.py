"""Mapped attributes of pushed profiles: written under the identities of their memberships, by event time,
refused whole with the payload they came in, and seen by the next Decide of a real decision server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from redis import Redis

from audience_sync.attribute_mapping import AttributeSource
from audience_sync.formats.xdm import XdmOptions
from audience_sync.receive.app import AppOptions
from audience_sync.receive.payloads import PayloadOptions
from audience_sync.receive.server import RunningReceiver
from audience_sync.records import seconds
from audience_sync.store import SyncStore
from decision.store.codecs import attribute_event_ms, profile_attributes
from tests.audience_sync.helpers import dump, seen_by_readers
from tests.audience_sync.receive.conftest import StartReceiver
from tests.audience_sync.receive.test_app import T0, T1, T2, post, seg
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import decide_request, offers, registry_heard

MAPPING = ("person.name.firstName=first_name", "loyalty.tier=tier", "loyalty.points:number=points")
RULES = """
profile_attributes: {tier: string, first_name: string}
placements: [{id: banner, channels: [web], max_items: 5, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - id: gold_offer
    placements: [banner]
    content: {title: 'Hi {{profile.first_name}}'}
    eligibility: {audiences: {all: [vip]}, conditions: {profile.tier: {eq: gold}}}
"""


def profile(crmid: str, segments: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    return {
        "identityMap": {"ECID": [{"id": f"e-{crmid}"}], "CRMID": [{"id": crmid}]},
        "segmentMembership": {"ups": segments},
        **attributes,
    }


def person(first_name: object = "Ada", tier: object = "gold", points: object = 120) -> dict[str, Any]:
    return {"person": {"name": {"firstName": first_name}}, "loyalty": {"tier": tier, "points": points}}


def attributes_of(store: SyncStore, profile_id: str) -> dict[str, object]:
    return profile_attributes(store.client.hgetall(store.keys.membership(profile_id)), set())


def event_time_of(store: SyncStore, profile_id: str, name: str) -> float:
    raw = store.client.hget(store.keys.membership(profile_id), f"@{name}")
    event_ms = attribute_event_ms(raw)
    assert event_ms is not None
    return event_ms / 1000


async def with_attributes(start: StartReceiver) -> RunningReceiver:
    sources = tuple(AttributeSource.parse(spec) for spec in MAPPING)
    return await start(app=AppOptions(PayloadOptions(XdmOptions(("ECID", "CRMID")), attributes=sources)))


async def test_attributes_go_under_each_identity_by_event_time(
    start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    receiver = await with_attributes(start)
    status, answer = await post(http, receiver, [profile("c-1", {"vip": seg("realized", T1)}, **person())])
    assert status == 200, answer
    assert answer["attributes"] == {"values": 6, "written": 6, "stale": 0}
    assert (answer["profiles"], answer["identities"], answer["added"]) == (1, 2, 2)
    for profile_id in ("e-c-1", "c-1"):
        assert attributes_of(store, profile_id) == {"first_name": "Ada", "tier": "gold", "points": 120.0}
        assert event_time_of(store, profile_id, "tier") == seconds(T1)  # the newest lastQualificationTime
    # An older push arriving late changes nothing; a newer one wins; a JSON null removes.
    older = profile("c-1", {"vip": seg("exited", T0)}, **person(tier="silver"))
    status, answer = await post(http, receiver, older)
    assert (status, answer["attributes"]["stale"], answer["stale"]) == (200, 6, 2)
    assert attributes_of(store, "c-1")["tier"] == "gold"
    newer = profile("c-1", {"vip": seg("realized", T0), "gold": seg("realized", T2)}, **person(tier=None))
    status, answer = await post(http, receiver, newer)
    assert status == 200 and "tier" not in attributes_of(store, "c-1")
    # A top-level timestamp is the profile's time; without any time, the request's arrival.
    stamped = profile("c-2", {"vip": seg("realized", T1)}, timestamp=T0, **person())
    assert (await post(http, receiver, stamped))[0] == 200
    assert event_time_of(store, "c-2", "first_name") == seconds(T0)
    before = time.time()
    assert (await post(http, receiver, profile("c-3", {}, **person())))[0] == 200
    assert before - 0.001 <= event_time_of(store, "c-3", "first_name") <= time.time() + 0.001
    assert attributes_of(store, "e-c-3") == {"first_name": "Ada", "tier": "gold", "points": 120.0}


async def test_delta_records_carry_attributes_too(
    start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    receiver = await with_attributes(start)
    record = {"profile_id": "p1", "audience_id": "vip", "status": "realized", "event_time": T1, "loyalty.tier": "x"}
    status, answer = await post(http, receiver, {**record, "loyalty": {"tier": "gold"}})
    assert status == 200, answer
    assert attributes_of(store, "p1") == {"tier": "x"}  # a member named like the path comes first
    assert event_time_of(store, "p1", "tier") == seconds(T1)


async def test_a_bad_attribute_refuses_the_whole_payload(
    start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    receiver = await with_attributes(start)
    assert (await post(http, receiver, profile("c-0", {"vip": seg("realized", T0)}, **person())))[0] == 200
    before = dump(store)
    batch = [
        profile("c-1", {"vip": seg("realized", T1)}, **person()),  # good: not written either
        profile("c-2", {"vip": seg("realized", T1)}, **person(points="many")),
        profile("c-3", {"vip": seg("realized", T1)}, **person(first_name=["A", 1])),
        profile("c-4", {"vip": seg("realized", T1)}, timestamp="yesterday", **person()),
    ]
    status, answer = await post(http, receiver, batch)
    assert status == 400, answer
    assert answer["errors"] == [
        "[1].loyalty.points: expected a number, got str",
        "[2].person.name.firstName: expected a string, got list",
        "[3].timestamp: bad timestamp 'yesterday' (expected ISO 8601 or epoch seconds)",
    ]
    assert dump(store) == before


async def test_the_next_decide_sees_a_pushed_attribute(
    start: StartReceiver,
    start_server: StartServer,
    write_rules: Callable[[str], Path],
    store: SyncStore,
) -> None:
    server = await start_server(write_rules(RULES))
    receiver = await with_attributes(start)
    async with aiohttp.ClientSession() as http, decision_stub(server.port) as stub:

        async def decide(profile_id: str) -> list[str]:
            return offers(await stub.Decide(decide_request(profile_id=profile_id, placements=["banner"]), timeout=5))

        assert (await post(http, receiver, profile("c-1", {"vip": seg("realized", T0)}, **person())))[0] == 200
        await registry_heard(server)  # a new audience: its code comes with the registry
        assert await decide("e-c-1") == await decide("c-1") == ["gold_offer"]
        silver = profile("c-1", {"vip": seg("realized", T1)}, **person(tier="silver"))
        assert (await post(http, receiver, silver))[0] == 200
        assert await decide("c-1") == await decide("e-c-1") == ["fb"]  # the very next Decide
        assert seen_by_readers(store) == {"c-1": {"vip"}, "e-c-1": {"vip"}}


def node_of(store: SyncStore, key: str) -> Redis:
    """A plain client of the Redis holding ``key`` (its primary on a cluster)."""
    if store.cluster:
        node: Any = store.client.get_node_from_key(key)  # type: ignore[union-attr]
        return Redis(host=node.host, port=node.port)
    where = store.client.connection_pool.connection_kwargs  # type: ignore[union-attr]
    return Redis(host=where["host"], port=where["port"])


async def test_a_profiles_memberships_and_attributes_are_one_atomic_write(
    start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    """One push of a profile with memberships and attributes: one script call names its keys (MONITOR),
    so no reader or failure can see one half without the other."""
    receiver = await with_attributes(start)
    assert (await post(http, receiver, profile("c-0", {"vip": seg("realized", T0)})))[0] == 200  # vip registered
    key = store.keys.membership("c-1")
    node = node_of(store, key)
    marker = "end-of-push-" + str(time.time())
    with node.monitor() as monitor:  # MONITOR is on once entered

        def listen() -> list[str]:
            commands: list[str] = []
            for seen in monitor.listen():
                if marker in seen["command"]:
                    return commands
                if seen["client_type"] != "lua":  # what clients sent, not what scripts ran
                    commands.append(seen["command"])
            return commands

        listening = asyncio.create_task(asyncio.to_thread(listen))
        body = profile("c-1", {"vip": seg("realized", T1)}, **person())
        status, answer = await post(http, receiver, body)
        node.echo(marker)
        sent = await listening
    node.close()
    assert status == 200, answer
    assert (answer["added"], answer["attributes"]) == (2, {"values": 6, "written": 6, "stale": 0})
    # (COMMAND GETKEYS: a cluster client asking where a command's keys are; it writes nothing)
    naming = [c.split()[0].upper() for c in sent if key in c and not c.upper().startswith("COMMAND")]
    assert naming == ["EVALSHA"], sent
    assert attributes_of(store, "c-1") == {"first_name": "Ada", "tier": "gold", "points": 120.0}
    assert seen_by_readers(store)["c-1"] == {"vip"}
