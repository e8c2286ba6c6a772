"""One Decide at a time: p50/p99 over N sequential calls from a Python gRPC client.

Starts an embedded redis-server, loads profiles with audience memberships,
starts `decision serve` as its own process, and measures sequential Decide
calls next to sequential gRPC health checks on the same channel (the floor
of a unary call here), so the figures can be read as a ratio on a noisy box.

    python -m loadtest.sequential_latency --rules examples/retail/rules.yaml
    python -m loadtest.sequential_latency --generate-offers 200
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.rules.loader import load_file
from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2, decision_pb2_grpc
from loadtest.bench import serve_env
from loadtest.rulegen import CATEGORIES, DEVICES, generate


def audiences_named(rules: Path) -> list[str]:
    ruleset = load_file(str(rules))
    names: set[str] = set()
    for offer in ruleset.offers.values():
        for rule in offer.rules:
            names.update(rule.audiences.referenced())
    return sorted(names)


def load_profiles(url: str, audiences: list[str], profiles: int, per_profile: int, seed: int) -> None:
    """Memberships written by audience_sync's delta writer (atomic, as in production)."""
    rng = random.Random(seed)
    rows = (
        (f"p{profile}", audience, True, None)
        for profile in range(profiles)
        for audience in rng.sample(audiences, min(per_profile, len(audiences)))
    )
    store = SyncStore.from_url(url)
    try:
        write_memberships(store, rows, source="bench")
    finally:
        store.close()


def random_request(
    rng: random.Random, profiles: int, placements: list[tuple[str, frozenset[str]]]
) -> decision_pb2.DecideRequest:
    channel = rng.choice(("web", "mobile"))
    wanted = [p for p, channels in placements if channel in channels][:2]
    request = decision_pb2.DecideRequest(profile_id=f"p{rng.randrange(profiles)}", channel=channel)
    for placement in wanted:
        request.placements.add(placement_id=placement)
    request.context["cart_value"].number_value = rng.choice((0, 15, 35, 80, 120, 300))
    request.context["device"].string_value = rng.choice(DEVICES)
    request.context["page_path"].string_value = "/" + rng.choice(CATEGORIES)
    request.context["logged_in"].bool_value = rng.random() < 0.6
    request.context["visits_30d"].number_value = rng.randrange(12)
    categories = request.context["cart_categories"].list_value
    for category in rng.sample(CATEGORIES, 2):
        categories.values.add().string_value = category
    return request


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1e3
    p99 = ordered[int(len(ordered) * 0.99)] * 1e3
    return f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  mean {statistics.fmean(ordered) * 1e3:.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=Path, help="ruleset file (default: generated)")
    parser.add_argument("--generate-offers", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--audiences-per-profile", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis_server:
        rules = args.rules
        if rules is None:
            rules = Path(tmp) / "generated.yaml"
            rules.write_text(generate(args.generate_offers, 100, args.seed))
        ruleset = load_file(str(rules))
        placements = [(p.id, p.channels) for p in ruleset.placements.values()]
        audiences = audiences_named(rules)
        load_profiles(redis_server.url, audiences, args.profiles, args.audiences_per_profile, args.seed)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "decision.cli",
                "serve",
                "--rules",
                str(rules),
                "--redis-url",
                redis_server.url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stderr=subprocess.DEVNULL,
            env=serve_env(),
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                health = health_pb2_grpc.HealthStub(channel)
                stub = decision_pb2_grpc.DecisionServiceStub(channel)
                rng = random.Random(args.seed)
                requests = [random_request(rng, args.profiles, placements) for _ in range(args.calls)]
                for request in requests[:200]:  # warm-up
                    stub.Decide(request, timeout=2)
                    health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                decide_times: list[float] = []
                health_times: list[float] = []
                fallbacks = 0
                for request in requests:
                    started = time.perf_counter()
                    response = stub.Decide(request, timeout=2)
                    decide_times.append(time.perf_counter() - started)
                    fallbacks += sum(p.fallback for p in response.propositions)
                    assert not response.degraded
                    started = time.perf_counter()
                    health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    health_times.append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(20)
    offers = len(ruleset.offers)
    population = f"{args.profiles} profiles x {args.audiences_per_profile} audiences"
    print(f"ruleset {ruleset.version}: {offers} offers; {population}")
    print(f"Decide       ({args.calls} sequential calls): {percentiles(decide_times)}")
    print(f"Health.Check ({args.calls} sequential calls): {percentiles(health_times)}")
    ratio = statistics.median(decide_times) / statistics.median(health_times)
    print(f"Decide / Health.Check p50 ratio: {ratio:.2f}; fallback propositions: {fallbacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
