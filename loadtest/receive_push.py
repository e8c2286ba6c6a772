"""Benchmark of ``audience-sync receive``: throughput against ``apply``, and push-to-decision latency.

    python -m loadtest.receive_push --profiles 20000 --latency-changes 1000

Starts an embedded redis-server and measures, in one run:

* ``apply``: the changes (AEP profiles, one per line, each in ``--audiences`` audiences) applied by
  ``audience-sync apply`` in-process: profiles/s, the baseline;
* ``receive``: the same profiles POSTed to ``audience-sync receive`` (its own process, as deployed),
  ``--per-request`` profiles per request, ``--concurrency`` requests in flight: profiles/s, as a
  ratio to ``apply``;
* latency: one profile per POST, then ``Decide`` on a real decision server until its answer shows
  the change (an offer of that audience): p50/p99 of the time from sending the POST to that answer.

Figures are ratios to a baseline measured in the same run, and percentiles; the machine's other load
shows in both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson

from audience_sync.cli.main import main as audience_sync
from audience_sync.store import connect
from decision.api.server import start as start_server
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.keys import KeySpace
from loadtest.snapshot_load import audience_ids

QUALIFIED = "2026-11-01T06:00:00Z"
LIVE = "live-audience"


def profile(crmid: str, audiences: Sequence[str], when: str = QUALIFIED) -> dict[str, Any]:
    segments = {a: {"status": "realized", "lastQualificationTime": when} for a in audiences}
    return {
        "identityMap": {"ECID": [{"id": f"ecid-{crmid}", "primary": True}], "CRMID": [{"id": crmid}]},
        "segmentMembership": {"ups": segments},
        "person": {"name": {"firstName": "Ada"}},
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def receiver(redis_url: str) -> Iterator[str]:
    """``audience-sync receive`` in its own process; its base URL."""
    command = [sys.executable, "-m", "audience_sync.cli", "receive", "--host", "127.0.0.1", "--port", "0",
               "--no-auth", "--identity-namespace", "CRMID", "--redis-url", redis_url]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"the receiver did not start: {line!r}")
        yield line.split("listening on ")[1].strip()
    finally:
        process.terminate()
        process.wait(30)


def apply_rate(url: str, path: Path, profiles: int) -> float:
    """Profiles/s of ``audience-sync apply`` on the export (in-process, output discarded)."""
    args = ["apply", str(path), "--identity-namespace", "CRMID", "--redis-url", url]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = audience_sync(args)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"apply failed with status {status}")
    return profiles / seconds


async def receive_rate(base: str, bodies: Sequence[bytes], profiles: int, concurrency: int) -> float:
    queue = list(reversed(bodies))

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            headers = {"Content-Type": "application/json"}
            async with http.post(base + "/v1/profiles", data=body, headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"POST answered {response.status}: {await response.text()}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        return profiles / (time.perf_counter() - started)


async def latency(base: str, redis_url: str, rules: Path, changes: int) -> tuple[list[float], list[float], int]:
    """(push-to-decision times, POST times, Decides that did not see the change yet), in seconds."""
    server = await start_server(Settings(rules_path=str(rules), host="127.0.0.1", port=0), redis_url)
    seen_after: list[float] = []
    posts: list[float] = []
    misses = 0
    try:
        async with (
            aiohttp.ClientSession() as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        ):
            stub = decision_pb2_grpc.DecisionServiceStub(channel)

            async def sees(profile_id: str) -> bool:
                request = decision_pb2.DecideRequest(
                    profile_id=profile_id, channel="web", placements=[decision_pb2.PlacementRequest(placement_id="b")]
                )
                answer = await stub.Decide(request, timeout=5)
                return any(item.offer_id == "live" for p in answer.propositions for item in p.items)

            async def push(crmid: str) -> None:
                body = orjson.dumps([profile(crmid, [LIVE])])
                async with http.post(base + "/v1/profiles", data=body) as response:
                    if response.status != 200:
                        raise RuntimeError(f"POST answered {response.status}")

            await push("warm-up")  # registers the audience; the server learns its code (pub/sub)
            deadline = time.monotonic() + 10
            while not await sees("warm-up"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the decision server never saw the warm-up change")
                await asyncio.sleep(0.01)
            for i in range(changes):
                started = time.perf_counter()
                await push(f"lat-{i}")
                posts.append(time.perf_counter() - started)
                while not await sees(f"lat-{i}"):
                    misses += 1
                seen_after.append(time.perf_counter() - started)
    finally:
        await server.stop(grace=0.5)
    return seen_after, posts, misses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.receive_push", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--audiences", type=int, default=3, help="memberships per profile")
    parser.add_argument("--per-request", type=int, default=100, help="profiles per POST")
    parser.add_argument("--concurrency", type=int, default=8, help="POSTs in flight")
    parser.add_argument("--latency-changes", type=int, default=1000)
    args = parser.parse_args(argv)
    audiences = audience_ids(args.audiences)
    profiles = [profile(f"c-{i}", audiences) for i in range(args.profiles)]
    bodies = [orjson.dumps(profiles[i : i + args.per_request]) for i in range(0, len(profiles), args.per_request)]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis_server:
        url = redis_server.url
        export = Path(tmp) / "changes.json"
        export.write_bytes(b"\n".join(orjson.dumps(p) for p in profiles) + b"\n")
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(
            "placements: [{id: b, channels: [web], max_items: 1, fallback: fb}]\noffers:\n"
            "  - {id: fb, placements: [b], priority: -1, eligibility: {audiences: {all: [nobody]}}}\n"
            f"  - {{id: live, placements: [b], eligibility: {{audiences: {{all: ['{LIVE}']}}}}}}\n",
            encoding="utf-8",
        )

        client = connect(url)
        with receiver(url) as base:
            # apply, receive, apply again: the machine is shared; the baseline is the mean of both applies.
            apply_before = apply_rate(url, export, args.profiles)
            client.flushall()
            received = asyncio.run(receive_rate(base, bodies, args.profiles, args.concurrency))
            written = len(client.hkeys(KeySpace().membership("c-0")))
            client.flushall()
            apply_after = apply_rate(url, export, args.profiles)
            client.flushall()
            seen_after, posts, misses = asyncio.run(latency(base, url, rules, args.latency_changes))
        client.close()
    applied = (apply_before + apply_after) / 2
    memberships = args.profiles * args.audiences
    print(f"changes  {args.profiles:,} AEP profiles x {args.audiences} audiences = {memberships:,} memberships "
          f"(CRMID: the written profile has {written} memberships)")  # fmt: skip
    print(f"apply    audience-sync apply, one file                {applied:>9,.0f} profiles/s "
          f"(before {apply_before:,.0f}, after {apply_after:,.0f})")  # fmt: skip
    print(f"receive  POST {args.per_request} profiles/request, {args.concurrency} in flight  {received:>9,.0f} "
          f"profiles/s  {received / applied:.2f}x apply")  # fmt: skip
    ms = [s * 1000 for s in seen_after]
    post_ms = [s * 1000 for s in posts]
    print(f"latency  POST -> a Decide that sees it, {len(ms):,} changes: p50 {statistics.median(ms):.1f} ms, "
          f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms; POST alone p50 "
          f"{statistics.median(post_ms):.1f} ms, p99 {percentile(post_ms, 0.99):.1f} ms; "
          f"Decides before the change showed: {misses}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
