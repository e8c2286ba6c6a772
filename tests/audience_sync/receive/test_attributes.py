"""Mapped attributes of pushed profiles: written under the identities of their memberships, by event time,
refused whole with the payload they came in, and seen by the next Decide of a real decision server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from audience_sync.attribute_mapping import AttributeSource
from audience_sync.attributes import AttributeTally
from audience_sync.deltas import DeltaApplier
from audience_sync.formats.xdm import XdmOptions
from audience_sync.receive.app import AppOptions
from audience_sync.receive.payloads import PayloadOptions, parse_payload
from audience_sync.receive.server import RunningReceiver
from audience_sync.receive.writer import BatchWriter
from audience_sync.records import seconds
from audience_sync.store import SyncStore
from inbound_common.codecs import attribute_event_ms, profile_attributes
from tests.audience_sync.helpers import dump, latest_arrival, results_of, seen_by_readers
from tests.audience_sync.receive.conftest import StartReceiver
from tests.audience_sync.receive.test_app import T0, T1, T2, post, seg
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import decide_request, offers, registry_heard

ABSENT = "(absent)"  # a member the push does not have (null: a removal)
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
    first = profile("c-1", {"vip": seg("realized", T1)}, timestamp=T1, **person())
    status, answer = await post(http, receiver, first)
    assert status == 200, answer
    assert answer["attributes"] == {"values": 6, "written": 6, "unchanged": 0, "stale": 0}
    assert (answer["profiles"], answer["identities"], answer["added"]) == (1, 2, 2)
    for profile_id in ("e-c-1", "c-1"):
        assert attributes_of(store, profile_id) == {"first_name": "Ada", "tier": "gold", "points": 120.0}
        assert event_time_of(store, profile_id, "tier") == seconds(T1)  # the top-level timestamp
    # An older push arriving late changes nothing; a newer one wins; a JSON null removes.
    older = profile("c-1", {"vip": seg("exited", T0)}, timestamp=T0, **person(tier="silver"))
    status, answer = await post(http, receiver, older)
    assert (status, answer["attributes"]["stale"], answer["stale"]) == (200, 6, 2)
    assert attributes_of(store, "c-1")["tier"] == "gold"
    newer = profile("c-1", {"vip": seg("realized", T0), "gold": seg("realized", T2)}, timestamp=T2, **person(tier=None))
    status, answer = await post(http, receiver, newer)
    assert status == 200 and "tier" not in attributes_of(store, "c-1")
    assert answer["attributes"] == {"values": 6, "written": 2, "unchanged": 4, "stale": 0}
    # Without a timestamp, the request's arrival — never a lastQualificationTime, which does not move when only
    # attributes change (issue 19).
    before = time.time()
    assert (await post(http, receiver, profile("c-3", {"vip": seg("realized", T0)}, **person())))[0] == 200
    assert before - 0.001 <= event_time_of(store, "c-3", "first_name") <= time.time() + 0.001
    assert attributes_of(store, "e-c-3") == {"first_name": "Ada", "tier": "gold", "points": 120.0}


async def test_attribute_time_field_names_the_event_time(
    start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    """``--attribute-time-field``: a field of the pushed object (here a tenant field of the profile, as AEP
    namespaces custom fields); where it is null or empty, the ``timestamp``, else the arrival."""
    sources = tuple(AttributeSource.parse(spec) for spec in MAPPING)
    options = PayloadOptions(XdmOptions(("CRMID",)), attributes=sources, time_field="_acme.profileUpdatedAt")
    receiver = await start(app=AppOptions(options))

    def pushed(updated: object, **more: Any) -> dict[str, Any]:
        return profile("c-1", {"vip": seg("realized", T0)}, _acme={"profileUpdatedAt": updated}, **more, **person())

    assert (await post(http, receiver, pushed("2026-11-02T10:00:00.250Z", timestamp=T2)))[0] == 200
    assert event_time_of(store, "c-1", "tier") == seconds(T1) + 0.25  # the named field, before the timestamp
    assert (await post(http, receiver, pushed(None, timestamp=T2)))[0] == 200
    assert event_time_of(store, "c-1", "tier") == seconds(T2)
    before = time.time()
    assert (await post(http, receiver, pushed("")))[0] == 200
    assert before - 0.001 <= event_time_of(store, "c-1", "tier") <= time.time() + 0.001
    status, answer = await post(http, receiver, [pushed(T1), pushed("tomorrow")])
    assert (status, answer["errors"]) == (400, ["[1]._acme.profileUpdatedAt: bad timestamp 'tomorrow' "
                                                "(expected ISO 8601 or epoch seconds)"])  # fmt: skip


async def test_delta_records_carry_attributes_too(
    start: StartReceiver, http: aiohttp.ClientSession, store: SyncStore
) -> None:
    receiver = await with_attributes(start)
    record = {"profile_id": "p1", "audience_id": "vip", "status": "realized", "event_time": T1, "loyalty.tier": "x"}
    before = time.time()
    status, answer = await post(http, receiver, {**record, "loyalty": {"tier": "gold"}})
    assert status == 200, answer
    assert attributes_of(store, "p1") == {"tier": "x"}  # a member named like the path comes first
    assert event_time_of(store, "p1", "tier") >= before  # the arrival: event_time is the membership's
    sources = tuple(AttributeSource.parse(spec) for spec in MAPPING)
    named = await start(app=AppOptions(PayloadOptions(attributes=sources, time_field="event_time")))
    assert (await post(http, named, {**record, "profile_id": "p2"}))[0] == 200
    assert event_time_of(store, "p2", "tier") == seconds(T1)  # unless named


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


NAMES, TIERS = st.sampled_from(["Carl", "Bill", "Zoe", None, ABSENT]), st.sampled_from(["gold", "bronze", None, ABSENT])
# A push's time, when it has one: ties with each other and with the arrivals (which start at 1000 s).
STAMPS = st.sampled_from([None, None, 1000.0, 1000.001, 1000.002])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(NAMES, TIERS, STAMPS), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=10),
)
def test_any_interleaving_of_pushes_and_retries_ends_with_the_latest(
    store: SyncStore, sent: list[tuple[Any, Any, float | None]], deliveries: list[tuple[int, bool, bool]]
) -> None:
    """Pushes of one AEP profile (same lastQualificationTime), delivered in any order and again (retries), one
    per request or several written together, each parsed as it arrives (``now``: its arrival, 1 ms apart or in
    the same ms) and written by the receiver's writer into a real Redis. Per attribute, what a Decide reads is
    the value of the latest event time (its ``timestamp``, else its arrival), the later arrival winning a tie;
    each push is answered written, unchanged or stale per value as it arrived."""
    crmid = f"c-{uuid.uuid4().hex}"
    sources = tuple(AttributeSource.parse(spec) for spec in ("person.name.firstName=first_name", "loyalty.tier=tier"))
    options = PayloadOptions(XdmOptions(("CRMID",)), attributes=sources)
    arrivals, bodies, now = [], [], 1000.0
    for index, tick, _ in deliveries:
        first_name, tier, stamp = sent[index % len(sent)]
        now += 0.001 if tick else 0.0
        pushed: dict[str, Any] = {}
        if first_name != ABSENT:
            pushed["person"] = {"name": {"firstName": first_name}}
        if tier != ABSENT:
            pushed["loyalty"] = {"tier": tier}
        if stamp is not None:
            pushed["timestamp"] = stamp
        body = orjson.dumps({"identityMap": {"CRMID": [{"id": crmid}]},
                             "segmentMembership": {"ups": {"vip": seg("realized", T1)}}, **pushed})  # fmt: skip
        arrivals.append((first_name, tier, round((now if stamp is None else stamp) * 1000)))
        bodies.append(parse_payload(body, "application/json", options, now))

    async def receive() -> list[AttributeTally]:
        writer = BatchWriter(DeltaApplier(store, source="test"))
        writer.start()
        answers: list[AttributeTally] = []
        waiting: list[asyncio.Task[Any]] = []
        for payload, (_, _, alone) in zip(bodies, deliveries, strict=True):
            if alone and waiting:  # the requests handed over so far are written before this one arrives
                answers += [tally for _, tally in await asyncio.gather(*waiting)]
                waiting = []
            waiting.append(asyncio.create_task(writer.apply(payload.changes, payload.attributes)))
        answers += [tally for _, tally in await asyncio.gather(*waiting)]
        await writer.close()
        return answers

    answers = asyncio.run(receive())
    read = profile_attributes(store.client.hgetall(store.keys.membership(crmid)), set())
    expected: dict[str, list[str]] = {}
    for name, position in (("first_name", 0), ("tier", 1)):
        carried = [(i, (a[position], a[2])) for i, a in enumerate(arrivals) if a[position] != ABSENT]
        if carried:
            assert read.get(name) == latest_arrival([d for _, d in carried]), name
            for (i, _), result in zip(carried, results_of([d for _, d in carried]), strict=True):
                expected.setdefault(str(i), []).append(result)
        else:
            assert name not in read
    for i, tally in enumerate(answers):
        results = expected.get(str(i), [])
        assert tally.as_json() == {r: results.count(r) for r in ("written", "unchanged", "stale")}, i


PERKS = """
profile_attributes: {tier: string, first_name: string}
placements: [{id: banner, channels: [web], max_items: 1, fallback: hello}]
offers:
  - id: perks
    placements: [banner]
    content: {title: 'Hi {{profile.first_name}}, {{profile.tier}} perks'}
    eligibility: {audiences: {all: [vip]}}
  - id: hello
    placements: [banner]
    priority: -100
    content: {title: 'Hello {{profile.first_name | default: "you"}}'}
    eligibility: {audiences: {all: [nobody]}}
