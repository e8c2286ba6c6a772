"""End to end: a push answered 200 is seen by the next Decide of a real decision server, under each identity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from audience_sync.formats.xdm import XdmOptions
from audience_sync.receive.app import AppOptions
from audience_sync.receive.payloads import PayloadOptions
from audience_sync.store import SyncStore
from tests.audience_sync.receive.conftest import AUTH, StartReceiver
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import decide_request, offers, registry_heard

RULES = """
placements: [{id: banner, channels: [web], max_items: 5, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: vip_offer, placements: [banner], priority: 10, eligibility: {audiences: {all: [seg-vip]}}}
"""


def pushed(status: str, when: str) -> bytes:
    return orjson.dumps(
        [
            {
                "identityMap": {"ECID": [{"id": "e-1"}], "CRMID": [{"id": "c-1"}]},
                "segmentMembership": {"ups": {"seg-vip": {"status": status, "lastQualificationTime": when}}},
            }
        ]
    )


async def test_the_next_decide_sees_a_push_under_each_identity(
    start: StartReceiver,
    start_server: StartServer,
    write_rules: Callable[[str], Path],
    store: SyncStore,
    redis_client: Any,
) -> None:
    server = await start_server(write_rules(RULES))
    receiver = await start(app=AppOptions(PayloadOptions(XdmOptions(("ECID", "CRMID")))))
    async with aiohttp.ClientSession(headers=AUTH) as http, decision_stub(server.port) as stub:

        async def push(body: bytes) -> None:
            async with http.post(receiver.url + "/v1/profiles", data=body) as response:
                assert response.status == 200, await response.text()

        async def decide(profile: str) -> list[str]:
            return offers(await stub.Decide(decide_request(profile_id=profile, placements=["banner"]), timeout=5))

        await push(pushed("realized", "2026-11-02T10:00:00Z"))
        await registry_heard(server)  # a new audience: the server learns its code from the registry (pub/sub)
        assert await decide("e-1") == await decide("c-1") == ["vip_offer"]
        await push(pushed("exited", "2026-11-02T11:00:00Z"))  # a known audience: seen by the very next Decide
        assert await decide("e-1") == await decide("c-1") == ["fb"]
        await push(pushed("realized", "2026-11-02T10:30:00Z"))  # older than the exit: skipped
        assert await decide("c-1") == ["fb"]
