"""Benchmark: snapshot loads end to end against the best a plain writer does on the same Redis.

    python -m loadtest.snapshot_load --profiles 1000000

Generates N profiles x 10 audiences, starts an embedded redis-server, and
measures, in one run:

* the ceiling: pipelined ``HSET`` of the very profile hashes a load writes —
  same keys, same ``<code>:<generation>`` fields and values, same memberships
  per pipeline — packed by hiredis and written on one connection, replies read
  by a hiredis reader: no parsing, no reads, no bookkeeping. Measured in the
  shape of each load: 10 fields per ``HSET`` into empty hashes (the XDM
  export), the same into hashes already holding them (the export again), one
  field per ``HSET`` an audience at a time (the CSV files);
* ``load`` of an AEP XDM export (one profile per line, its 10 audiences on it),
  of the same export again, and of 10 CSV files (one per audience), each as
  one snapshot: parse + write + cutover, through the same code as ``audience-sync load``;
* ``load --jobs N`` of the same export (N processes parsing and writing, one cutover), for each N of
  ``--jobs``, with the scaling efficiency (memberships/s with N jobs over N times one job's);
* CPU time per membership of each load (the loading processes, from their rusage) and of Redis
  (``INFO cpu``), beside the ceiling's: on a shared machine the wall-clock ratios move with the
  neighbours, CPU time much less;
* the peak resident memory of a ``--jobs`` worker (it holds one block at a time, whatever the input's size);
* Redis ``used_memory`` per membership after the XDM load;
* a Decide on a real decision server: the Redis commands it costs (INFO commandstats).

Figures are ratios to the ceiling measured in the same run, never absolute goals.

``--redis cluster`` measures instead a local Redis Cluster (3 masters, tests/redis_cluster.py, from a
checkout): the ceiling per master (pipelined ``HSET`` to each master's own keys) and ``load`` through the
cluster client, and ``used_memory`` per membership summed over the masters (docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import resource
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import hiredis
import orjson
from hiredis import pack_command
from redis.crc import key_slot

from audience_sync.formats import InputOptions
from audience_sync.parallel import ParallelLoad
from audience_sync.partitions import PartitionedLoad, partitions_of
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.store import SyncStore, connect
from decision.api.server import start as start_server
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.codecs import membership_field
from inbound_common.keys import KeySpace
from tests.redis_cluster import LocalCluster

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


def hset_rate(url: str, keys: Sequence[bytes], rows: Sequence[Sequence[bytes]], batch: int) -> float:
    """Memberships/s of ``HSET key *row`` for every key and row, ``batch`` memberships per pipeline.

    The plain writer a load is measured against: hiredis packs, one socket, a hiredis reader counts the
    replies; a pipeline is sent whole, then its replies read (as the load's pipelines are).
    """
    where = urlsplit(url.replace("redis+cluster://", "redis://", 1))
    sock = socket.create_connection((where.hostname or "127.0.0.1", where.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()
    memberships = 0
    started = time.perf_counter()
    for row in rows:
        per = max(1, batch // (len(row) // 2))
        for start in range(0, len(keys), per):
            chunk = keys[start : start + per]
            sock.sendall(b"".join([pack_command((b"HSET", key, *row)) for key in chunk]))  # type: ignore[arg-type]
            expected = len(chunk)
            while expected:
                reply = reader.gets()
                if reply is False:
                    reader.feed(sock.recv(1 << 20))
                elif isinstance(reply, hiredis.ReplyError):
                    raise RuntimeError(f"HSET failed: {reply}")
                else:
                    expected -= 1
            memberships += len(chunk) * (len(row) // 2)
    seconds = time.perf_counter() - started
    sock.close()
    return memberships / seconds


class PlainWriter:
    """The ceiling: the profile hashes the loads write (``<code>:<gen>`` fields, value "": no expiry)."""

    def __init__(self, url: str, profiles: int, audiences: int, batch: int) -> None:
        self.url, self.batch, self.codes = url, batch, range(1, audiences + 1)
        membership = KeySpace().membership
        self.keys = [membership(f"c-{i}").encode() for i in range(profiles)]

    def fields(self, generation: int) -> list[bytes]:
        return [part for code in self.codes for part in (membership_field(code, generation).encode(), b"")]

    def export(self) -> tuple[float, float]:
        """Each profile's 10 fields in one HSET: into empty hashes, then again into the filled hashes."""
        return hset_rate(self.url, self.keys, [self.fields(1)], self.batch), hset_rate(
            self.url, self.keys, [self.fields(2)], self.batch
        )

    def per_audience(self) -> float:
        """One field per HSET, an audience after the other (as 10 CSV files are loaded)."""
        rows = [[membership_field(code, 1).encode(), b""] for code in self.codes]
        return hset_rate(self.url, self.keys, rows, self.batch)


@dataclass(slots=True)
class Rate:
    """One measured run: memberships/s, and CPU microseconds per membership of the writer(s) and of Redis."""

    rate: float = 0.0
    cpu: float = 0.0
    redis_cpu: float = 0.0
    worker_rss_kib: int = 0
    block_cpu: float = 0.0  # --jobs: µs per membership the workers spent on their blocks (no start-up, no driver)


@dataclass(slots=True)
class Round:
    """One round: each load right after its ceiling, so that both see the same neighbours on the machine."""

    export_ceiling: Rate = field(default_factory=Rate)
    export: Rate = field(default_factory=Rate)
    again_ceiling: Rate = field(default_factory=Rate)
    again: Rate = field(default_factory=Rate)
    csv_ceiling: Rate = field(default_factory=Rate)
    csv: Rate = field(default_factory=Rate)
    jobs: dict[int, Rate] = field(default_factory=dict)
    jobs_ceiling: Rate = field(default_factory=Rate)
    dask: Rate = field(default_factory=Rate)
    dask_ceiling: Rate = field(default_factory=Rate)


def redis_cpu(client: Any) -> float:
    """Seconds of CPU the Redis server(s) used so far (on a Cluster: every master's)."""
    info = client.info("cpu")
    if isinstance(info, dict) and "used_cpu_user" not in info:  # a cluster client: per node
        return sum(float(v["used_cpu_user"]) + float(v["used_cpu_sys"]) for v in info.values())
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def own_cpu() -> float:
    """CPU seconds of this process and of its children that ended (the --jobs workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def measured(client: Any, memberships: int, run: Any) -> Rate:
    """Run ``run()`` (it returns memberships written, the workers' peak RSS and their CPU seconds on blocks)
    and measure it."""
    cpu, server, started = own_cpu(), redis_cpu(client), time.perf_counter()
    written, rss, *blocks = run()
    seconds = time.perf_counter() - started
    per = max(written or memberships, 1)
    block_cpu = blocks[0] / per * 1e6 if blocks else 0.0
    return Rate(per / seconds, (own_cpu() - cpu) / per * 1e6, (redis_cpu(client) - server) / per * 1e6, rss,
                block_cpu)  # fmt: skip


def load(url: str, paths: Sequence[str], options: LoadOptions, jobs: int = 1) -> tuple[int, int, float]:
    """Memberships a load wrote, the peak resident memory of its workers (KiB; 0 in one process) and the CPU
    seconds they spent on blocks."""
    store = SyncStore.from_url(url)
    if jobs > 1:
        parallel = ParallelLoad(store, options, ErrorReport(show=5), url=url, jobs=jobs)
        outcome = parallel.run(paths)
        rss, cpu = max(parallel.usage.max_rss_kib.values(), default=0), parallel.usage.cpu_seconds
    else:
        outcome, rss, cpu = SnapshotLoad(store, options, ErrorReport(show=5)).run(paths), 0, 0.0
    store.close()
    return outcome.memberships, rss, cpu


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
    server = await start_server(Settings(rules_path=str(rules), host="127.0.0.1", port=0), url)
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


def split_lines(path: Path, parts: int) -> list[Path]:
    """The export cut in ``parts`` files of whole lines (as AEP writes an export: part files)."""
    lines = path.read_bytes().splitlines(keepends=True)
    size = -(-len(lines) // parts)
    out = []
    for k in range(parts):
        part = path.with_name(f"part-{k:05d}.json")
        part.write_bytes(b"".join(lines[k * size : (k + 1) * size]))
        out.append(part)
    return out


@contextlib.contextmanager
def dask_client(workers: int) -> Iterator[Any]:
    """A Dask client on a LocalCluster of ``workers`` processes (None: no Dask run)."""
    if not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)  # type: ignore[no-untyped-call]
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client


def partitioned(url: str, parts: Sequence[Path], options: LoadOptions, dask: Any) -> tuple[int, int, float]:
    """Memberships written by the partitions of a Dask cluster, one cutover (as ``load``'s result)."""
    store = SyncStore.from_url(url)
    driven = PartitionedLoad(store, options, ErrorReport(show=5), url=url, submit=dask.submit)
    outcome = driven.run_partitions(partitions_of([str(p) for p in parts]))
    store.close()
    return outcome.memberships, max(driven.usage.max_rss_kib.values(), default=0), driven.usage.cpu_seconds


def _jobs(text: str) -> list[int]:
    return sorted({int(n) for n in text.split(",") if n.strip()})


def cluster_ceiling(cluster: Any, profiles: int, audiences: int, batch: int) -> tuple[float, int]:
    """Memberships/s of pipelined HSETs of each master's own profile keys, one master at a time (the
    throughput of one master), and how many masters."""
    membership = KeySpace().membership
    keys = [membership(f"c-{i}").encode() for i in range(profiles)]
    row = [part for code in range(1, audiences + 1) for part in (membership_field(code, 1).encode(), b"")]
    client = cluster.client(cluster.primaries()[0].port)
    slots = client.execute_command("CLUSTER SLOTS")
    owners = [(int(lo), int(hi), int(nodes[0][1])) for lo, hi, *nodes in slots]
    by_port: dict[int, list[bytes]] = {}
    for key in keys:
        slot = key_slot(key)
        port = next(p for lo, hi, p in owners if lo <= slot <= hi)
        by_port.setdefault(port, []).append(key)
    rates = [hset_rate(f"redis://127.0.0.1:{port}", owned, [row], batch) for port, owned in sorted(by_port.items())]
    return statistics.median(rates), len(rates)


def main_cluster(args: argparse.Namespace) -> int:
    """--redis cluster: the ceiling per master, load through the cluster client, memory per membership."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ of a checkout

    audiences = audience_ids()
    memberships = args.profiles * len(audiences)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, LocalCluster() as cluster:
        xdm = Path(tmp) / "export.json"
        write_xdm(xdm, args.profiles, audiences, False)
        options = LoadOptions(input=InputOptions(identity_namespaces=("CRMID",)), batch_size=args.batch_size,
                              source="bench")  # fmt: skip
        results = []
        for _ in range(args.rounds):

            def masters(section: str, name: str) -> float:
                info: Any = [cluster.info(n.port, section) for n in cluster.primaries()]
                return sum(float(i[name]) for i in info)

            def masters_cpu() -> float:
                return masters("cpu", "used_cpu_user") + masters("cpu", "used_cpu_sys")

            cluster.flushall()
            cpu = masters_cpu()
            per_master, count = cluster_ceiling(cluster, args.profiles, len(audiences), args.batch_size)
            ceiling_cpu = (masters_cpu() - cpu) / memberships * 1e6
            cluster.flushall()
            before, cpu = masters("memory", "used_memory"), masters_cpu()
            started = time.perf_counter()
            written, *_ = load(cluster.url, [str(xdm)], options)
            rate = written / (time.perf_counter() - started)
            load_cpu = (masters_cpu() - cpu) / memberships * 1e6
            used = (masters("memory", "used_memory") - before) / memberships
            load(cluster.url, [str(xdm)], options)  # again: both generations until gc drops the replaced one
            both = (masters("memory", "used_memory") - before) / memberships
            results.append((per_master, rate, used, count, ceiling_cpu, load_cpu, both))

    def median(i: int) -> float:
        return float(statistics.median(r[i] for r in results))

    print(f"cluster of {results[0][3]} masters (and a replica each), {args.profiles:,} profiles x {len(audiences)} "
          f"audiences, {args.rounds} round(s), medians")  # fmt: skip
    print(f"ceiling per master: pipelined HSET of its own profiles' 10 fields: {median(0):,.0f} memberships/s, "
          f"{median(4):.2f} µs of the masters' CPU per membership")  # fmt: skip
    print(f"load through the cluster client (one process): {median(1):,.0f} memberships/s, {median(5):.2f} µs of "
          f"the masters' CPU per membership (so one master with a core of its own writes about "
          f"{1e6 / max(median(5), 1e-9):,.0f} memberships/s of loads)")  # fmt: skip
    print(f"used_memory per membership, summed over the masters: {median(2):.1f} bytes; with the replaced "
          f"generation too (after the same export again, before gc): {median(6):.1f} bytes")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.snapshot_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000, help="memberships per pipeline in load")
    parser.add_argument("--gzip", action="store_true", help="gzip the XDM export (parse cost includes inflating)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of ceiling + loads (medians are shown)")
    parser.add_argument("--skip-csv", action="store_true", help="only the XDM export")
    parser.add_argument("--jobs", type=_jobs, default=[], help="also load the export with --jobs N, e.g. 2 or 2,4")
    parser.add_argument("--dask", type=int, default=0, metavar="N",
                        help="also load the export, cut in 2N part files, on a Dask LocalCluster of N worker processes "
                        "(the dask extra; the cluster is started before the rounds)")  # fmt: skip
    parser.add_argument("--line-by-line", action="store_true", help="without the columnar reader (the reference)")
    parser.add_argument(
        "--redis",
        choices=["single", "cluster"],
        default="single",
        help="an embedded redis-server, or a local Redis Cluster of 3 masters (from a checkout)",
    )
    parser.add_argument("--dir", help="where to write the generated inputs (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.redis == "cluster":
        return main_cluster(args)
    profiles, audiences = args.profiles, audience_ids()
    memberships = profiles * len(audiences)
    fast = not args.line_by_line
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
        parts = split_lines(xdm, 2 * args.dask) if args.dask else []
        with EmbeddedRedis() as redis_server, dask_client(args.dask) as dask:
            url = redis_server.url
            client = connect(url)
            writer = PlainWriter(url, profiles, len(audiences), args.batch_size)
            xdm_options = LoadOptions(
                input=InputOptions(identity_namespaces=("CRMID",)), batch_size=args.batch_size, source="bench",
                fast=fast,
            )  # fmt: skip
            rounds = []
            used, both, encoding = 0, 0, b""

            def ceiling(run: Any) -> Rate:
                def counted() -> tuple[int, int]:
                    run()
                    return memberships, 0

                return measured(client, memberships, counted)

            for _ in range(args.rounds):
                now = Round()
                client.flushall()
                now.export_ceiling = ceiling(lambda: hset_rate(url, writer.keys, [writer.fields(1)], args.batch_size))
                now.again_ceiling = ceiling(lambda: hset_rate(url, writer.keys, [writer.fields(2)], args.batch_size))
                client.flushall()
                baseline = int(client.info("memory")["used_memory"])
                now.export = measured(client, memberships, lambda: load(url, [str(xdm)], xdm_options))
                used = int(client.info("memory")["used_memory"]) - baseline
                encoding = client.object("encoding", KeySpace().membership("c-0")) or b"?"
                # A second snapshot of the same export: every member is written again beside the serving one.
                now.again = measured(client, memberships, lambda: load(url, [str(xdm)], xdm_options))
                both = int(client.info("memory")["used_memory"]) - baseline  # until gc drops the replaced one
                for jobs in args.jobs:
                    client.flushall()
                    now.jobs_ceiling = ceiling(lambda: hset_rate(url, writer.keys, [writer.fields(1)], args.batch_size))
                    client.flushall()
                    now.jobs[jobs] = measured(client, memberships,
                                              lambda jobs=jobs: load(url, [str(xdm)], xdm_options, jobs))  # fmt: skip
                if dask is not None:
                    client.flushall()
                    now.dask_ceiling = ceiling(lambda: hset_rate(url, writer.keys, [writer.fields(1)], args.batch_size))
                    client.flushall()
                    now.dask = measured(client, memberships, lambda: partitioned(url, parts, xdm_options, dask))
                    now.dask.cpu += now.dask.block_cpu  # the driver's, and the workers' (not children of this process)
                if csvs:
                    client.flushall()
                    now.csv_ceiling = ceiling(writer.per_audience)
                    client.flushall()

                    def csv_loads() -> tuple[int, int]:
                        for path, audience in zip(csvs, audiences, strict=True):
                            one = LoadOptions(input=InputOptions(audience=audience), audiences=frozenset([audience]),
                                              batch_size=args.batch_size, source="bench", fast=fast)  # fmt: skip
                            load(url, [str(path)], one)
                        return memberships, 0

                    now.csv = measured(client, memberships, csv_loads)
                rounds.append(now)
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(rules_for(audiences), encoding="utf-8")
            spent = asyncio.run(decide_cost(url, rules, "c-0"))
            client.close()

    def rate(get: Any) -> Rate:
        """The medians over the rounds."""
        taken = [get(r) for r in rounds]

        def median(name: str) -> float:
            return float(statistics.median(getattr(t, name) for t in taken))

        return Rate(median("rate"), median("cpu"), median("redis_cpu"), max(t.worker_rss_kib for t in taken),
                    median("block_cpu"))  # fmt: skip

    def ratio(get: Any, ceiling: Any) -> str:
        """The median of the rounds' ratios, and their range."""
        ratios = [get(r).rate / ceiling(r).rate for r in rounds]
        return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"  # noqa: RUF001

    batch = f"{args.batch_size:,} memberships per pipeline"
    top = "1"
    rows: list[tuple[str, Rate, str]] = [
        (f"ceiling: pipelined `HSET` of each profile's 10 fields, {batch}, hiredis, one connection",
         rate(lambda r: r.export_ceiling), top),
        ("`load` AEP XDM export (10 audiences per line), parse + write + cutover",
         rate(lambda r: r.export), ratio(lambda r: r.export, lambda r: r.export_ceiling)),
        ("ceiling: the same `HSET`s into hashes holding the previous generation", rate(lambda r: r.again_ceiling), top),
        ("the same export again (every member unchanged)", rate(lambda r: r.again),
         ratio(lambda r: r.again, lambda r: r.again_ceiling)),
    ]  # fmt: skip
    if args.dask:
        rows.append((f"Dask: the export in {2 * args.dask} part files, a LocalCluster of {args.dask} worker processes "
                     "(CPU: the driver's and the workers' on their blocks)", rate(lambda r: r.dask),
                     ratio(lambda r: r.dask, lambda r: r.dask_ceiling)))  # fmt: skip
    for jobs in args.jobs:
        rows.append((f"`load --jobs {jobs}` AEP XDM export", rate(lambda r, j=jobs: r.jobs[j]),
                     ratio(lambda r, j=jobs: r.jobs[j], lambda r: r.jobs_ceiling)))  # fmt: skip
    if csvs:
        rows += [
            (f"ceiling: pipelined `HSET` of 1 field, an audience at a time, {batch}", rate(lambda r: r.csv_ceiling),
             top),
            ("`load` 10 CSV files, one snapshot per audience", rate(lambda r: r.csv),
             ratio(lambda r: r.csv, lambda r: r.csv_ceiling)),
        ]  # fmt: skip
    reader = "line by line" if args.line_by_line else "columnar reader"
    print(f"\nmedians of {len(rounds)} round(s) ({reader}); each load measured right after its ceiling; a ratio is "
          "the median of the rounds' ratios (their range beside it); CPU: µs per membership of the writing "
          "process(es) and of Redis")  # fmt: skip
    print("| | memberships/s | × ceiling | CPU µs/membership (writer + Redis) |\n|---|---:|---:|---:|")  # noqa: RUF001
    for label, value, share in rows:
        print(f"| {label} | {value.rate:,.0f} | {share} | {value.cpu:.2f} + {value.redis_cpu:.2f} |")
    if args.jobs:
        one = statistics.median(r.export.rate for r in rounds)
        for jobs in args.jobs:
            many = statistics.median(r.jobs[jobs].rate for r in rounds)
            rss = max(r.jobs[jobs].worker_rss_kib for r in rounds)
            blocks = statistics.median(r.jobs[jobs].block_cpu for r in rounds)
            print(f"jobs {jobs}: scaling efficiency {many / (jobs * one):.2f} (memberships/s with {jobs} jobs over "
                  f"{jobs} x one process's); the workers' CPU on their blocks {blocks:.2f} µs per membership (the "
                  f"rest of the load's: the driver, the workers' start); a worker's peak RSS {rss / 1024:.0f} MiB "
                  f"for a {size / 1e6:,.0f} MB export")  # fmt: skip
    for i, r in enumerate(rounds, 1):
        csv = f", CSV {r.csv.rate:,.0f} / {r.csv_ceiling.rate:,.0f}" if csvs else ""
        jobs_text = "".join(f", jobs {j} {v.rate:,.0f} / {r.jobs_ceiling.rate:,.0f}" for j, v in r.jobs.items())
        again = f"again {r.again.rate:,.0f} / {r.again_ceiling.rate:,.0f}"
        print(f"round {i} (load / its ceiling, memberships/s): XDM {r.export.rate:,.0f} / "
              f"{r.export_ceiling.rate:,.0f}, {again}{jobs_text}{csv}")  # fmt: skip
    print(f"memory   used_memory per membership after the XDM load: {used / memberships:.1f} bytes "
          f"({used / 1e6:,.0f} MB; a profile's hash is a {encoding.decode()}); with the replaced generation "
          f"too (after the same export again, before gc): {both / memberships:.1f} bytes")  # fmt: skip
    print(f"decide   Redis commands for one Decide: {spent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