"""


async def test_attribute_changes_at_an_unchanged_qualification_time_reach_the_next_decide(
    start: StartReceiver, start_server: StartServer, write_rules: Callable[[str], Path], store: SyncStore
) -> None:
    """Issue 19, finding 2: AEP pushes a profile again when only its attributes change — no top-level
    timestamp, the same lastQualificationTime. Each push is written (its time: its arrival) and the next Decide
    renders it, whatever the values' alphabetical order; an identical resend is unchanged. With a timestamp, a
    tie goes to the later arrival, and an older push is stale."""
    server = await start_server(write_rules(PERKS))
    receiver = await with_attributes(start)
    async with aiohttp.ClientSession() as http, decision_stub(server.port) as stub:

        async def push(first_name: str, tier: str, **stamp: Any) -> dict[str, int]:
            body = profile("c-1", {"vip": seg("realized", T1)}, **stamp, **person(first_name, tier))
            status, answer = await post(http, receiver, body)
            assert status == 200, answer
            return cast(dict[str, int], answer["attributes"])

        async def title(profile_id: str) -> str:
            response = await stub.Decide(decide_request(profile_id=profile_id, placements=["banner"]), timeout=5)
            assert not response.degraded, "Redis was not read in time: a busy machine, not the rule under test"
            return str(orjson.loads(response.propositions[0].items[0].content_json)["title"])

        assert await push("Carl", "gold") == {"values": 6, "written": 6, "unchanged": 0, "stale": 0}
        await registry_heard(server)  # a new audience: its code comes with the registry
        assert await title("c-1") == await title("e-c-1") == "Hi Carl, gold perks"
        assert await push("Bill", "bronze") == {"values": 6, "written": 4, "unchanged": 2, "stale": 0}  # points: 120
        assert await title("c-1") == await title("e-c-1") == "Hi Bill, bronze perks"
        assert await push("Zoe", "silver") == {"values": 6, "written": 4, "unchanged": 2, "stale": 0}
        assert await title("c-1") == "Hi Zoe, silver perks"
        assert await push("Zoe", "silver") == {"values": 6, "written": 0, "unchanged": 6, "stale": 0}
        # Explicit times, later than every arrival so far: a tie goes to the later arrival, not to "Carl" < "Zoe".
        later = time.time() + 3600
        assert (await push("Zoe", "gold", timestamp=later))["written"] == 2
        assert (await push("Carl", "bronze", timestamp=later))["written"] == 4
        assert await title("c-1") == "Hi Carl, bronze perks"
        assert (await push("Ann", "gold", timestamp=later - 1))["stale"] == 6
        assert await title("e-c-1") == "Hi Carl, bronze perks"


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
    assert (answer["added"], answer["attributes"]) == (2, {"values": 6, "written": 6, "unchanged": 0, "stale": 0})
    # (COMMAND GETKEYS: a cluster client asking where a command's keys are; it writes nothing)
    naming = [c.split()[0].upper() for c in sent if key in c and not c.upper().startswith("COMMAND")]
    assert naming == ["EVALSHA"], sent
    assert attributes_of(store, "c-1") == {"first_name": "Ada", "tier": "gold", "points": 120.0}
    assert seen_by_readers(store)["c-1"] == {"vip"}
