"""Instructions per Decide, counted by valgrind: a measure of a change that the machine's load cannot move.

Runs ``loadtest.inprocess`` (request bytes -> decision -> response bytes against a real Redis) under
``valgrind --tool=callgrind`` twice, with ``--calls`` and with ``--calls`` more, on the same Redis and
profiles: the difference of the two totals over the difference of calls is the instructions one call
costs, start-up and warm-up cancelled out. Same code, same inputs: the same count within a fraction of a
per cent, on a quiet box or one shared with other work (where CPU time swings by tens of per cent).

    python -m loadtest.instructions                         # this checkout, realistic and one-body traffic
    python -m loadtest.instructions --before /tmp/before    # and another checkout's code (its own .venv), same run
    python -m loadtest.instructions --env DECISION_STAGE_TIMING=1   # with a setting of the server's environment

``--server``: the whole server instead (``decision serve`` with metrics, as the bench runs it, and the
echo beside it), under callgrind, driven at 1 and 16 calls in flight by h2load with the bench's one body
(``--calls`` calls) and by k6 with the bench's realistic requests (for about ``--calls`` calls, counted by
the server): callgrind's counters are zeroed after a warm-up and dumped after the calls, so the count
is of those calls alone (gRPC, the event loop, every thread) — the "x echo" of the bench in instructions
(kernel time, a large part of the echo's CPU, is not counted). What the server does by the clock (refreshes,
flushes, samplers) is counted while it idles after the calls and taken out at that rate: a window slowed
down by a busy box would otherwise count more of it per call.

    python -m loadtest.instructions --server [--before /tmp/before]

``--before``: a checkout of another commit with a ``.venv`` (``./dev`` makes it; ``--same-venv``: this
checkout's ``.venv`` runs it, its code first on the path); this checkout's driver runs against that
checkout's code (a checkout whose servicer has no ``answer`` is driven through
``convert`` and the service, as its servicer did).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from decision.store.embedded import EmbeddedRedis, free_port
from loadtest import h2load, k6load
from loadtest.bench import LONG_CONNECTIONS, METHOD_URL, load_profiles, sample_request
from loadtest.inprocess import AUDIENCES, OFFERS, PER_PROFILE, PROFILES, SEED
from loadtest.rulegen import generate
from loadtest.scrape import decide_calls, scrape
from loadtest.traffic import write_requests

ROOT = Path(__file__).resolve().parents[1]
# A server under callgrind on a busy box may take long to answer a scrape.
SCRAPE_TIMEOUT = 300.0
_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


DRIVER_OPTIONS: list[str] = []  # --driver-option: what loadtest.inprocess runs with (--no-caps, --no-metrics)


def instructions(
    python: Path, checkout: Path, url: str, calls: int, traffic: str, folder: Path, env: dict[str, str]
) -> int:
    """Instructions of one driver run (the whole process: start-up, warm-up and ``calls`` calls)."""
    out = folder / f"callgrind.{traffic}.{calls}.out"
    driver = folder / "inprocess_driver.py"
    shutil.copy(ROOT / "loadtest" / "inprocess.py", driver)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
               str(python), str(driver), "--redis-url", url, "--no-load", "--calls", str(calls),
               "--traffic", traffic, *DRIVER_OPTIONS]  # fmt: skip
    run_env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(checkout), **env}
    subprocess.run(command, cwd=checkout, env=run_env, check=True, capture_output=True)
    match = _TOTALS.search(out.read_text(errors="replace"))
    if match is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(match.group(1))


def per_call(
    python: Path, checkout: Path, url: str, calls: int, traffic: str, folder: Path, env: dict[str, str]
) -> float:
    low = instructions(python, checkout, url, calls, traffic, folder, env)
    high = instructions(python, checkout, url, 2 * calls, traffic, folder, env)
    return (high - low) / calls


def _dump_total(pid: int, folder: Path, out: Path, command: str) -> int:
    """Zero (``-z``) or dump (``-d``) callgrind's counters of ``pid``; the dump's instruction total."""
    before = set(folder.glob(out.name + ".*"))
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)
    if command == "-z":
        return 0
    for _ in range(600):
        new = set(folder.glob(out.name + ".*")) - before
        if new:
            dump = new.pop()
            for _ in range(600):  # written when the process next runs
                match = _TOTALS.search(dump.read_text(errors="replace"))
                if match:
                    return int(match.group(1))
                time.sleep(0.1)
        time.sleep(0.1)
    raise SystemExit(f"callgrind wrote no dump of {pid}")


def server_per_call(
    name: str,
    python: Path,
    checkout: Path,
    url: str,
    rules: Path,
    calls: int,
    folder: Path,
    env: dict[str, str],
    requests_file: Path | None = None,
) -> dict[int, float]:
    """Instructions per call of the echo or the decision server, at 1 and 16 in flight: the one body (h2load,
    ``calls`` calls), or with ``requests_file`` the realistic requests (k6, for about ``calls`` calls)."""
    port, metrics = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"callgrind.server.{name}.out"
    if name == "echo":
        serve = ["-m", "loadtest.echo_server", "--port", str(port)]
    else:
        # No slowed-down read may degrade an answer: a Redis budget of ten minutes.
        serve = ["-m", "decision.cli", "serve", "--rules", str(rules), "--redis-url", url, "--host", "127.0.0.1",
                 "--port", str(port), "--metrics-port", str(metrics), "--drain", "0",
                 "--redis-timeout-ms", "600000"]  # fmt: skip
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no", str(python), *serve]
    # LONG_CONNECTIONS: no GOAWAY by connection age during a slowed-down run (h2load would stop sending).
    run_env = {**os.environ, **LONG_CONNECTIONS, "PYTHONHASHSEED": "0", "PYTHONPATH": str(checkout), **env}
    server = subprocess.Popen(command, cwd=checkout, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body = h2load.grpc_frame(sample_request("p7"))
    url_of = METHOD_URL.format(port=port)
    result = {}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=600)
        for in_flight in (1, 16):
            if requests_file is None:
                h2load.run(url_of, body, requests=max(100, calls // 4), in_flight=in_flight)  # warm-up
                answered = decide_calls(scrape(metrics, SCRAPE_TIMEOUT))[0] if name != "echo" else 0
                _dump_total(server.pid, folder, out, "-z")
                started = time.monotonic()
                h2load.run(url_of, body, requests=calls, in_flight=in_flight)
                made = calls
            else:
                # k6 runs for a time, not a count: a short run gives the pace, the measured one lasts ~calls.
                target, discard = f"127.0.0.1:{port}", name == "echo"
                pace = k6load.run(target, requests_file, in_flight=in_flight, seconds=10, discard_answers=discard)
                answered = decide_calls(scrape(metrics, SCRAPE_TIMEOUT))[0] if name != "echo" else 0
                seconds = max(10.0, calls / max(1.0, pace.throughput))
                _dump_total(server.pid, folder, out, "-z")
                started = time.monotonic()
                made = k6load.run(target, requests_file, in_flight=in_flight, seconds=seconds,
                                  discard_answers=discard).requests  # fmt: skip
            window = time.monotonic() - started
            counted = _dump_total(server.pid, folder, out, "-d")
            # What the server does by the clock (refreshes, flushes, samplers: once a second each), whatever
            # the calls, is counted while it idles and taken out at that rate: a slowed-down window on a busy
            # box would count more of it per call.
            idle = min(window, 30.0)
            _dump_total(server.pid, folder, out, "-z")
            time.sleep(idle)
            background = _dump_total(server.pid, folder, out, "-d") / idle * window
            if requests_file is not None and name != "echo":
                made = (
                    decide_calls(scrape(metrics, SCRAPE_TIMEOUT))[0] - answered
                )  # the server's own count: every call OK
            result[in_flight] = (counted - background) / made
            print(f"  {name} {in_flight} in flight: {made} calls in {window:.0f} s, by the clock "
                  f"{background / made / 1e6:.3f} M per call taken out", file=sys.stderr, flush=True)  # fmt: skip
            if (
                requests_file is None
                and name != "echo"
                and decide_calls(scrape(metrics, SCRAPE_TIMEOUT))[0] - answered != calls
            ):
                raise SystemExit(f"{name}: not every one of the {calls} calls was answered OK")
        if name != "echo":
            degraded = sum(
                v for k, v in scrape(metrics, SCRAPE_TIMEOUT).items() if k.startswith("decision_degraded_total")
            )
            if degraded:
                raise SystemExit(f"{name}: {degraded:.0f} degraded answers: not a measure of full decisions")
    finally:
        server.terminate()
        server.wait(120)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="the calls the two runs differ by")
    parser.add_argument("--traffic", choices=("realistic", "one", "both"), default="both")
    parser.add_argument("--before", type=Path, help="another checkout (with its .venv) measured in the same run")
    parser.add_argument("--same-venv", action="store_true", help="run --before's code with this checkout's venv")
    parser.add_argument("--only-before", action="store_true", help="measure --before alone")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the driver (repeatable)")
    parser.add_argument("--driver-option", action="append", default=[], help="an option of loadtest.inprocess")
    parser.add_argument("--redis-url", help="a Redis holding the bench's profiles (else one is started and loaded)")
    parser.add_argument("--server", action="store_true", help="the whole server and the echo, driven by h2load")
    parser.add_argument("--keep", type=Path, help="keep callgrind's files here (for callgrind_annotate)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    env = dict(item.split("=", 1) for item in args.env)
    DRIVER_OPTIONS.extend(args.driver_option)
    checkouts = [("this", Path(sys.executable), ROOT)]
    if args.before is not None:
        python = Path(sys.executable) if args.same_venv else args.before / ".venv" / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"{python} is missing: run ./dev once in {args.before}")
        checkouts.insert(0, ("before", python, args.before.resolve()))
        if args.only_before:
            del checkouts[1:]
    kinds = ("realistic", "one") if args.traffic == "both" else (args.traffic,)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = args.redis_url
        if url is None:
            url = stack.enter_context(EmbeddedRedis()).url
            load_profiles(url, PROFILES, AUDIENCES, PER_PROFILE, SEED)
        if args.server:
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(generate(OFFERS, AUDIENCES, SEED, caps=True))
            folder = Path(tmp) if args.keep is None else args.keep
            folder.mkdir(parents=True, exist_ok=True)
            requests_file = Path(tmp) / "requests.json"
            write_requests(requests_file, 20_000, PROFILES, SEED)
            for traffic in kinds:
                given = requests_file if traffic == "realistic" else None
                label = "one body" if traffic == "one" else traffic
                echo = server_per_call("echo", Path(sys.executable), ROOT, url, rules, args.calls, folder, env, given)
                print(f"  echo  {label:<9}  {', '.join(f'{n} in flight {c / 1e6:.3f} M' for n, c in echo.items())}")
                for name, python, checkout in checkouts:
                    mine = server_per_call(name, python, checkout, url, rules, args.calls, folder / name, env, given)
                    print(f"{name:>6}  {label:<9}  " + ", ".join(
                        f"{n} in flight {c / 1e6:.3f} M ({c / echo[n]:.2f} x echo)" for n, c in mine.items()
                    ), flush=True)  # fmt: skip
            return 0
        for traffic in kinds:
            for name, python, checkout in checkouts:
                folder = Path(tmp) if args.keep is None else args.keep / name
                folder.mkdir(parents=True, exist_ok=True)
                count = per_call(python, checkout, url, args.calls, traffic, folder, env)
                print(f"{name:>6}  {traffic:<9}  {count / 1e6:.3f} M instructions per call", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
