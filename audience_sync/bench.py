"""Benchmark: snapshot loads end to end against the best a Python writer does on the same Redis.

    python -m audience_sync.bench --profiles 1000000

Generates N profiles x 10 audiences, starts an embedded redis-server, and
measures, in one run:

* the ceiling: redis-py pipelined SADD of the same number of memberships in
  large batches (no parsing, one set per audience);
* ``load`` of an AEP XDM export (one profile per line, its 10 audiences on it)
  and of 10 CSV files (one per audience), each as one snapshot: parse + write
  + cutover, through the same code as ``audience-sync load``;
* Redis ``used_memory`` per membership after the XDM load;
* a Decide on a real decision server: the Redis commands it costs (INFO commandstats).

Figures are ratios to the ceiling measured in the same run, never absolute goals.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from audience_sync.formats import InputOptions
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.store import SyncStore, connect
from decision.store.embedded import EmbeddedRedis
from decision.store.keys import KeySpace

AUDIENCES = 10
QUALIFIED = "2026-11-01T06:00:00Z"


def audience_ids(count: int = AUDIENCES) -> list[str]:
    return [str(uuid.UUID(int=0xA0D1E2CE << 96 | i)) for i in range(count)]


def write_xdm(path: Path, profiles: int, audiences: Sequence[str], compress: bool) -> None:
    segments = {a: {"status": "realized", "lastQualificationTime": QUALIFIED} for a in audiences}
    opener: Any = gzip.open if compress else open
    with opener(path, "wb") as out:
        chunk = []
        for i in range(profiles):
            line = {
                "identityMap": {"ECID": [{"id": f"{i:038d}", "primary": True}], "CRMID": [{"id": f"c-{i}"}]},
                "segmentMembership": {"ups": segments},
            }
            chunk.append(orjson.dumps(line))
            if len(chunk) == 10_000:
                out.write(b"\n".join(chunk) + b"\n")
                chunk = []
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")


def write_csv(path: Path, profiles: int) -> None:
    with open(path, "wb") as out:
        out.write(b"profile_id\n")
        for start in range(0, profiles, 100_000):
            out.write(b"".join(b"c-%d\n" % i for i in range(start, min(start + 100_000, profiles))))


def ceiling(url: str, profiles: int, audiences: Sequence[str], batch: int = 10_000) -> float:
    """Memberships/s of pipelined SADD (member = profile id, one set per audience): no parsing at all."""
    client = connect(url)
    client.flushall()
    ids = [f"c-{i}" for i in range(profiles)]
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    queued = 0
    for audience in audiences:
        key = f"bench:sadd:{audience}"
        for profile_id in ids:
            pipe.execute_command("SADD", key, profile_id)
            queued += 1
            if queued == batch:
                pipe.execute()
                queued = 0
    pipe.execute()
    seconds = time.perf_counter() - started
    client.flushall()
    client.close()
    return profiles * len(audiences) / seconds


def load(url: str, paths: Sequence[str], options: LoadOptions) -> tuple[float, int]:
    store = SyncStore.from_url(url)
    started = time.perf_counter()
    outcome = SnapshotLoad(store, options, ErrorReport(show=5)).run(paths)
    seconds = time.perf_counter() - started
    store.close()
    return outcome.memberships / seconds, outcome.memberships


def rules_for(audiences: Sequence[str]) -> str:
    offers = "\n".join(
        f"  - {{id: o{i}, placements: [banner], eligibility: {{audiences: {{all: ['{a}']}}}}}}"
        for i, a in enumerate(audiences)
    )
    return (
        "placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]\noffers:\n"
        "  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}\n" + offers
    )


async def decide_cost(url: str, rules: Path, profile_id: str) -> dict[str, int]:
    """Redis commands spent by one Decide on a real server (after one warm-up call)."""
    import grpc

    from decision.api.server import start
    from decision.settings import Settings
    from decision.v1 import decision_pb2, decision_pb2_grpc

    server = await start(Settings(rules_path=str(rules), host="127.0.0.1", port=0), url)
    client = connect(url)
    try:
        request = decision_pb2.DecideRequest(
            profile_id=profile_id, channel="web", placements=[decision_pb2.PlacementRequest(placement_id="banner")]
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            await stub.Decide(request, timeout=5)
            client.config_resetstat()
            response = await stub.Decide(request, timeout=5)
            stats = client.info("commandstats")
        spent = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        spent["info"] = spent.get("info", 1) - 1  # our own INFO
        spent.pop("config", None)  # our CONFIG RESETSTAT
        spent = {k: v for k, v in spent.items() if v}
        offers_seen = [item.offer_id for p in response.propositions for item in p.items]
        spent["offers proposed"] = len(offers_seen)
        return spent
    finally:
        client.close()
        await server.stop(grace=0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audience_sync.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000, help="memberships per pipeline in load")
    parser.add_argument("--gzip", action="store_true", help="gzip the XDM export (parse cost includes inflating)")
    parser.add_argument("--skip-csv", action="store_true", help="only the XDM export")
    parser.add_argument("--dir", help="where to write the generated inputs (default: a temporary directory)")
    args = parser.parse_args(argv)
    profiles, audiences = args.profiles, audience_ids()
    memberships = profiles * len(audiences)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        xdm = Path(tmp) / ("export.json.gz" if args.gzip else "export.json")
        started = time.perf_counter()
        write_xdm(xdm, profiles, audiences, args.gzip)
        csvs = []
        if not args.skip_csv:
            for audience in audiences:
                path = Path(tmp) / f"{audience}.csv"
                write_csv(path, profiles)
                csvs.append(path)
        size = xdm.stat().st_size
        print(f"inputs: {profiles:,} profiles x {len(audiences)} audiences = {memberships:,} memberships "
              f"(XDM export {size / 1e6:,.0f} MB), generated in {time.perf_counter() - started:.0f}s")  # fmt: skip
        with EmbeddedRedis() as redis_server:
            url = redis_server.url
            client = connect(url)
            # The machines are shared: the ceiling is measured before and after the loads, ratios use the mean.
            before = ceiling(url, profiles, audiences)
            baseline = int(client.info("memory")["used_memory"])
            xdm_options = LoadOptions(
                input=InputOptions(identity_namespaces=("CRMID",)), batch_size=args.batch_size, source="bench"
            )
            rate, loaded = load(url, [str(xdm)], xdm_options)
            assert loaded == memberships, (loaded, memberships)
            used = int(client.info("memory")["used_memory"]) - baseline
            encoding = client.object("encoding", KeySpace().membership("c-0"))
            # A second snapshot of the same export: every member is written again beside the serving one.
            reload_rate, _ = load(url, [str(xdm)], xdm_options)
            csv_rate = 0.0
            if csvs:
                client.flushall()
                started = time.perf_counter()
                for path, audience in zip(csvs, audiences, strict=True):
                    one = LoadOptions(input=InputOptions(audience=audience), audiences=frozenset([audience]),
                                      batch_size=args.batch_size, source="bench")  # fmt: skip
                    load(url, [str(path)], one)
                csv_rate = memberships / (time.perf_counter() - started)
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(rules_for(audiences), encoding="utf-8")
            spent = asyncio.run(decide_cost(url, rules, "c-0"))
            after = ceiling(url, profiles, audiences)
            client.close()
    raw = (before + after) / 2
    print(f"ceiling  pipelined SADD, no parsing              {raw:>10,.0f} memberships/s "
          f"(before {before:,.0f}, after {after:,.0f})")  # fmt: skip
    print(f"load     XDM export: 1 snapshot of 10 audiences  {rate:>10,.0f} memberships/s  {rate / raw:.2f}x")
    print(f"reload   the same export again (all unchanged)   {reload_rate:>10,.0f} memberships/s  "
          f"{reload_rate / raw:.2f}x")  # fmt: skip
    if csv_rate:
        print(f"load     10 CSV files, 1 snapshot per audience   {csv_rate:>10,.0f} memberships/s  "
              f"{csv_rate / raw:.2f}x")  # fmt: skip
    print(f"memory   used_memory per membership after the XDM load: {used / memberships:.1f} bytes "
          f"({used / 1e6:,.0f} MB; a profile's hash is a {encoding.decode() if encoding else '?'})")  # fmt: skip
    print(f"decide   Redis commands for one Decide: {spent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
