"""The benchmark: Decide against the gRPC ceiling, measured in one run on this machine.

1. a bare grpc.aio echo server (loadtest.echo_server) with the decision server's
   process model, driven by h2load at 1, 16 and 128 calls in flight;
2. `decision serve` with a generated ruleset (200 offers, caps on: per-profile
   caps counted on decision and total caps) and profiles of 20 audiences each,
   driven the same way;
3. throughput, p50/p99 of both and the ratios; every call checked to have
   succeeded (h2load counts gRPC errors as successes: the echo's DATA bytes
   must be exactly requests x its answer; for Decide the server's own metrics
   count non-OK statuses and degraded answers); a latency-vs-throughput chart;
4. rule evaluation alone, 500 offers, against GrowthBook's Python SDK;
5. the decision workers' RSS.

    python -m loadtest.bench                  # writes bench-results/latency.png
    python -m loadtest.bench --workers 2 --requests 40000
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.rules.loader import load_file
from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2, decision_pb2_grpc
from loadtest import h2load
from loadtest.growthbook_compare import compare
from loadtest.rulegen import audience_id, generate
from loadtest.scrape import decide_calls, scrape

IN_FLIGHT = (1, 16, 128)
METHOD_URL = "http://127.0.0.1:{port}/decision.v1.DecisionService/Decide"


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    results: tuple[h2load.LoadResult, ...]
    # Per level: calls that did not get a full answer (a gRPC error status, or a degraded decision).
    failures: tuple[int, ...]


@contextmanager
def process(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()


def wait_ready(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)


def sample_request(profile: str) -> decision_pb2.DecideRequest:
    request = decision_pb2.DecideRequest(profile_id=profile, channel="web", request_id="bench")
    request.placements.add(placement_id="home_banner")
    request.placements.add(placement_id="cart_upsell")
    request.context["cart_value"].number_value = 120
    request.context["device"].string_value = "desktop"
    request.context["page_path"].string_value = "/sneakers"
    request.context["logged_in"].bool_value = True
    request.context["visits_30d"].number_value = 4
    for category in ("sneakers", "apparel"):
        request.context["cart_categories"].list_value.values.add().string_value = category
    return request


def load_profiles(url: str, profiles: int, audiences: int, per_profile: int, seed: int) -> None:
    """Memberships written by audience_sync's delta writer (atomic, as in production)."""
    rng = random.Random(seed)
    rows = (
        (f"p{profile}", audience_id(a), True, None)
        for profile in range(profiles)
        for a in rng.sample(range(audiences), per_profile)
    )
    store = SyncStore.from_url(url)
    try:
        write_memberships(store, rows, source="bench")
    finally:
        store.close()


