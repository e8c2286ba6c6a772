"""End to end: an AEP export loaded with audience-sync, then a real decision server answers from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio.cluster import RedisCluster

from audience_sync.cli.main import main
from audience_sync.store import SyncStore
from tests.audience_sync.helpers import write_lines, xdm_line
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import decide_request, offers, registry_heard

RULES = """
placements: [{id: banner, channels: [web], max_items: 5, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: vip_offer, placements: [banner], priority: 10, eligibility: {audiences: {all: [seg-vip]}}}
  - {id: gold_offer, placements: [banner], priority: 5, eligibility: {audiences: {any: [seg-gold]}}}
"""


async def test_a_decision_answers_from_a_loaded_aep_export(
    start_server: StartServer,
    write_rules: Callable[[str], Path],
    tmp_path: Path,
    redis_url: str,
    store: SyncStore,
    redis_client: Any,
) -> None:
    server = await start_server(write_rules(RULES), outcome_flush_interval=3600.0)  # no flush in the measurement
    export = write_lines(
        tmp_path / "export.json",
        [
            xdm_line("crm-1", {"seg-vip": "realized", "seg-gold": "existing"}),
            xdm_line("crm-2", {"seg-vip": "exited", "seg-gold": "realized"}),
            xdm_line("crm-3", {"seg-vip": {"status": "realized", "validUntil": "2020-01-01T00:00:00Z"}}),
        ],
    )

    assert main(["load", str(export), "--identity-namespace", "CRMID", "--redis-url", redis_url]) == 0
    await registry_heard(server)  # the registry the load switched to (pub/sub, off the decisions' path)
    async with decision_stub(server.port) as stub:

        async def decide(profile: str) -> list[str]:
            return offers(await stub.Decide(decide_request(profile_id=profile, placements=["banner"]), timeout=5))

        assert await decide("crm-1") == ["vip_offer", "gold_offer"]
        assert await decide("crm-2") == ["gold_offer"]
        assert await decide("crm-3") == ["fb"]  # validUntil has passed
        # A new snapshot switches the server's answers as soon as it hears of the registry change.
        later = write_lines(tmp_path / "later.json", [xdm_line("crm-2", {"seg-vip": "realized", "seg-gold": "exited"})])
        assert (
            main(["load", str(later), "--identity-namespace", "CRMID", "--redis-url", redis_url, "--allow-empty"]) == 0
        )
        await registry_heard(server)  # the registry the load switched to (pub/sub, off the decisions' path)
        assert await decide("crm-1") == ["fb"]
        assert await decide("crm-2") == ["vip_offer"]
        # Still one Redis command per decision.
        key = store.keys.membership("crm-2")
        before = await command_calls(redis_client, key)
        await decide("crm-2")
        after = await command_calls(redis_client, key)
    spent = {name: n - before.get(name, 0) for name, n in after.items() if n - before.get(name, 0)}
    spent["cmdstat_info"] = spent.get("cmdstat_info", 1) - 1  # our own INFO
    spent.pop("cmdstat_get", None)  # the server's poll of the registry version and pending codes, not the decision
    spent.pop("cmdstat_hkeys", None)
    assert {name: n for name, n in spent.items() if n} == {"cmdstat_hgetall": 1}


async def command_calls(client: Any, key: str) -> dict[str, int]:
    """Commands served so far by the node holding ``key`` (the only node a decision for it may touch)."""
    if isinstance(client, RedisCluster):
        stats = await client.info("commandstats", target_nodes=client.get_node_from_key(key))
    else:
        stats = await client.info("commandstats")
    return {name: int(value["calls"]) for name, value in stats.items()}
