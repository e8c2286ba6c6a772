"""Before/after: the decision server of another checkout against this one's, in one run, the echo as ceiling.

Both servers read the same Redis, ruleset and profiles and get the same traffic, alternately, round after round
(one worker each on core 1, h2load, k6 and Redis on core 0): only ratios to the echo of the same round mean anything
on a shared machine. The other checkout needs its own ``.venv`` (``./dev`` makes it there)::

    git worktree add /tmp/before <commit> && (cd /tmp/before && ./dev python -c 'import decision')
    python -m loadtest.compare_commits --before /tmp/before --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from decision.store.embedded import free_port
from loadtest import h2load, k6load
from loadtest.bench import (
    LOAD_CORE,
    METHOD_URL,
    SERVER_CORE,
    cpu_seconds,
    load_profiles,
    pinned,
    redis,
    sample_request,
    serve_env,
    wait_ready,
)
from loadtest.rulegen import generate
from loadtest.traffic import write_requests

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 200


@dataclass
class Figures:
    """Per round: calls/s, p99 ms and server CPU µs per call, by level ("1", "16" one body; "k6" realistic)."""

    rounds: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    def add(self, level: str, calls: float, p99: float, cpu: float) -> None:
        self.rounds.setdefault(level, []).append((calls, p99, cpu))


def serve_command(python: str, rules: Path, url: str, port: int, *, drain: bool) -> list[str]:
    command = [*pinned(SERVER_CORE), python, "-m", "decision.cli", "serve", "--rules", str(rules),
               "--redis-url", url, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return [*command, "--drain", "0"] if drain else command


def measure(
    command: list[str], cwd: Path, port: int, figures: Figures, requests: Path, args: argparse.Namespace
) -> None:
    body = h2load.grpc_frame(sample_request("p7"))
    server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=serve_env())
    try:
        wait_ready(port)
        pids = [server.pid]
        for in_flight in (1, 16):
            calls = args.requests // 8 if in_flight == 1 else args.requests
            before = cpu_seconds(pids)
            result = h2load.run(METHOD_URL.format(port=port), body, requests=calls, in_flight=in_flight,
                                warmup=WARMUP, prefix=pinned(LOAD_CORE))  # fmt: skip
            cpu = (cpu_seconds(pids) - before) / (calls + WARMUP) * 1e6
            figures.add(str(in_flight), result.throughput, result.percentile(0.99), cpu)
        before = cpu_seconds(pids)
        k6 = k6load.run(f"127.0.0.1:{port}", requests, in_flight=16, seconds=args.seconds,
                        discard_answers="echo_server" in command, prefix=pinned(LOAD_CORE))  # fmt: skip
        figures.add("k6", k6.throughput, k6.p99_ms, (cpu_seconds(pids) - before) / max(1, k6.requests) * 1e6)
    finally:
        server.terminate()
        server.wait(30)


def report(name: str, figures: Figures, echo: Figures) -> None:
    for level, label in (("1", "1 in flight, one body"), ("16", "16 in flight, one body"), ("k6", "16, realistic")):
        mine, ceiling = figures.rounds[level], echo.rounds[level]
        ratios = [[m[i] / c[i] for m, c in zip(mine, ceiling, strict=True)] for i in range(3)]
        calls, p99, cpu = (statistics.median(r) for r in ratios)
        print(f"{name:>6}  {label:<22} ÷ echo: calls/s {calls:.2f}, p99 {p99:.2f}, CPU per call {cpu:.2f}"
              f"   (calls/s by round: {', '.join(f'{r:.2f}' for r in ratios[0])})")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the other commit, with its .venv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests", type=int, default=10_000, help="one-body calls at 16 in flight (1 in flight: 1/8)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="realistic traffic per round")
    args = parser.parse_args()
    before_python = args.before / ".venv" / "bin" / "python"
    if not before_python.exists():
        raise SystemExit(f"{before_python} is missing: run ./dev once in {args.before}")
    echo, old, new = Figures(), Figures(), Figures()
    with tempfile.TemporaryDirectory() as tmp, redis("plain", None, Path(tmp)) as url:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(generate(200, 100, 1, caps=True))
        load_profiles(url, 10_000, 100, 20, 1)
        requests = Path(tmp) / "requests.json"
        write_requests(requests, 20_000, 10_000, 1)
        for round_ in range(args.rounds):
            port = free_port()
            echo_command = [*pinned(SERVER_CORE), sys.executable, "-m", "loadtest.echo_server", "--port", str(port)]
            measure(echo_command, ROOT, port, echo, requests, args)
            port = free_port()
            measure(
                serve_command(str(before_python), rules, url, port, drain=False), args.before, port, old, requests, args
            )
            port = free_port()
            measure(serve_command(sys.executable, rules, url, port, drain=True), ROOT, port, new, requests, args)
            print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    report("before", old, echo)
    report("after", new, echo)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
