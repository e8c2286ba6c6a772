"""Soak: a million Decide calls against one server; memory, file descriptors, tasks and p99 over time.

`decision serve` (one worker, metrics on) answers rounds of h2load load, each
round for another profile of the loaded population; after every round the
server's own metrics are scraped: resident memory, open file descriptors,
event-loop tasks, and the calls per status code and the degraded answers (so gRPC
errors are counted, which h2load would not). Prints a row per tenth of the run and the verdict:
RSS growth after warm-up (goal < 10%), no descriptor or task growth, p99 stable.

    python -m loadtest.soak --calls 1000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from decision.store.embedded import EmbeddedRedis, free_port
from loadtest import h2load
from loadtest.bench import load_profiles, process, sample_request, wait_ready
from loadtest.rulegen import generate
from loadtest.scrape import decide_calls, scrape


@dataclass(frozen=True, slots=True)
class Sample:
    calls: int
    rss_mib: float
    open_fds: int
    tasks: int
    p99_ms: float
    throughput: float
    not_ok: int


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--round", type=int, default=10_000, help="calls per h2load round (one profile each)")
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--profiles", type=int, default=2000)
    args = parser.parse_args()
    rounds = max(1, args.calls // args.round)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis_server:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(generate(200, 100, 1, caps=True))
        load_profiles(redis_server.url, args.profiles, 100, 20, 1)
        port, metrics_port = free_port(), free_port()
        serve = [sys.executable, "-m", "decision.cli", "serve", "--rules", str(rules), "--redis-url", redis_server.url,
                 "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port)]  # fmt: skip
        with process(serve):
            wait_ready(port)
            url = f"http://127.0.0.1:{port}/decision.v1.DecisionService/Decide"
            done = 0
            idle_tasks: list[int] = []  # tasks with no call in flight: after warm-up, at the end
            for index in range(rounds):
                body = h2load.grpc_frame(sample_request(f"p{(index * 7919) % args.profiles}"))
                result = h2load.run(url, body, requests=args.round, in_flight=args.in_flight)
                done += result.requests
                metrics = scrape(metrics_port)
                samples.append(
                    Sample(
                        done,
                        metrics["process_resident_memory_bytes"] / 2**20,
                        int(metrics["process_open_fds"]),
                        int(metrics.get("decision_event_loop_tasks", -1)),
                        result.percentile(0.99),
                        result.throughput,
                        decide_calls(metrics)[1] + decide_calls(metrics)[2],
                    )
                )
                if index in (rounds // 10, rounds - 1):
                    time.sleep(1.5)  # the sampler runs every second
                    idle_tasks.append(int(scrape(metrics_port).get("decision_event_loop_tasks", -1)))
                if (index + 1) % max(1, rounds // 10) == 0 or index == rounds - 1:
                    s = samples[-1]
                    print(
                        f"{s.calls:>9} calls  RSS {s.rss_mib:6.1f} MiB  fds {s.open_fds:3}  tasks {s.tasks:3}  "
                        f"p99 {s.p99_ms:6.2f} ms  {s.throughput:6.0f}/s  not OK or degraded so far {s.not_ok}",
                        flush=True,
                    )
    warm = samples[min(len(samples) - 1, max(1, len(samples) // 10))]
    last = samples[-1]
    growth = (last.rss_mib - warm.rss_mib) / warm.rss_mib
    p99s = sorted(s.p99_ms for s in samples[len(samples) // 10 :])
    print(
        f"\nRSS after warm-up {warm.rss_mib:.1f} MiB -> {last.rss_mib:.1f} MiB ({growth:+.1%}); "
        f"fds {warm.open_fds} -> {last.open_fds}; idle event-loop tasks {idle_tasks[0]} -> {idle_tasks[-1]}; "
        f"p99 per round after warm-up: median {p99s[len(p99s) // 2]:.2f} ms, max {p99s[-1]:.2f} ms; "
        f"calls not OK or degraded: {last.not_ok}"
    )
    healthy = (
        growth < 0.10 and last.open_fds <= warm.open_fds + 2 and idle_tasks[-1] <= idle_tasks[0] and not last.not_ok
    )
    print("verdict:", "OK" if healthy else "ATTENTION")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
