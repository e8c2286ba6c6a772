"""How many Redis commands a decision costs, counted by Redis itself (INFO commandstats).

The rule: a decision is **one round trip** — one HGETALL when the ruleset counts
nothing, one EVALSHA (read_profile.lua: memberships and counters together)
when it has caps, suppressions or contact policies — unless it proposes an
offer whose proposals are counted (a cap or a contact policy counted on
decision): then one more EVALSHA on the same slot (select.lua), and one per
proposed offer with a total cap counted on decision (reserve_total.lua).
Redis also counts the commands a script runs; those are not round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from decision.store import scripts
from tests.conftest import ON_CLUSTER, StartServer, decision_stub
from tests.decision.delivery import PATIENT, decide, event, first, record, ruleset
from tests.decision.helpers import add_membership
from tests.redis_cluster import command_calls, reset_command_stats


async def spent(redis_client: Any, action: Callable[[], Any]) -> dict[str, int]:
    """Commands Redis ran for ``action`` (every node of a Cluster; statistics commands left out)."""
    await reset_command_stats(redis_client)
    before = await command_calls(redis_client)
    await action()
    after = await command_calls(redis_client)
    diff = {k.removeprefix("cmdstat_"): n - before.get(k, 0) for k, n in after.items()}
    return {k: n for k, n in diff.items() if n}


# On a Cluster, replicas apply a script's writes as MULTI ... EXEC (counted on them, not round trips).
REPLICATED = {"multi", "exec"}

OFFERS = """
  - {id: seen_capped, placements: [banner], priority: 30, caps: [{max: 5, counts: impression}],
     eligibility: {audiences: {all: [vip]}}}
  - {id: decision_capped, placements: [banner], priority: 20, caps: [{max: 1, period: day}]}
  - {id: total_capped, placements: [banner], priority: 10, caps: [{max: 100, scope: total}]}
  - {id: plain, placements: [banner], priority: 0}
"""


async def test_a_decision_is_one_evalsha_unless_it_proposes_a_decision_counted_offer(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: Any
) -> None:
    # Total caps are re-read and proposal counts flushed in the background once an hour here, so that no such
    # command lands in a measurement.
    server = await start_server(
        write_rules(ruleset(OFFERS)), **PATIENT, registry_poll_interval=60.0, totals_refresh_interval=3600.0,
        outcome_flush_interval=3600.0,
    )  # fmt: skip
    await add_membership(server, "p1", "vip")
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))  # warms up: the server learns the registry's codes
        await server.service.proposer.settled()  # the first decision started a totals refresh
        for name in scripts.NAMES:  # as after the first calls: EVALSHA finds every script (no NOSCRIPT + LOAD)
            await redis_client.script_load(scripts.source(name))  # on every primary of a Cluster
        assert item.offer_id == "seen_capped"
        # Caps in the ruleset, none counted on this decision: memberships + counters in one EVALSHA.
        assert await spent(redis_client, lambda: decide(stub)) == {"evalsha": 1, "hgetall": 2}
        shown = [item, *[first(await decide(stub)) for _ in range(4)]]  # a token counts one impression
        await record(stub, *(event(i, f"i{n}", at=server.service.clock()) for n, i in enumerate(shown)))
        # seen_capped is now capped: decision_capped is proposed, which must be counted atomically.
        cost = await spent(redis_client, lambda: decide(stub))
        assert cost.pop("evalsha") == 2  # read, then select.lua on the same slot
        assert set(cost) <= {"hgetall", "hget", "hset", "pttl", "pexpire"} | REPLICATED  # run inside the scripts
        # decision_capped is used up for today: total_capped is proposed, its total reserved.
        cost = await spent(redis_client, lambda: decide(stub))
        assert cost.pop("evalsha") == 2  # read, then reserve_total.lua on the offer's slot
        assert set(cost) <= {"hgetall", "get", "incrby", "pttl", "pexpire"} | REPLICATED


async def test_without_delivery_controls_a_decision_stays_one_hgetall(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_client: Any
) -> None:
    server = await start_server(
        write_rules(ruleset("  - {id: plain, placements: [banner], eligibility: {audiences: {all: [vip]}}}\n")),
        registry_poll_interval=60.0,
        outcome_flush_interval=3600.0,
        **PATIENT,
    )
    await add_membership(server, "p1", "vip")
    async with decision_stub(server.port) as stub:
        item = first(await decide(stub))
        assert await spent(redis_client, lambda: decide(stub)) == {"hgetall": 1}
        # Proposals are counted off the decision's path: the worker's flush adds them, one HINCRBY per field.
        flushed = await spent(redis_client, server.service.proposals.flush)
        copies = 2 if ON_CLUSTER else 1  # a Cluster's replica runs the primary's writes again
        assert flushed == {"hincrby": copies, "pexpire": copies}  # one offer-day, one field (2 proposals)
        # An event: recorded on the profile's slot and counted on the offer-day's, in one pipeline.
        cost = await spent(redis_client, lambda: record(stub, event(item, "i1", at=server.service.clock())))
        assert cost.pop("evalsha") == 2  # record_events.lua, count_outcomes.lua
        assert set(cost) <= {"set", "hget", "hset", "hsetnx", "hincrby", "pttl", "pexpire"} | REPLICATED