def measure(name: str, port: int, body: bytes, requests: int, metrics_port: int | None = None) -> Series:
    """Each level in turn. Failures: for the echo, answers short of the request's bytes (a gRPC error
    carries no DATA); for Decide, the server's own count of non-OK statuses and degraded answers."""
    url = METHOD_URL.format(port=port)
    results, failures = [], []
    for in_flight in IN_FLIGHT:
        count = requests // 8 if in_flight == 1 else requests
        warmup = min(2000, count // 4)
        before = decide_calls(scrape(metrics_port)) if metrics_port else (0, 0, 0)
        result = h2load.run(url, body, requests=count, in_flight=in_flight, warmup=warmup)
        results.append(result)
        if metrics_port is None:
            failures.append(result.requests - result.data_bytes // len(body))
        else:
            after = decide_calls(scrape(metrics_port))
            answered_ok = after[0] - before[0] - warmup
            failures.append((count - answered_ok) + (after[1] - before[1]) + (after[2] - before[2]))
    return Series(name, tuple(results), tuple(failures))


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def worker_pids(parent: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    # With --workers N the parent only waits: the spawned children serve (the resource tracker is tiny).
    return [int(pid) for pid in children] or [parent]


def chart(series: list[Series], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for s in series:
        for quantile, style in ((0.5, "-o"), (0.99, "--s")):
            axis.plot(
                [r.throughput for r in s.results],
                [r.percentile(quantile) for r in s.results],
                style,
                label=f"{s.name} p{int(quantile * 100)}",
            )
        for r in s.results:
            point = (r.throughput, r.percentile(0.5))
            axis.annotate(f"{r.in_flight}", point, textcoords="offset points", xytext=(4, 4))
    axis.set_xlabel("throughput (calls/s)")
    axis.set_ylabel("latency (ms)")
    axis.set_yscale("log")
    axis.set_title("Decide vs bare gRPC echo (labels: calls in flight)")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20000, help="calls per level (1 in flight: an eighth)")
    parser.add_argument("--offers", type=int, default=200)
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--per-profile", type=int, default=20)
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chart", type=Path, default=Path("bench-results/latency.png"))
    parser.add_argument("--skip-growthbook", action="store_true")
    args = parser.parse_args()
    h2load.find_h2load()

    request = sample_request("p7")
    body = h2load.grpc_frame(request)
    series: list[Series] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis_server:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(generate(args.offers, args.audiences, args.seed, caps=True))
        offers = len(load_file(str(rules)).offers)
        load_profiles(redis_server.url, args.profiles, args.audiences, args.per_profile, args.seed)

        port = free_port()
        echo = [sys.executable, "-m", "loadtest.echo_server", "--port", str(port), "--workers", str(args.workers)]
        with process(echo):
            wait_ready(port)
            series.append(measure("echo", port, body, args.requests))

        port, metrics_port = free_port(), free_port()
        serve = [sys.executable, "-m", "decision.cli", "serve", "--rules", str(rules), "--redis-url", redis_server.url,
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
                 "--metrics-port", str(metrics_port)]  # fmt: skip
        with process(serve) as server:
            wait_ready(port)
            time.sleep(0.5)  # every worker is up
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = decision_pb2_grpc.DecisionServiceStub(channel).Decide(request, timeout=5)
            if answer.degraded or any(p.fallback for p in answer.propositions):
                print("warning: the sample answer is degraded or a fallback", file=sys.stderr)
            series.append(measure("decide", port, body, args.requests, metrics_port))
            rss = [rss_mib(pid) for pid in worker_pids(server.pid)]

    print(f"\nworkers {args.workers}; ruleset {offers} offers; {args.profiles} profiles x {args.per_profile} audiences")
    print(f"{'server':8} {'in flight':>9} {'calls':>7} {'failed':>6} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for s in series:
        for r, failed in zip(s.results, s.failures, strict=True):
            print(
                f"{s.name:8} {r.in_flight:>9} {r.requests:>7} {failed:>6} {r.throughput:>9.0f} "
                f"{r.percentile(0.5):>8.2f} {r.percentile(0.99):>8.2f}"
            )
    echo_series, decide_series = series
    for echo_result, decide_result in zip(echo_series.results, decide_series.results, strict=True):
        print(
            f"decide/echo at {echo_result.in_flight:>3} in flight: throughput "
            f"{decide_result.throughput / echo_result.throughput:.2f}x, p99 "
            f"{decide_result.percentile(0.99) / echo_result.percentile(0.99):.2f}x"
        )
    print(f"decision worker RSS after the run: {', '.join(f'{m:.0f} MiB' for m in rss)}")
    chart(series, args.chart)
    print(f"chart: {args.chart}")
    failures = sum(sum(s.failures) for s in series)
    if not args.skip_growthbook:
        result = compare(offers=500)
        print(
            f"rule evaluation, {result.offers} offers ({result.eligible_per_sample:.0f} eligible per sample, same "
            f"answers checked): durable_rules {result.ours_us:.0f} µs, GrowthBook {result.growthbook_us:.0f} µs, "
            f"ratio {result.ratio:.3f}"
        )
    if failures:
        print(f"FAILED: {failures} calls did not get a full answer", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
