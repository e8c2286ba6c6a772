"""What caps cost a decision: Decide latency with and without delivery controls, as ratios to a baseline.

Runs an embedded redis-server and a decision server in this process, then
sends sequential Decide calls over loopback gRPC for three rulesets:

* ``baseline``: no caps (one HGETALL per decision);
* ``read``: caps in the ruleset, none counted on this decision (one EVALSHA: memberships + counters);
* ``reserve``: the proposed offer has a per-profile cap counted on decision (EVALSHA read + EVALSHA select);
* ``total``: the proposed offer has a total cap counted on decision (EVALSHA read + EVALSHA reserve_total).

Usage: ``python -m loadtest.caps_cost [--calls 3000]``. Prints medians and p99s, and each ratio to the
baseline measured in the same run (machines here are shared and noisy: compare ratios, not times).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import redis.asyncio as aioredis

from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.api.server import start
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2, decision_pb2_grpc

HEAD = """
placements: [{id: banner, channels: [web], max_items: 1, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
"""


def offer(caps: str = "") -> str:
    return f"  - {{id: o, placements: [banner], {caps}eligibility: {{audiences: {{all: [vip]}}}}}}\n"


RULESETS = {
    "baseline": offer(),
    "read": offer("caps: [{max: 9, counts: click}], "),
    # Caps no profile reaches in this run: every decision reserves.
    "reserve": offer("caps: [{max: 1000, period: 1h}], "),
    "total": offer("caps: [{max: 1000000, scope: total}], "),
}


async def measure(name: str, offers: str, redis_url: str, calls: int, folder: Path) -> list[float]:
    path = folder / f"{name}.yaml"
    path.write_text(HEAD + offers, encoding="utf-8")
    server = await start(Settings(rules_path=str(path), host="127.0.0.1", port=0, redis_timeout=1.0), redis_url)
    try:
        profiles = [f"p{i}" for i in range(50)]
        store = SyncStore.from_url(redis_url)
        try:  # audience_sync's delta writer, as in production
            write_memberships(store, [(profile, "vip", True, None) for profile in profiles], source="bench")
        finally:
            store.close()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            request = decision_pb2.DecideRequest(channel="web", placements=[{"placement_id": "banner"}])
            latencies = []
            for n in range(calls + 200):
                request.profile_id = profiles[n % len(profiles)]
                started = time.perf_counter()
                response = await stub.Decide(request, timeout=5)
                if n >= 200:  # warm-up: scripts loaded, codes learned
                    latencies.append(time.perf_counter() - started)
                assert response.propositions[0].items[0].offer_id == "o", response
        return latencies
    finally:
        await server.stop(0.5)


async def main(calls: int) -> None:
    with EmbeddedRedis() as redis_server, tempfile.TemporaryDirectory() as folder:
        results: dict[str, list[float]] = {}
        # Interleave twice so drifts of a noisy machine hit every ruleset alike.
        for _ in range(2):
            for name, offers in RULESETS.items():
                await redis_server_flush(redis_server.url)
                results.setdefault(name, []).extend(
                    await measure(name, offers, redis_server.url, calls // 2, Path(folder))
                )
    base = statistics.median(results["baseline"])
    for name, latencies in results.items():
        median = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(f"{name:<9} median {median * 1e6:7.0f} us  p99 {p99 * 1e6:7.0f} us  median ratio {median / base:4.2f}")


async def redis_server_flush(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    asyncio.run(main(parser.parse_args().calls))
