"""µs per HGETALL on the decision path: the fast path vs redis-py, on plain TCP, TLS and a Redis Cluster.

Everything is measured in the same run on the same servers (a redis-server, a TLS one if a binary built
with TLS is found, a 3-master cluster on loopback), so the ratios hold even on a noisy machine. Two
figures per path: one command at a time (the latency a decision sees) and 32 in flight (the cost per
command under load: wall time / commands).

    ./dev python -m loadtest.redis_paths [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from decision.store.connect import Target, connect
from decision.store.embedded import EmbeddedRedis
from decision.store.fastpath import FastPath
from tests.certs import make_certificates
from tests.redis_cluster import LocalCluster
from tests.tls_redis import tls_capable_redis_server, tls_redis_server

KEYS = [f"ib:m:{{bench-{i}}}" for i in range(64)]


async def per_call_us(call: Callable[[str], Awaitable[Any]], calls: int, in_flight: int) -> float:
    """Wall time per call (µs), ``in_flight`` callers sharing ``calls``."""
    for key in KEYS:  # warm: connections, slot tables
        await call(key)

    async def caller(offset: int) -> None:
        for n in range(offset, calls, in_flight):
            await call(KEYS[n % len(KEYS)])

    started = time.perf_counter()
    await asyncio.gather(*(caller(offset) for offset in range(in_flight)))
    return (time.perf_counter() - started) / calls * 1e6


async def compare(url: str, calls: int, rounds: int) -> dict[str, float]:
    """Median µs per HGETALL for each (path, in flight)."""
    py = connect(url, timeout=5.0)
    fast = FastPath(Target.of_client(py))

    async def by_fast(key: str) -> Any:
        return await fast.execute("HGETALL", key)

    async def by_redis_py(key: str) -> Any:
        return await py.hgetall(key)

    samples: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):  # interleaved: drifts of the machine hit both alike
            for name, call in (("fast", by_fast), ("redis-py", by_redis_py)):
                for in_flight in (1, 32):
                    samples.setdefault(f"{name} x{in_flight}", []).append(await per_call_us(call, calls, in_flight))
    finally:
        fast.close()
        await py.aclose()
    return {name: statistics.median(values) for name, values in samples.items()}


def fill(client: redis.Redis | redis.RedisCluster) -> None:
    for key in KEYS:
        client.hset(key, mapping={f"{code}:1": "" for code in range(20)})  # 20 memberships per profile


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[dict[str, str]]:
    """name -> URL of each server to measure (TLS left out without a TLS-capable redis-server)."""
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(EmbeddedRedis())
        fill(redis.Redis.from_url(plain.url))
        urls = {"plain": plain.url}
        if tls_capable_redis_server() is not None:
            certs = make_certificates(folder)
            tls_plain, tls_port = stack.enter_context(tls_redis_server(certs))
            fill(redis.Redis.from_url(tls_plain.url))
            files = f"ssl_ca_certs={certs.ca.cert}&ssl_certfile={certs.client.cert}&ssl_keyfile={certs.client.key}"
            urls["TLS"] = f"rediss://127.0.0.1:{tls_port}/0?{files}"
        cluster = stack.enter_context(LocalCluster())
        with redis.RedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://", 1)) as client:
            fill(client)
        urls["Cluster"] = cluster.url
        yield urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000, help="HGETALLs per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure (the median is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, servers(Path(folder)) as urls:
        results = {name: asyncio.run(compare(url, args.calls, args.rounds)) for name, url in urls.items()}
    rows = ["fast x1", "redis-py x1", "fast x32", "redis-py x32"]
    print(f"µs per HGETALL (median of {args.rounds} x {args.calls} calls; xN: N in flight)")
    print(f"{'':14}" + "".join(f"{name:>10}" for name in results))
    for row in rows:
        print(f"{row:14}" + "".join(f"{r[row]:10.1f}" for r in results.values()))
    for n in (1, 32):
        ratios = "".join(f"{r[f'redis-py x{n}'] / r[f'fast x{n}']:9.1f}x" for r in results.values())
        print(f"{f'ratio x{n}':14}{ratios}")


if __name__ == "__main__":
    main()
