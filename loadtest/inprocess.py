"""Decide in-process, without gRPC: request bytes -> decision -> response bytes, against a real Redis.

What the server does between receiving a DecideRequest's bytes and handing back the DecideResponse's
bytes, over N requests one after the other (the bench's ruleset: 200 offers with caps, 10,000 profiles of
20 audiences; realistic requests from loadtest.traffic, or the bench's one body). It prints the CPU time
per call; run under ``valgrind --tool=callgrind`` (``loadtest.instructions`` does) its instruction count
per call is repeatable whatever else the machine runs: the A/B measure of a lever on a busy box.

    python -m loadtest.inprocess --calls 5000                    # starts a Redis and loads the profiles
    python -m loadtest.inprocess --redis-url redis://127.0.0.1:6379 --no-load --calls 2000

The service is built as ``decision serve --metrics-port`` builds it (the bench's servers run with metrics:
Decide's propositions are counted from each response), with background work that depends on the wall clock
(total-cap refreshes, proposal flushes) left out so that a slowed-down run does the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from decision.api import convert
from decision.api.servicer import DecisionServicer
from decision.observe.metrics import Metrics
from decision.service.active import ActiveRuleset, load_compiled
from decision.service.decider import DecisionService
from decision.settings import Settings
from decision.store.connect import connect
from decision.store.embedded import EmbeddedRedis
from decision.store.profiles import ProfileStore
from decision.v1 import decision_pb2
from loadtest.bench import load_profiles, sample_request
from loadtest.rulegen import generate
from loadtest.traffic import request as traffic_request

OFFERS, AUDIENCES, PER_PROFILE, PROFILES, SEED = 200, 100, 20, 10_000, 1
# Far beyond a run: the totals are read once, as a server does about once a second.
NEVER = 1e9


def key_space(prefix: str) -> Any:
    """The key layout of the checkout driven: inbound_common's, or decision.store's in a checkout from before
    it existed (loadtest.instructions --before runs this driver against another checkout's code)."""
    try:
        module = importlib.import_module("inbound_common.keys")
    except ImportError:
        module = importlib.import_module("decision.store.keys")
    return module.KeySpace(prefix)


def bodies(traffic: str, count: int) -> list[bytes]:
    """``count`` serialized DecideRequests: the bench's one body, or realistic ones (loadtest.traffic)."""
    if traffic == "one":
        return [sample_request("p7").SerializeToString()] * count
    rng = random.Random(SEED)
    requests = []
    for index in range(count):
        message = json_format.ParseDict(traffic_request(rng, PROFILES, index), decision_pb2.DecideRequest())
        requests.append(message.SerializeToString())
    return requests


async def build(redis_url: str, rules: Path, metrics: bool) -> tuple[Callable[[bytes], Awaitable[bytes]], list[int]]:
    """The service as a server builds it; returns request bytes -> response bytes, and the count of degraded
    answers (a measure of full decisions must see none)."""
    # A Redis budget no slowed-down run (valgrind) exhausts: every answer is a full one (counted).
    settings = Settings(
        rules_path=str(rules), totals_refresh_interval=NEVER, learning_refresh_interval=NEVER, redis_timeout=NEVER
    )
    active = ActiveRuleset(load_compiled(rules))
    store = ProfileStore(connect(redis_url, timeout=1.0), key_space(settings.key_prefix))
    await store.refresh_directory()
    service = DecisionService(store, active, settings)
    sink: Any = None
    if metrics:
        sink = Metrics()
    degraded = [0]

    def seen(decision: Any) -> None:
        degraded[0] += decision.degraded
        if sink is not None:
            sink.decision(decision)

    def seen_message(response: Any) -> Any:
        degraded[0] += response.degraded
        if sink is not None:
            sink.decide_response(response)  # as the metrics interceptor of that checkout counted
        return response

    answer: Callable[[decision_pb2.DecideRequest, float | None], Awaitable[object]]
    if hasattr(DecisionServicer, "answer") and (sink is None or hasattr(sink, "decision")):
        answer = DecisionServicer(service, settings.limits, seen).answer
    elif hasattr(DecisionServicer, "answer"):  # a checkout whose answer is a message, counted by metrics from it
        plain = DecisionServicer(service, settings.limits).answer

        async def answer(message: decision_pb2.DecideRequest, time_remaining: float | None) -> object:
            return seen_message(await plain(message, time_remaining))

    else:  # a checkout from before the servicer had ``answer`` (loadtest.instructions --before): its Decide's body

        async def answer(message: decision_pb2.DecideRequest, time_remaining: float | None) -> object:
            request = convert.decide_request(message, settings.limits)
            return seen_message(convert.decide_response(await service.decide(request, time_remaining)))

    async def call(body: bytes) -> bytes:
        response = await answer(decision_pb2.DecideRequest.FromString(body), None)
        return response if isinstance(response, bytes) else response.SerializeToString()  # type: ignore[attr-defined]

    return call, degraded


async def drive(
    redis_url: str, rules: Path, requests: list[bytes], warmup: int, metrics: bool, gc_threshold: int | None = None
) -> float:
    """CPU µs per call over ``requests`` (after ``warmup`` of them, also answered)."""
    call, degraded = await build(redis_url, rules, metrics)
    gc.freeze()  # as a server does once built (decision.api.server): a full collection then walks only what came after
    if gc_threshold is not None:
        gc.set_threshold(gc_threshold, *gc.get_threshold()[1:])
    for body in requests[:warmup]:
        await call(body)
    started = time.process_time()
    for body in requests[warmup:]:
        await call(body)
    cpu = (time.process_time() - started) / max(1, len(requests) - warmup) * 1e6
    if degraded[0]:
        raise SystemExit(f"{degraded[0]} degraded answers: not a measure of full decisions")
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="a Redis to use (else one is started, and the profiles loaded)")
    parser.add_argument("--no-load", action="store_true", help="the Redis already holds the bench's profiles")
    parser.add_argument("--load-only", action="store_true", help="load the profiles into --redis-url and stop")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--traffic", choices=("realistic", "one"), default="realistic")
    parser.add_argument("--no-metrics", action="store_true", help="without the metrics a bench server counts")
    parser.add_argument("--no-caps", action="store_true", help="the bench's ruleset without its caps")
    parser.add_argument("--gc-threshold", type=int, help="the cyclic GC's first threshold (gc.set_threshold)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()  # as the server runs
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(generate(OFFERS, AUDIENCES, SEED, caps=not args.no_caps))
        with EmbeddedRedis() if args.redis_url is None else _given(args.redis_url) as server:
            url = args.redis_url or server.url
            if not args.no_load:
                load_profiles(url, PROFILES, AUDIENCES, PER_PROFILE, SEED)
            if args.load_only:
                return 0
            requests = bodies(args.traffic, args.warmup + args.calls)
            cpu = asyncio.run(drive(url, rules, requests, args.warmup, not args.no_metrics, args.gc_threshold))
    print(f"{args.calls} calls ({args.traffic}): {cpu:.1f} µs of CPU per call")
    return 0


class _given:
    """Stands where an EmbeddedRedis would, for a Redis given by URL (nothing to start or stop)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> _given:
        return self

    def __exit__(self, *_: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
